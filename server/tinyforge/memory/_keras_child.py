"""Child process that loads a Keras model file: its description and an int8/float .tflite.

Run as `python -m tinyforge.memory._keras_child MODEL OUT_DIR [--quantization int8]`. Only this
process imports TensorFlow. It prints one JSON line: {"ok": true, "description": {...} | null,
"description_error": "...", "inputs": [...]} or {"ok": false, "error": "<one sentence>"}, and
writes OUT_DIR/model.tflite. The int8 conversion calibrates on random data: the result serves
memory figures, not accuracy.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


def emit(**fields: Any) -> None:
    sys.stdout.write(json.dumps(fields) + "\n")
    sys.stdout.flush()


def _history_names(value: Any) -> list[str]:
    """Layer names a Keras 3 `inbound_nodes` entry refers to (keras_history[0])."""
    names: list[str] = []
    if isinstance(value, dict):
        if value.get("class_name") == "__keras_tensor__":
            history = value.get("config", {}).get("keras_history")
            if history:
                names.append(str(history[0]))
            return names
        for item in value.values():
            names += _history_names(item)
    elif isinstance(value, list | tuple):
        if len(value) >= 3 and isinstance(value[0], str) and isinstance(value[1], int):
            names.append(value[0])  # Keras 2 style [name, node, tensor, kwargs]
            return names
        for item in value:
            names += _history_names(item)
    return names


def describe(model: Any) -> dict[str, Any]:
    """The model as keras_estimate's description: input shape and layers with inbound indexes."""
    inputs = list(model.inputs)
    if len(inputs) != 1:
        raise ValueError(f"it has {len(inputs)} inputs; the static estimate handles one")
    shape = [int(d) if d is not None else None for d in inputs[0].shape[1:]]
    config = model.get_config()
    entries = config.get("layers", [])
    layers: list[dict[str, Any]] = []
    if model.__class__.__name__ == "Sequential":
        for entry in entries:
            if entry.get("class_name") == "InputLayer":
                continue
            layers.append({"class_name": entry["class_name"], "config": entry.get("config", {})})
        return {"input_shape": shape, "layers": layers}
    index_of: dict[str, int] = {}
    for entry in entries:
        name = entry.get("name") or entry.get("config", {}).get("name")
        if entry.get("class_name") == "InputLayer":
            index_of[name] = -1
            continue
        inbound = [index_of[n] for n in _history_names(entry.get("inbound_nodes", []))]
        index_of[name] = len(layers)
        layers.append(
            {
                "class_name": entry["class_name"],
                "config": entry.get("config", {}),
                "inbound": inbound,
            }
        )
    return {"input_shape": shape, "layers": layers}


def convert(model: Any, quantization: str) -> bytes:
    import numpy as np
    import tensorflow as tf

    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    if quantization == "int8":
        shapes = [tuple(int(d or 1) for d in i.shape[1:]) for i in model.inputs]
        rng = np.random.default_rng(0)

        def representative() -> Any:
            for _ in range(8):
                yield [rng.random((1, *s), dtype=np.float32) for s in shapes]

        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.representative_dataset = representative
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        converter.inference_input_type = tf.int8
        converter.inference_output_type = tf.int8
    flatbuffer: bytes = converter.convert()
    return flatbuffer


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tinyforge.memory._keras_child")
    parser.add_argument("model")
    parser.add_argument("out_dir")
    parser.add_argument("--quantization", choices=("int8", "float32"), default="int8")
    args = parser.parse_args(argv)
    path = Path(args.model)
    try:
        import keras

        model = keras.saving.load_model(path, compile=False)
    except Exception as exc:  # any load failure is the file's problem, said in one sentence
        first = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else type(exc).__name__
        emit(ok=False, error=f"Keras cannot load '{path.name}': {first}")
        return 0
    result: dict[str, Any] = {"ok": True, "description": None}
    try:
        result["description"] = describe(model) | {"quantization": args.quantization}
    except Exception as exc:  # the description is a bonus: report why it is missing
        result["description_error"] = f"{type(exc).__name__}: {exc}"
    try:
        data = convert(model, args.quantization)
    except Exception as exc:
        first = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else type(exc).__name__
        emit(ok=False, error=f"TFLite cannot convert '{path.name}': {first}")
        return 0
    Path(args.out_dir, "model.tflite").write_bytes(data)
    emit(**result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
