"""Calibration check of the static arena model (memory/tail.py) against the real TFLM.

Builds ~100 small models, one or two ops each, for most TFLite builtins that Keras and plain
TensorFlow functions convert to (int8 and float32), measures each in TFLM (tflite-micro, child
process) and compares with the simulation: head (planned activations and scratch buffers),
tail (persistent structs, options, OpData) and the smallest working arena. Run it after a
tflite-micro upgrade: a line marked '<<<' is a model whose figures moved, 'UNDER' one whose
estimate fell below the measurement (must never happen). Ops without calibrated figures are
listed; their stand-ins are deliberately generous.

Run: .venv/bin/python bench/arena_calibrate.py [--only NAME ...]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import warnings
from pathlib import Path
from typing import Any

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


def build(keras: Any, tf: Any) -> dict[str, tuple[str, Any, str, bool]]:
    """name → ('keras' | 'fn', model or (fn, input shapes), quantization, float I/O)."""
    L = keras.layers
    inp = keras.Input

    def seq(shape: tuple[int, ...], *stack: Any) -> Any:
        return keras.Sequential([inp(shape), *stack])

    def two(layer: Any, shape: tuple[int, ...]) -> Any:
        x = inp(shape)
        return keras.Model(x, layer([x, L.Conv2D(shape[-1], 1)(x)]))

    zoo: dict[str, tuple[str, Any, str, bool]] = {}
    for quant in ("int8", "float32"):
        s = "i8" if quant == "int8" else "f32"

        def k(name: str, model: Any, float_io: bool = False, q: str = quant, s: str = s) -> None:
            zoo[f"{name}_{s}"] = ("keras", model, q, float_io)

        def f(
            name: str, fn: Any, shapes: list[tuple[int, ...]], q: str = quant, s: str = s
        ) -> None:
            zoo[f"{name}_{s}"] = ("fn", (fn, shapes), q, False)

        k("fc", seq((32,), L.Dense(8)))
        k("fc2", seq((32,), L.Dense(8), L.Dense(8)))
        k("fc64", seq((32,), L.Dense(64)))
        k("float_io", seq((16,), L.Dense(8)), float_io=True)
        k("conv", seq((8, 8, 4), L.Conv2D(8, 3)))
        k("conv32", seq((8, 8, 4), L.Conv2D(32, 3)))
        k("conv_stride", seq((12, 12, 3), L.Conv2D(4, 3, 2, "same", activation="relu6")))
        k("conv_dilated", seq((12, 12, 3), L.Conv2D(4, 3, dilation_rate=2)))
        k("conv1d", seq((32, 3), L.Conv1D(8, 3)))
        k("dw", seq((8, 8, 4), L.DepthwiseConv2D(3)))
        k("dw32", seq((8, 8, 32), L.DepthwiseConv2D(3)))
        k("dw_mult2", seq((8, 8, 4), L.DepthwiseConv2D(3, depth_multiplier=2)))
        k("tconv", seq((4, 4, 2), L.Conv2DTranspose(4, 3, strides=2, padding="same")))
        k("maxpool", seq((8, 8, 4), L.MaxPooling2D()))
        k("avgpool", seq((8, 8, 4), L.AveragePooling2D(2)))
        k("avg_fc", seq((8, 8, 4), L.AveragePooling2D(8), L.Reshape((4,)), L.Dense(3)))
        k("softmax_fc", seq((16,), L.Softmax(), L.Dense(4), L.Softmax(), L.Dense(3)))
        k("gap", seq((8, 8, 16), L.GlobalAveragePooling2D()))
        k("gmp", seq((8, 8, 16), L.GlobalMaxPooling2D()))
        k("relu", seq((16,), L.ReLU()))
        k("relu6", seq((16,), L.ReLU(6.0)))
        k("leaky", seq((16,), L.LeakyReLU(0.1)))
        k("prelu", seq((8, 8, 4), L.PReLU()))
        k("elu", seq((16,), L.ELU()))
        k("sigmoid", seq((16,), L.Activation("sigmoid")))
        k("tanh", seq((16,), L.Activation("tanh")))
        k("hard_swish", seq((16,), L.Activation("hard_swish")))
        k("softmax", seq((16,), L.Softmax()))
        k("flatten", seq((4, 4, 2), L.Flatten()))
        k("pad", seq((8, 8, 2), L.ZeroPadding2D(1)))
        k("crop", seq((8, 8, 2), L.Cropping2D(1)))
        k("bilinear", seq((4, 4, 2), L.UpSampling2D(2, interpolation="bilinear")))
        k("nearest", seq((4, 4, 2), L.Resizing(8, 8, interpolation="nearest")))
        k("batchnorm", seq((8, 8, 4), L.BatchNormalization()))
        k("layernorm", seq((8, 16), L.LayerNormalization()))
        k("permute", seq((4, 6), L.Permute((2, 1))))
        k("add", two(L.Add(), (6, 6, 4)))
        k("sub", two(L.Subtract(), (6, 6, 4)))
        k("mul", two(L.Multiply(), (6, 6, 4)))
        k("concat", two(L.Concatenate(), (6, 6, 4)))
        k("maximum", two(L.Maximum(), (6, 6, 4)))
        f("split", lambda x: tf.concat(tf.split(x, 2, axis=-1)[::-1], -1) * 2.0, [(4, 8)])
        f("squeeze", lambda x: tf.squeeze(x, 1) + 1.0, [(1, 8)])
        f("sum", lambda x: tf.reduce_sum(x, axis=[1, 2]), [(4, 4, 8)])
        f("reduce_min", lambda x: tf.reduce_min(x, axis=1), [(4, 8)])
        f("rsqrt", lambda x: tf.math.rsqrt(tf.abs(x) + 1.0), [(16,)])
        f("sqdiff", lambda x, y: tf.math.squared_difference(x, y), [(16,), (16,)])
        f("div", lambda x, y: x / (tf.abs(y) + 1.0), [(16,), (16,)])
        f("space_to_depth", lambda x: tf.nn.space_to_depth(x, 2), [(8, 8, 2)])
        f("transpose", lambda x: tf.transpose(x, [0, 2, 1, 3]), [(4, 6, 2)])
        f("gather", lambda x: tf.gather(x, [3, 1, 2], axis=1), [(8,)])
        f("pack", lambda x, y: tf.stack([x, y], axis=1), [(8,), (8,)])
        f("unpack", lambda x: tf.unstack(x, axis=1)[0] + tf.unstack(x, axis=1)[1], [(2, 8)])
        f(
            "mirror_pad",
            lambda x: tf.pad(x, [[0, 0], [1, 1], [1, 1], [0, 0]], "REFLECT"),
            [(8, 8, 2)],
        )
        f("add_n", lambda x, y, w: tf.math.add_n([x, y, w]), [(16,), (16,), (16,)])
        f("batch_matmul", lambda x, y: tf.matmul(x, y), [(4, 8), (8, 6)])
    return zoo


def convert(tf: Any, kind: str, obj: Any, quant: str, float_io: bool) -> bytes:
    if kind == "keras":
        shapes = [tuple(i.shape[1:]) for i in obj.inputs]
        converter = tf.lite.TFLiteConverter.from_keras_model(obj)
    else:
        fn, shapes = obj
        specs = [tf.TensorSpec([1, *s], tf.float32) for s in shapes]
        concrete = tf.function(fn).get_concrete_function(*specs)
        converter = tf.lite.TFLiteConverter.from_concrete_functions([concrete], fn)
    if quant == "int8":
        rng = np.random.default_rng(0)

        def representative() -> Any:
            for _ in range(16):
                yield [rng.random((1, *s), dtype=np.float32) * 2 - 0.5 for s in shapes]

        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.representative_dataset = representative
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        if not float_io:
            converter.inference_input_type = tf.int8
            converter.inference_output_type = tf.int8
    return converter.convert()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", nargs="*", default=[], help="model names to check")
    args = parser.parse_args()

    import keras
    import tensorflow as tf

    from tinyforge.errors import StageError
    from tinyforge.memory.estimate import estimate_model
    from tinyforge.memory.measure import measure_arena
    from tinyforge.memory.tflite_model import load_tflite

    keras.utils.set_random_seed(0)
    warnings.filterwarnings("ignore", category=UserWarning)
    folder = Path(tempfile.mkdtemp(prefix="tinyforge-calibrate-"))
    rng = np.random.default_rng(0)
    exact = under = 0
    print(f"{'model':<20}{'head':>7}{'tail':>13}{'arena':>17}  binding / approximated ops")
    for name, (kind, obj, quant, float_io) in build(keras, tf).items():
        if args.only and name not in args.only:
            continue
        if kind == "keras":
            for variable in obj.weights:
                values = rng.normal(0.0, 0.1, tuple(variable.shape)).astype("float32")
                if "variance" in variable.path:
                    values = np.abs(values) + 1.0
                variable.assign(values)
        path = folder / f"{name}.tflite"
        try:
            path.write_bytes(convert(tf, kind, obj, quant, float_io))
            measured = measure_arena(path)
        except (StageError, Exception) as exc:  # a model this TF/TFLM pair cannot handle
            print(f"{name:<20}skipped: {str(exc).splitlines()[0][:90]}")
            continue
        static = estimate_model(load_tflite(path))
        head = static.head.head_bytes - measured.head_bytes
        tail = static.host.tail_bytes - measured.tail_bytes
        arena = static.arena_bytes - measured.arena_bytes
        same = head == 0 and tail == 0 and 0 <= arena < 16
        exact += same
        under += arena < 0
        mark = "" if same else ("  UNDER" if arena < 0 else "  <<<")
        approx = " ".join(static.host.approximate_ops)
        print(
            f"{name:<20}{head:>+7}{static.host.tail_bytes:>7}{tail:>+6}"
            f"{static.arena_bytes:>9}{arena:>+8}  {static.host.binding[:26]} {approx}{mark}"
        )
    print(f"{exact} models exact (head, tail, arena within 16 B); {under} under-estimated")


if __name__ == "__main__":
    main()
