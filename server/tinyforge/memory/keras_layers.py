"""Int8 figures of a Keras model definition, before any conversion: shapes, params, MACs, arena.

Input is the static description `keras_source` reads from code (or any list of Keras-style
`class_name`/`config` layers with inbound indexes). Layers TFLite folds away (Dropout,
BatchNormalization after a convolution, fused ReLU) produce no tensor. Anything that cannot be
inferred stops the estimate with a reason: a missing number is better than a wrong one.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from tinyforge.memory.keras_source import SourceLayer, SourceModel, Unknown

# Per-tensor and per-op bytes TFLM keeps in the arena's tail on a 64-bit host (EvalTensor 24,
# NodeAndRegistration 64, plus op data), and a fixed part for the interpreter's own objects;
# per output channel, quantized kernels keep a multiplier and a shift (2 × int32).
TAIL_PER_TENSOR = 24
TAIL_PER_OP = 64 + 48
TAIL_FIXED = 1200
TAIL_PER_CHANNEL = 8
ALIGN = 16

FUSED_ACTIVATIONS = {None, "linear", "relu", "relu6"}
ACTIVATION_OPS = {
    "softmax": "SOFTMAX",
    "sigmoid": "LOGISTIC",
    "tanh": "TANH",
    "gelu": "GELU",
    "elu": "ELU",
    "selu": "SELU",
    "swish": "LOGISTIC",
    "silu": "LOGISTIC",
    "hard_swish": "HARD_SWISH",
    "leaky_relu": "LEAKY_RELU",
    "softplus": "SOFTPLUS",
    "log_softmax": "LOG_SOFTMAX",
    "exponential": "EXP",
}
IDENTITY = {
    "Dropout",
    "SpatialDropout1D",
    "SpatialDropout2D",
    "GaussianNoise",
    "GaussianDropout",
    "ActivityRegularization",
    "InputLayer",
}


class CannotInfer(Exception):
    """The definition has something the static pass cannot size; `.layer` says where."""

    def __init__(self, layer: int, message: str) -> None:
        self.layer = layer
        super().__init__(message)


@dataclass
class LayerFigures:
    index: int
    class_name: str
    op: str | None  # the TFLite op it becomes, None when folded away
    out_shape: tuple[int, ...]
    params: int
    param_bytes: int  # int8 weights + int32 biases
    activation_bytes: int  # its output tensor (0 when folded into the previous op)
    macs: int
    extra_ops: list[str] = field(default_factory=list)


@dataclass
class ModelEstimate:
    layers: list[LayerFigures]
    input_bytes: int
    arena_floor_bytes: int
    arena_bytes_estimate: int
    arena_bytes_target: int
    model_bytes_estimate: int
    ops: list[str]

    @property
    def params(self) -> int:
        return sum(layer.params for layer in self.layers)

    def largest_activation(self) -> LayerFigures | None:
        produced = [layer for layer in self.layers if layer.activation_bytes]
        return max(produced, key=lambda f: f.activation_bytes) if produced else None


def _int(value: Any, what: str, index: int) -> int:
    if isinstance(value, Unknown):
        raise CannotInfer(index, f"{what} is `{value.text}`, not a constant")
    if isinstance(value, bool) or not isinstance(value, int):
        raise CannotInfer(index, f"{what} is not an integer")
    return value


def _pair(value: Any, what: str, index: int, dims: int) -> tuple[int, ...]:
    if isinstance(value, (list, tuple)):
        items = tuple(_int(v, what, index) for v in value)
        if len(items) != dims:
            raise CannotInfer(index, f"{what} has {len(items)} values, expected {dims}")
        return items
    return (_int(value, what, index),) * dims


def _spatial(size: int, kernel: int, stride: int, padding: str, dilation: int = 1) -> int:
    if padding == "same":
        return math.ceil(size / stride)
    effective = (kernel - 1) * dilation + 1
    return max(0, (size - effective) // stride + 1)


def _activation_op(config: dict[str, Any], index: int) -> str | None:
    act = config.get("activation")
    if isinstance(act, Unknown):
        raise CannotInfer(index, f"activation is `{act.text}`")
    if act in FUSED_ACTIVATIONS:
        return None
    return ACTIVATION_OPS.get(str(act), f"ACTIVATION:{act}")


def _conv(layer: SourceLayer, shape: tuple[int, ...], index: int, dims: int, kind: str):
    c = layer.config
    if len(shape) != dims + 1:
        raise CannotInfer(index, f"{layer.class_name} needs a {dims + 1}-D input, got {shape}")
    spatial, cin = shape[:-1], shape[-1]
    kernel = _pair(c.get("kernel_size", 3), "kernel_size", index, dims)
    strides = _pair(c.get("strides", 1), "strides", index, dims)
    dilation = _pair(c.get("dilation_rate", 1), "dilation_rate", index, dims)
    padding = str(c.get("padding", "valid")).lower()
    out_spatial = tuple(
        _spatial(s, k, st, padding, d)
        for s, k, st, d in zip(spatial, kernel, strides, dilation, strict=True)
    )
    ksize = math.prod(kernel)
    bias = c.get("use_bias", True) is not False
    if kind == "depthwise":
        mult = _int(c.get("depth_multiplier", 1), "depth_multiplier", index)
        cout = cin * mult
        weights = ksize * cout
        macs = math.prod(out_spatial) * ksize * cout
        return out_spatial + (cout,), weights, cout if bias else 0, macs, "DEPTHWISE_CONV_2D", []
    filters = _int(c.get("filters"), "filters", index)
    if kind == "separable":
        mult = _int(c.get("depth_multiplier", 1), "depth_multiplier", index)
        mid = cin * mult
        weights = ksize * mid + mid * filters
        macs = math.prod(out_spatial) * (ksize * mid + mid * filters)
        return (
            out_spatial + (filters,),
            weights,
            filters if bias else 0,
            macs,
            "CONV_2D",
            ["DEPTHWISE_CONV_2D"],
        )
    weights = ksize * cin * filters
    macs = math.prod(out_spatial) * weights
    return out_spatial + (filters,), weights, filters if bias else 0, macs, "CONV_2D", []


def _pool(layer: SourceLayer, shape: tuple[int, ...], index: int, dims: int, op: str):
    c = layer.config
    pool = _pair(c.get("pool_size", 2), "pool_size", index, dims)
    strides_value = c.get("strides")
    strides = pool if strides_value is None else _pair(strides_value, "strides", index, dims)
    padding = str(c.get("padding", "valid")).lower()
    out = tuple(
        _spatial(s, k, st, padding) for s, k, st in zip(shape[:-1], pool, strides, strict=True)
    )
    return out + (shape[-1],), op


def _reshape(target: Any, shape: tuple[int, ...], index: int) -> tuple[int, ...]:
    dims = list(
        _pair(
            target, "target_shape", index, len(target) if isinstance(target, (list, tuple)) else 1
        )
    )
    total = math.prod(shape)
    if dims.count(-1) == 1:
        known = math.prod(d for d in dims if d != -1)
        dims[dims.index(-1)] = total // known if known else 0
    if math.prod(dims) != total:
        raise CannotInfer(index, f"cannot reshape {shape} into {tuple(dims)}")
    return tuple(dims)


def _figures(
    layer: SourceLayer, inputs: list[tuple[int, ...]], index: int, prev_op: str | None
) -> LayerFigures:
    name = layer.class_name
    shape = inputs[0]
    c = layer.config
    zero = LayerFigures(index, name, None, shape, 0, 0, 0, 0)
    if name in IDENTITY:
        return zero
    if name in (
        "Conv2D",
        "Conv1D",
        "DepthwiseConv2D",
        "DepthwiseConv1D",
        "SeparableConv2D",
        "SeparableConv1D",
    ):
        dims = 2 if name.endswith("2D") else 1
        kind = (
            "depthwise"
            if name.startswith("Depthwise")
            else "separable"
            if name.startswith("Separable")
            else "conv"
        )
        out, weights, biases, macs, op, extra = _conv(layer, shape, index, dims, kind)
        act = _activation_op(c, index)
        fig = LayerFigures(
            index,
            name,
            op,
            out,
            weights + biases,
            weights + 4 * biases,
            math.prod(out),
            macs,
            extra,
        )
        if act:
            fig.extra_ops.append(act)
        return fig
    if name == "Dense":
        units = _int(c.get("units"), "units", index)
        cin = shape[-1]
        bias = c.get("use_bias", True) is not False
        weights = cin * units
        out = shape[:-1] + (units,)
        fig = LayerFigures(
            index,
            name,
            "FULLY_CONNECTED",
            out,
            weights + (units if bias else 0),
            weights + (4 * units if bias else 0),
            math.prod(out),
            math.prod(shape[:-1]) * weights,
        )
        act = _activation_op(c, index)
        if act:
            fig.extra_ops.append(act)
        return fig
    if name in (
        "MaxPooling2D",
        "MaxPool2D",
        "AveragePooling2D",
        "AvgPool2D",
        "MaxPooling1D",
        "MaxPool1D",
        "AveragePooling1D",
        "AvgPool1D",
    ):
        dims = 2 if name.endswith("2D") else 1
        op = "MAX_POOL_2D" if name.startswith("Max") else "AVERAGE_POOL_2D"
        out, op = _pool(layer, shape, index, dims, op)
        return LayerFigures(index, name, op, out, 0, 0, math.prod(out), 0)
    if name in (
        "GlobalAveragePooling2D",
        "GlobalAveragePooling1D",
        "GlobalMaxPooling2D",
        "GlobalMaxPooling1D",
    ):
        op = "MEAN" if "Average" in name else "REDUCE_MAX"
        out = (shape[-1],)
        return LayerFigures(index, name, op, out, 0, 0, shape[-1], 0)
    if name == "Flatten":
        return LayerFigures(index, name, "RESHAPE", (math.prod(shape),), 0, 0, 0, 0)
    if name == "Reshape":
        return LayerFigures(
            index, name, "RESHAPE", _reshape(c.get("target_shape"), shape, index), 0, 0, 0, 0
        )
    if name == "BatchNormalization":
        # Folded into the preceding convolution or dense layer by the converter.
        if prev_op in ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED"):
            return zero
        return LayerFigures(
            index, name, "MUL", shape, 2 * shape[-1], 2 * shape[-1], math.prod(shape), 0, ["ADD"]
        )
    if name in ("Activation", "ReLU", "LeakyReLU", "Softmax", "ELU", "PReLU"):
        act = c.get("activation") if name == "Activation" else name.lower()
        if name == "LeakyReLU":
            act = "leaky_relu"
        op = ACTIVATION_OPS.get(str(act))
        if act in FUSED_ACTIVATIONS or name == "ReLU":
            return (
                zero
                if prev_op in ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED", "ADD")
                else LayerFigures(index, name, "RELU", shape, 0, 0, math.prod(shape), 0)
            )
        return LayerFigures(
            index, name, op or f"ACTIVATION:{act}", shape, 0, 0, math.prod(shape), 0
        )
    if name in ("Add", "Subtract", "Multiply", "Average", "Maximum", "Minimum"):
        op = {
            "Add": "ADD",
            "Subtract": "SUB",
            "Multiply": "MUL",
            "Average": "ADD",
            "Maximum": "MAXIMUM",
            "Minimum": "MINIMUM",
        }[name]
        out = max(inputs, key=math.prod)
        return LayerFigures(index, name, op, out, 0, 0, math.prod(out), 0)
    if name == "Concatenate":
        axis = _int(c.get("axis", -1), "axis", index)
        axis = axis if axis >= 0 else len(shape) + axis
        total = sum(s[axis] for s in inputs)
        out = shape[:axis] + (total,) + shape[axis + 1 :]
        return LayerFigures(index, name, "CONCATENATION", out, 0, 0, math.prod(out), 0)
    if name in ("ZeroPadding2D", "ZeroPadding1D"):
        dims = 2 if name.endswith("2D") else 1
        pad = c.get("padding", 1)
        pads = (
            _pair(pad, "padding", index, dims)
            if not (isinstance(pad, (list, tuple)) and pad and isinstance(pad[0], (list, tuple)))
            else tuple(sum(p) // 2 for p in pad)
        )
        out = tuple(s + 2 * p for s, p in zip(shape[:-1], pads, strict=True)) + (shape[-1],)
        return LayerFigures(index, name, "PAD", out, 0, 0, math.prod(out), 0)
    if name == "UpSampling2D":
        size = _pair(c.get("size", 2), "size", index, 2)
        out = (shape[0] * size[0], shape[1] * size[1], shape[2])
        return LayerFigures(index, name, "RESIZE_NEAREST_NEIGHBOR", out, 0, 0, math.prod(out), 0)
    if name in ("Rescaling", "Normalization"):
        params = 2 * shape[-1] if name == "Normalization" else 0
        return LayerFigures(
            index, name, "MUL", shape, params, 4 * params, math.prod(shape), 0, ["ADD"]
        )
    raise CannotInfer(index, f"{name} is not a layer TinyForge can size statically")


def estimate(model: SourceModel) -> ModelEstimate:
    """Figures for `model`; raises CannotInfer naming the layer that stopped it."""
    if model.input_shape is None:
        raise CannotInfer(0, "no input shape (add keras.Input(shape=...) or input_shape=...)")
    if isinstance(model.input_shape, Unknown):
        raise CannotInfer(-1, f"the input shape is `{model.input_shape.text}`, not a constant")
    dims = [d for d in model.input_shape if d is not None]
    if len(dims) != len(model.input_shape):
        raise CannotInfer(-1, "the input shape has a free (None) dimension")
    input_shape = tuple(_int(d, "input shape", -1) for d in dims)
    shapes: dict[int, tuple[int, ...]] = {-1: input_shape}
    tensor_of: dict[int, int] = {-1: 0}  # layer → the tensor holding its output
    last_op: dict[int, str | None] = {-1: None}
    sizes = [math.prod(input_shape)]  # bytes per tensor (int8)
    steps: list[tuple[int, list[int]]] = []  # (output tensor, input tensors) per TFLite op
    figures: list[LayerFigures] = []
    ops: list[str] = []
    channel_data = 0

    def add_op(op: str, ins: list[int], nbytes: int) -> int:
        sizes.append(nbytes)
        steps.append((len(sizes) - 1, ins))
        ops.append(op)
        return len(sizes) - 1

    for index, layer in enumerate(model.layers):
        inbound = layer.inbound or [index - 1]
        fig = _figures(layer, [shapes[i] for i in inbound], index, last_op[inbound[0]])
        figures.append(fig)
        shapes[index] = fig.out_shape
        ins = [tensor_of[i] for i in inbound]
        if fig.op is None or fig.op == "RESHAPE":
            # Folded away, or a reshape TFLM runs in place on the same buffer.
            tensor_of[index] = ins[0]
            last_op[index] = last_op[inbound[0]] if fig.op is None else fig.op
            if fig.op:
                ops.append(fig.op)
            continue
        out_bytes = math.prod(fig.out_shape)
        chain = list(fig.extra_ops)
        if chain and chain[0] == "DEPTHWISE_CONV_2D":  # separable: depthwise, then pointwise
            mid = math.prod(fig.out_shape[:-1]) * shapes[inbound[0]][-1]
            ins = [add_op("DEPTHWISE_CONV_2D", ins, mid)]
            chain = chain[1:]
        tensor = add_op(fig.op, ins, out_bytes)
        for extra in chain:  # an activation the converter keeps as its own op
            tensor = add_op(extra, [tensor], out_bytes)
        if fig.op in ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED"):
            channel_data += TAIL_PER_CHANNEL * fig.out_shape[-1]
        tensor_of[index] = tensor
        last_op[index] = ops[-1]
    floor = _peak(steps, sizes)
    n_tensors = len(sizes) + 2 * sum(1 for f in figures if f.params)
    tail = TAIL_FIXED + TAIL_PER_TENSOR * n_tensors + TAIL_PER_OP * len(ops) + channel_data
    head = _align(floor)
    # 32-bit target: EvalTensor (24 → 12) and NodeAndRegistration (64 → 32) halve.
    target = head + tail - (TAIL_PER_TENSOR // 2) * n_tensors - 32 * len(ops)
    param_bytes = sum(f.param_bytes for f in figures)
    # Per-channel scales (float32) and zero points (int64) for weights and biases, and names.
    model_bytes = param_bytes + 3 * channel_data + 1500 + 120 * len(ops) + 150 * n_tensors
    return ModelEstimate(figures, sizes[0], floor, head + tail, target, model_bytes, ops)


def _align(n: int) -> int:
    return -(-n // ALIGN) * ALIGN


def _peak(steps: list[tuple[int, list[int]]], sizes: list[int]) -> int:
    """The most bytes live at once: each op's inputs and output, plus tensors needed later."""
    last_use: dict[int, int] = {}
    for step, (_, ins) in enumerate(steps):
        for t in ins:
            last_use[t] = step
    produced_at = {out: step for step, (out, _) in enumerate(steps)}
    produced_at[0] = -1
    peak = sizes[0]
    for step, (out, ins) in enumerate(steps):
        live = {out, *ins}
        live |= {t for t, last in last_use.items() if last > step and produced_at[t] < step}
        peak = max(peak, sum(_align(sizes[t]) for t in live))
    return peak
