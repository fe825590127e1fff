"""Child process: Keras model → TFLite (full int8 or float32), checked on the test split.

Run as `python -m tinyforge.convert.keras_worker PROJECT_DIR --quantization int8`. TensorFlow
is imported here only, never in the CLI or the language server process.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from tinyforge.convert.quantization import dequantize, quantize

CALIBRATION_SAMPLES = 300


def _tflite_predict(model_bytes: bytes, x: np.ndarray) -> np.ndarray:
    from ai_edge_litert.interpreter import Interpreter

    interp = Interpreter(model_content=model_bytes)
    interp.allocate_tensors()
    inp = interp.get_input_details()[0]
    out = interp.get_output_details()[0]
    results = []
    for sample in x:
        interp.set_tensor(inp["index"], quantize(sample[np.newaxis], inp))
        interp.invoke()
        results.append(dequantize(interp.get_tensor(out["index"])[0], out))
    return np.stack(results)


def decide(outputs: np.ndarray, threshold: float | None) -> np.ndarray:
    """Class decisions: argmax for classifiers; score above threshold for anomaly detectors."""
    outputs = outputs.reshape(len(outputs), -1)
    if threshold is None:
        classes: np.ndarray = np.argmax(outputs, axis=1)
        return classes
    return (outputs[:, 0] > threshold).astype(np.int64)


def convert(project: Path, quantization: str, artifacts: str) -> dict[str, Any]:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import keras
    import tensorflow as tf

    splits = np.load(project / artifacts / "splits.npz")
    model = keras.models.load_model(project / "model.keras", compile=False)
    x_train, x_test, y_test = splits["x_train"], splits["x_test"], splits["y_test"]
    metrics = json.loads((project / artifacts / "metrics.json").read_text())
    threshold = metrics.get("threshold")  # set by anomaly-detection scripts
    float_pred = model.predict(x_test, verbose=0)
    float_accuracy = float(np.mean(decide(float_pred, threshold) == y_test))
    print(f"float accuracy {float_accuracy:.4f} on {len(x_test)} test samples", flush=True)

    # A batch of one, fixed: the device runs one sample at a time, and static shapes spare the
    # firmware the SHAPE/STRIDED_SLICE/PACK ops a dynamic batch adds around Flatten.
    single = keras.Input(batch_size=1, shape=model.input_shape[1:], dtype="float32")
    converter = tf.lite.TFLiteConverter.from_keras_model(keras.Model(single, model(single)))
    if quantization == "int8":
        rng = np.random.default_rng(0)
        pick = rng.permutation(len(x_train))[:CALIBRATION_SAMPLES]
        calibration = x_train[pick].astype(np.float32)

        def representative() -> Iterator[list[np.ndarray]]:
            for sample in calibration:
                yield [sample[np.newaxis]]

        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.representative_dataset = representative
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        converter.inference_input_type = tf.int8
        converter.inference_output_type = tf.int8
    tflite_bytes = converter.convert()
    (project / "model.tflite").write_bytes(tflite_bytes)
    print(f"wrote model.tflite ({len(tflite_bytes)} bytes, {quantization})", flush=True)

    tflite_pred = _tflite_predict(tflite_bytes, x_test)
    tflite_accuracy = float(np.mean(decide(tflite_pred, threshold) == y_test))
    print(f"{quantization} accuracy {tflite_accuracy:.4f} (TFLite interpreter)", flush=True)

    from ai_edge_litert.interpreter import Interpreter

    interp = Interpreter(model_content=tflite_bytes)
    inp = interp.get_input_details()[0]
    # The firmware's baked-in sample: the first test sample the int8 model gets right, so the
    # serial output shows a known, correct prediction.
    correct = np.flatnonzero(decide(tflite_pred, threshold) == y_test)
    index = int(correct[0]) if len(correct) else 0
    np.save(project / artifacts / "sample_input.npy", quantize(x_test[index][np.newaxis], inp)[0])
    np.save(project / artifacts / "test_inputs.npy", quantize(x_test, inp))
    scale, zero_point = inp["quantization"]
    health = _health_figures(
        project / artifacts,
        model,
        tflite_bytes,
        calibration if quantization == "int8" else None,
        # An anomaly detector's anomalies are meant to leave the calibrated (normal) ranges.
        x_test if threshold is None else x_test[y_test == 0],
        y_test,
        decide(float_pred, threshold),
        decide(tflite_pred, threshold),
        len(metrics.get("classes") or []) or int(y_test.max(initial=0)) + 1,
    )
    return {
        "health": health,
        "quantization": quantization,
        "float_accuracy": float_accuracy,
        "tflite_accuracy": tflite_accuracy,
        "model_bytes": len(tflite_bytes),
        "input": {
            "dtype": np.dtype(inp["dtype"]).name,
            "shape": [int(d) for d in inp["shape"]],
            "scale": float(scale),
            "zero_point": int(zero_point),
        },
        "sample_index": index,
        "sample_label": int(y_test[index]),
        "test_samples": len(x_test),
    }


def _health_figures(
    artifacts: Path,
    model: object,
    tflite_bytes: bytes,
    calibration: np.ndarray | None,
    x_covered: np.ndarray,
    y_test: np.ndarray,
    float_decisions: np.ndarray,
    tflite_decisions: np.ndarray,
    num_classes: int,
) -> dict[str, Any]:
    """What tinyforge.health needs from this process: the data and the interpreter are here.

    The test decisions (for the accuracy on test samples not seen in training), the model's
    layer types (does it scale its inputs?) and, for int8, calibration size, per-class int8 vs
    float accuracy and saturation. A failure here costs the figures, never the conversion.
    """
    np.savez_compressed(
        artifacts / "predictions.npz", float=float_decisions, tflite=tflite_decisions
    )
    figures: dict[str, Any] = {
        "layers": [type(layer).__name__ for layer in getattr(model, "layers", [])]
    }
    if calibration is None:
        return figures
    try:
        from tinyforge.health.quant import worker_figures

        figures.update(
            worker_figures(
                tflite_bytes,
                calibration,
                x_covered,
                y_test,
                float_decisions,
                tflite_decisions,
                num_classes,
            )
        )
    except Exception as exc:
        print(f"warning: quantization health figures failed: {exc!r}", flush=True)
        figures["error"] = repr(exc)
    return figures


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("project", type=Path)
    parser.add_argument("--quantization", choices=["int8", "float32"], default="int8")
    parser.add_argument("--artifacts", default="artifacts")
    args = parser.parse_args(argv)
    result = convert(args.project, args.quantization, args.artifacts)
    (args.project / args.artifacts / "convert.json").write_text(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
