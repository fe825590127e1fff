"""Benchmark: static arena estimates against the real TFLM interpreter, on a zoo of models.

Builds the zoo in-process with Keras (dense, conv, depthwise-separable, residual add, concat,
pooling, strided, 1-D conv, batch norm; float32 and int8; tiny to ~500 KB), converts each
model, measures the smallest working arena in TFLM (tflite-micro, in a child process) and
prints per model:

- est/meas: static estimate (`tinyforge inspect`, no TFLM) / measured arena (target 1.00-1.02,
  never below 1.00: an under-estimate crashes a device);
- floor/meas: the activation floor (peak of simultaneously live tensors) / measured;
- keras/meas: the estimate from the Keras definition alone, before conversion / measured
  (target within 10%);
- target: the 32-bit MCU arena derived from the measurement; flash: the flash estimate;
- static ms: `inspect_model(..., measure=False)` wall time (target < 100 ms at 500 KB).

Run: .venv/bin/python bench/arena_accuracy.py [--keep DIR]
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


def build_zoo(keras: Any) -> dict[str, tuple[Any, str]]:
    """Name → (Keras model, 'int8' | 'float32')."""
    layers = keras.layers
    inp = keras.Input

    def seq(shape: tuple[int, ...], *stack: Any) -> Any:
        return keras.Sequential([inp(shape), *stack])

    zoo: dict[str, tuple[Any, str]] = {}
    for quant in ("int8", "float32"):
        zoo[f"dense_tiny_{quant}"] = (
            seq((10,), layers.Dense(16, activation="relu"), layers.Dense(4, activation="softmax")),
            quant,
        )
        zoo[f"conv_{quant}"] = (
            seq(
                (28, 28, 1),
                layers.Conv2D(8, 3, activation="relu"),
                layers.MaxPooling2D(),
                layers.Conv2D(16, 3, activation="relu"),
                layers.MaxPooling2D(),
                layers.Flatten(),
                layers.Dense(10, activation="softmax"),
            ),
            quant,
        )
        zoo[f"dwsep_{quant}"] = (
            seq(
                (32, 32, 3),
                layers.Conv2D(16, 3, strides=2, padding="same", activation="relu"),
                layers.DepthwiseConv2D(3, padding="same", activation="relu"),
                layers.Conv2D(32, 1, activation="relu"),
                layers.SeparableConv2D(32, 3, padding="same", activation="relu"),
                layers.GlobalAveragePooling2D(),
                layers.Dense(5),
            ),
            quant,
        )
        zoo[f"conv1d_{quant}"] = (
            seq(
                (128, 3),
                layers.Conv1D(16, 5, activation="relu"),
                layers.MaxPooling1D(2),
                layers.Conv1D(32, 3, activation="relu"),
                layers.GlobalAveragePooling1D(),
                layers.Dense(6, activation="softmax"),
            ),
            quant,
        )
    x = inp((24, 24, 8))
    y = layers.Conv2D(8, 3, padding="same", activation="relu")(x)
    y = layers.Conv2D(8, 3, padding="same")(y)
    y = layers.ReLU()(layers.Add()([x, y]))
    y = layers.Dense(3)(layers.GlobalAveragePooling2D()(y))
    zoo["residual_int8"] = (keras.Model(x, y), "int8")
    x = inp((20, 20, 4))
    a = layers.Conv2D(8, 1, activation="relu")(x)
    b = layers.Conv2D(8, 3, padding="same", activation="relu")(x)
    y = layers.MaxPooling2D()(layers.Concatenate()([a, b]))
    zoo["concat_int8"] = (keras.Model(x, layers.Dense(4)(layers.Flatten()(y))), "int8")
    zoo["pooling_int8"] = (
        seq(
            (32, 32, 3),
            layers.Conv2D(8, 3, activation="relu"),
            layers.AveragePooling2D(2),
            layers.Conv2D(16, 3, activation="relu"),
            layers.MaxPooling2D(3),
            layers.GlobalAveragePooling2D(),
            layers.Dense(4),
        ),
        "int8",
    )
    zoo["strided_int8"] = (
        seq(
            (64, 64, 1),
            layers.Conv2D(8, 5, strides=2, activation="relu"),
            layers.Conv2D(16, 3, strides=2, activation="relu"),
            layers.Conv2D(32, 3, strides=2, activation="relu"),
            layers.Flatten(),
            layers.Dense(6),
        ),
        "int8",
    )
    zoo["batchnorm_int8"] = (
        seq(
            (16, 16, 3),
            layers.Conv2D(8, 3),
            layers.BatchNormalization(),
            layers.ReLU(),
            layers.Dropout(0.2),
            layers.Conv2D(8, 3, activation="sigmoid"),
            layers.Flatten(),
            layers.Dense(2),
        ),
        "int8",
    )
    zoo["kws_dscnn_int8"] = (
        seq(
            (49, 10, 1),
            layers.Conv2D(64, (10, 4), strides=(2, 2), padding="same", activation="relu"),
            layers.DepthwiseConv2D(3, padding="same", activation="relu"),
            layers.Conv2D(64, 1, activation="relu"),
            layers.DepthwiseConv2D(3, padding="same", activation="relu"),
            layers.Conv2D(64, 1, activation="relu"),
            layers.AveragePooling2D((25, 5)),
            layers.Flatten(),
            layers.Dense(12, activation="softmax"),
        ),
        "int8",
    )
    blocks: list[Any] = [layers.Conv2D(16, 3, strides=2, padding="same", activation="relu")]
    for filters, stride in [(32, 1), (64, 2), (64, 1), (128, 2), (128, 1), (256, 2), (256, 1)]:
        blocks += [
            layers.DepthwiseConv2D(3, strides=stride, padding="same", activation="relu"),
            layers.Conv2D(filters, 1, activation="relu"),
        ]
    blocks += [layers.GlobalAveragePooling2D(), layers.Dense(10)]
    zoo["mobilenet_int8"] = (seq((96, 96, 3), *blocks), "int8")
    zoo["dense_500k_int8"] = (
        seq(
            (784,),
            layers.Dense(512, activation="relu"),
            layers.Dense(160, "relu"),
            layers.Dense(10),
        ),
        "int8",
    )
    return zoo


def randomize(model: Any, rng: np.random.Generator) -> None:
    """Give every weight a non-zero value, as training would.

    The converter drops all-zero biases, which only untrained models have; a zoo of freshly
    initialised models would then differ from real ones in exactly the tensors that matter.
    """
    for variable in model.weights:
        shape = tuple(variable.shape)
        values = rng.normal(0.0, 0.1, size=shape).astype("float32")
        if "variance" in variable.path:
            values = np.abs(values) + 1.0
        variable.assign(values)


def convert(tf: Any, model: Any, quant: str) -> bytes:
    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    if quant == "int8":
        shape = tuple(model.inputs[0].shape[1:])
        rng = np.random.default_rng(0)

        def representative() -> Iterator[list[np.ndarray]]:
            for _ in range(16):
                yield [rng.random((1, *shape), dtype=np.float32)]

        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.representative_dataset = representative
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        converter.inference_input_type = tf.int8
        converter.inference_output_type = tf.int8
    return converter.convert()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--keep", help="write the zoo's .tflite files into this folder")
    args = parser.parse_args()

    import keras
    import tensorflow as tf

    from tinyforge.memory._keras_child import describe
    from tinyforge.memory.inspect import inspect_model
    from tinyforge.memory.keras_estimate import estimate_from_description
    from tinyforge.memory.measure import measure_arena
    from tinyforge.memory.target import target_arena_bytes
    from tinyforge.memory.tflite_model import load_tflite

    keras.utils.set_random_seed(0)
    # The converter warns about int8 input statistics on every model; the figures don't care.
    warnings.filterwarnings("ignore", category=UserWarning)
    folder = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="tinyforge-zoo-"))
    folder.mkdir(parents=True, exist_ok=True)
    header = (
        f"{'model':<18}{'KB':>7}{'ops':>5}{'measured':>10}{'static':>9}{'est/meas':>9}"
        f"{'floor/meas':>11}{'keras':>9}{'keras/meas':>11}{'target':>9}{'flash KB':>9}"
        f"{'static ms':>10}"
    )
    print(header)
    print("-" * len(header))
    ratios, keras_ratios, times = [], [], []
    rng = np.random.default_rng(0)
    for name, (model, quant) in build_zoo(keras).items():
        randomize(model, rng)
        path = folder / f"{name}.tflite"
        path.write_bytes(convert(tf, model, quant))
        description = describe(model) | {"quantization": quant}
        keras_figure = estimate_from_description(description).arena_bytes_estimate

        inspect_model(path, measure=False)  # warm: imports and the op-support cache
        started = time.perf_counter()
        report = inspect_model(path, measure=False)
        static_ms = 1000 * (time.perf_counter() - started)

        measured = measure_arena(path)
        target = target_arena_bytes(measured, load_tflite(path))
        estimate = report["arena_bytes_estimate"]
        ratio = estimate / measured.arena_bytes
        keras_ratio = keras_figure / measured.arena_bytes
        ratios.append(ratio)
        keras_ratios.append(keras_ratio)
        times.append(static_ms)
        flag = "  <-- below measured" if ratio < 1 else ("  <-- over 2%" if ratio > 1.02 else "")
        print(
            f"{name:<18}{report['model_bytes'] / 1024:>7.1f}{len(report['layers']):>5}"
            f"{measured.arena_bytes:>10,}{estimate:>9,}{ratio:>9.3f}"
            f"{report['arena_floor_bytes'] / measured.arena_bytes:>11.3f}"
            f"{keras_figure:>9,}{keras_ratio:>11.3f}{target:>9,}"
            f"{report['flash_bytes_estimate'] / 1024:>9.1f}{static_ms:>10.1f}{flag}"
        )
    print("-" * len(header))
    print(
        f"{len(ratios)} models: est/meas min {min(ratios):.3f} max {max(ratios):.3f} "
        f"(target 1.00-1.02); keras/meas min {min(keras_ratios):.3f} max {max(keras_ratios):.3f} "
        f"(target 0.90-1.10); static inspect median {statistics.median(times):.1f} ms, "
        f"max {max(times):.1f} ms (target < 100 ms)"
    )
    print(f"models in {folder}")


if __name__ == "__main__":
    main()
