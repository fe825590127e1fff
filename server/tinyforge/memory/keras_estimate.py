"""Memory figures of a Keras model *definition*, before any conversion, without TensorFlow.

The input is a structured description: an input shape and a list of Keras-style layers
(`class_name`, `config`, `inbound` indexes, -1 being the model input), as the language server
reads them from source code (tinyforge.memory.keras_source) or as `_keras_child` extracts them
from a saved model. `definition_to_tflite` emulates what the TFLite converter makes of it (int8
by default: batch-1 shapes, fused ReLU/ReLU6, BatchNormalization folded into the convolution
before it, Flatten/Reshape as SHAPE → STRIDED_SLICE → PACK → RESHAPE, 1-D layers wrapped in
EXPAND_DIMS/RESHAPE, per-channel int8 weights and int32 biases) and builds the same
`TfliteModel` the .tflite parser would, so the very same planner and arena simulation
(`estimate.py`) give the figures. Anything it cannot size raises KerasEstimateError naming the
layer: a missing number is better than a wrong one.

`run_keras_child` loads a real .keras/.h5 file in a child process (TensorFlow only there),
extracts that description and converts the model to .tflite for exact figures.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tinyforge.errors import ModelFileError, StageError, TinyForgeError
from tinyforge.jobs import child_environment, python_command
from tinyforge.memory.estimate import StaticEstimate, estimate_model
from tinyforge.memory.tflite_model import OpInfo, TensorInfo, TfliteModel

FUSABLE = {"CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED", "ADD", "SUB", "MUL"}
FUSED_ACTIVATIONS = {"relu", "relu6"}
# Keras activation → the TFLite op the converter emits for it (when not fused), for the
# estimator, the editor and repair alike. swish/silu become LOGISTIC then MUL (_activation
# builds both); activations missing here have no TFLite builtin (selu, softplus: the editor's
# old table named SELU and SOFTPLUS, ops TFLite's schema does not have).
ACTIVATION_OPS = {
    "softmax": "SOFTMAX",
    "sigmoid": "LOGISTIC",
    "tanh": "TANH",
    "hard_swish": "HARD_SWISH",
    "leaky_relu": "LEAKY_RELU",
    "elu": "ELU",
    "gelu": "GELU",
    "log_softmax": "LOG_SOFTMAX",
    "exponential": "EXP",
    "relu": "RELU",
    "relu6": "RELU6",
    "swish": "LOGISTIC",
    "silu": "LOGISTIC",
}
IDENTITY = {
    "InputLayer", "Dropout", "SpatialDropout1D", "SpatialDropout2D", "SpatialDropout3D",
    "GaussianNoise", "GaussianDropout", "AlphaDropout", "ActivityRegularization",
}  # fmt: skip
# Bytes of the flatbuffer besides the weights, per tensor (name, shape, quantization record),
# per op and per quantized channel (float scale + int64 zero point); fitted to converter output.
_FB_FIXED = 1400
_FB_PER_TENSOR = 130
_FB_PER_OP = 40
_FB_PER_CHANNEL = 12


class KerasEstimateError(TinyForgeError):
    """The definition has something the static pass cannot size; `.layer` says where."""

    def __init__(self, layer: int, message: str) -> None:
        self.layer = layer
        super().__init__(message)


@dataclass
class KerasEstimate:
    """Figures of a definition, from the emulated conversion."""

    model: TfliteModel  # the emulated converter output
    static: StaticEstimate
    layer_ops: list[list[int]]  # per description layer: indexes of the ops it became
    model_bytes_estimate: int
    quantization: str
    notes: list[str] = field(default_factory=list)

    @property
    def arena_bytes_estimate(self) -> int:
        return self.static.arena_bytes

    @property
    def arena_bytes_target(self) -> int:
        return self.static.arena_bytes_target

    @property
    def arena_floor_bytes(self) -> int:
        return self.static.floor_bytes

    def to_dict(self) -> dict[str, Any]:
        return {
            "quantization": self.quantization,
            "ops": self.model.op_counts(),
            "model_bytes_estimate": self.model_bytes_estimate,
            "arena_bytes_estimate": self.arena_bytes_estimate,
            "arena_bytes_target": self.arena_bytes_target,
            "arena_floor_bytes": self.arena_floor_bytes,
            "layers": [layer.to_dict() for layer in self.static.layers],
            "notes": [*self.notes, *self.static.notes, *self.static.problems],
        }


# --- reading descriptions ----------------------------------------------------------------------


def _field(obj: Any, name: str, default: Any = None) -> Any:
    if isinstance(obj, dict):
        return obj.get(name, default)
    return getattr(obj, name, default)


def _int(value: Any, what: str, index: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        text = getattr(value, "text", None)
        shown = f"`{text}`" if text else repr(value)
        raise KerasEstimateError(index, f"layer {index}: {what} is {shown}, not an integer")
    return value


def _ints(value: Any, what: str, index: int, count: int) -> tuple[int, ...]:
    if isinstance(value, list | tuple):
        items = tuple(_int(v, what, index) for v in value)
        if len(items) != count:
            raise KerasEstimateError(
                index, f"layer {index}: {what} has {len(items)} values, expected {count}"
            )
        return items
    return (_int(value, what, index),) * count


def _text(value: Any, what: str, index: int, default: str) -> str:
    if value is None:
        return default
    if isinstance(value, dict):  # a serialized activation object
        value = value.get("config", {}).get("name", value.get("class_name"))
    if not isinstance(value, str):
        text = getattr(value, "text", None)
        raise KerasEstimateError(index, f"layer {index}: {what} is `{text or value}`, not known")
    return value.lower()


# --- building the emulated graph ----------------------------------------------------------------


class _Graph:
    def __init__(self, quantized: bool, static_batch: bool = False) -> None:
        self.quantized = quantized
        # TinyForge converts with a fixed batch of 1: reshapes then need no shape arithmetic.
        self.static_batch = static_batch
        self.tensors: list[TensorInfo] = []
        self.ops: list[OpInfo] = []
        self.producer: dict[int, int] = {}
        self.consumers: dict[int, int] = {}

    @property
    def act_dtype(self) -> str:
        return "int8" if self.quantized else "float32"

    def tensor(
        self,
        shape: Sequence[int],
        dtype: str | None = None,
        *,
        constant: bool = False,
        channels: int = 1,
        name: str = "",
    ) -> int:
        """Add a tensor; constants carry `channels` quantization scales (0: none)."""
        dtype = dtype or self.act_dtype
        shape = tuple(int(d) for d in shape)
        itemsize = {"int8": 1, "int32": 4, "float32": 4, "int16": 2, "int64": 8}[dtype]
        if not self.quantized:
            scales = 0
        elif constant:
            scales = channels
        else:
            scales = 1 if dtype == "int8" else 0  # activations; int32 shape tensors have none
        self.tensors.append(
            TensorInfo(
                index=len(self.tensors),
                name=name,
                shape=shape,
                dtype=dtype,
                nbytes=math.prod(shape) * itemsize,
                is_constant=constant,
                is_variable=False,
                scale=[1.0] * scales,
                zero_point=[0] * scales,
            )
        )
        return len(self.tensors) - 1

    def const_int(self, shape: Sequence[int]) -> int:
        return self.tensor(shape, "int32", constant=True, channels=0)

    def op(self, name: str, inputs: Sequence[int], outputs: Sequence[int]) -> int:
        index = len(self.ops)
        self.ops.append(OpInfo(index=index, op=name, inputs=tuple(inputs), outputs=tuple(outputs)))
        for t in outputs:
            self.producer[t] = index
        for t in inputs:
            if t >= 0:
                self.consumers[t] = self.consumers.get(t, 0) + 1
        return index

    def shape(self, t: int) -> tuple[int, ...]:
        return self.tensors[t].shape

    def weights(self, shape: Sequence[int], channels: int) -> int:
        dtype = "int8" if self.quantized else "float32"
        return self.tensor(shape, dtype, constant=True, channels=channels)

    def bias(self, channels: int) -> int:
        dtype = "int32" if self.quantized else "float32"
        return self.tensor((channels,), dtype, constant=True, channels=channels)


def _spatial(size: int, kernel: int, stride: int, padding: str, dilation: int = 1) -> int:
    if padding == "same":
        return -(-size // stride)
    effective = (kernel - 1) * dilation + 1
    return max(0, (size - effective) // stride + 1)


@dataclass
class _Layer:
    class_name: str
    config: dict[str, Any]
    inbound: list[int]


def _layers_of(description: Any) -> tuple[tuple[int, ...], list[_Layer], str]:
    problems = _field(description, "problems") or []
    if problems:  # what the source reader could not follow (keras_source.SourceModel)
        raise KerasEstimateError(-1, f"The model cannot be read statically: {problems[0]}.")
    if not _field(description, "layers"):
        raise KerasEstimateError(-1, "The model has no layers.")
    shape = _field(description, "input_shape")
    if shape is None:
        raise KerasEstimateError(-1, "The model has no input shape (add keras.Input(shape=...)).")
    if not isinstance(shape, list | tuple):
        text = getattr(shape, "text", shape)
        raise KerasEstimateError(-1, f"The input shape is `{text}`, not a constant.")
    dims = []
    for d in shape:
        if d is None:
            raise KerasEstimateError(-1, "The input shape has a free (None) dimension.")
        dims.append(_int(d, "an input dimension", -1))
    layers = []
    for index, layer in enumerate(_field(description, "layers", []) or []):
        inbound = list(_field(layer, "inbound", None) or [index - 1])
        layers.append(
            _Layer(
                str(_field(layer, "class_name")), dict(_field(layer, "config", {}) or {}), inbound
            )
        )
    quantization = str(_field(description, "quantization", "int8") or "int8")
    return tuple(dims), layers, quantization


def definition_to_tflite(description: Any) -> tuple[TfliteModel, list[list[int]]]:
    """The TfliteModel the converter would make of the definition, and ops per layer."""
    input_shape, layers, quantization = _layers_of(description)
    g = _Graph(
        quantized=quantization == "int8",
        static_batch=bool(_field(description, "static_batch", False)),
    )
    model_input = g.tensor((1, *input_shape), name="input")
    outputs: dict[int, int] = {-1: model_input}
    layer_ops: list[list[int]] = []
    for index, layer in enumerate(layers):
        first_op = len(g.ops)
        for i in layer.inbound:
            if i not in outputs:
                raise KerasEstimateError(
                    index, f"layer {index} takes its input from layer {i}, which is unknown"
                )
        ins = [outputs[i] for i in layer.inbound]
        outputs[index] = _emit(g, layer, ins, index)
        layer_ops.append(list(range(first_op, len(g.ops))))
    used_as_input = {i for layer in layers for i in layer.inbound}
    final = [outputs[i] for i in range(len(layers)) if i not in used_as_input] or [model_input]
    model = TfliteModel(
        tensors=tuple(g.tensors),
        ops=tuple(g.ops),
        inputs=(model_input,),
        outputs=tuple(dict.fromkeys(final)),
        model_bytes=0,
        subgraph_count=1,
    )
    model.model_bytes = _model_bytes(model)
    return model, layer_ops


def _model_bytes(model: TfliteModel) -> int:
    weights = sum(t.nbytes for t in model.tensors if t.is_constant)
    channels = sum(len(t.scale) for t in model.tensors)
    return (
        _FB_FIXED
        + weights
        + _FB_PER_TENSOR * len(model.tensors)
        + _FB_PER_OP * len(model.ops)
        + _FB_PER_CHANNEL * channels
    )


def _activation(g: _Graph, t: int, act: str, index: int, *, fusable: bool) -> int:
    """Apply an activation to tensor t: fused into its producer when TFLite would."""
    if act in ("linear", "none", ""):
        return t
    producer = g.producer.get(t)
    if (
        act in FUSED_ACTIVATIONS
        and fusable
        and producer is not None
        and g.ops[producer].op in FUSABLE
        and g.consumers.get(t, 0) == 0
    ):
        return t
    if act in ("swish", "silu"):
        sig = g.tensor(g.shape(t))
        g.op("LOGISTIC", [t], [sig])
        out = g.tensor(g.shape(t))
        g.op("MUL", [t, sig], [out])
        return out
    op = ACTIVATION_OPS.get(act)
    if op is None:
        raise KerasEstimateError(
            index, f"layer {index}: activation '{act}' has no TFLite op TinyForge knows"
        )
    out = g.tensor(g.shape(t))
    g.op(op, [t], [out])
    return out


def _reshape(g: _Graph, t: int, target: tuple[int, ...]) -> int:
    """Keras 3 reshapes with a dynamic batch: SHAPE → STRIDED_SLICE → PACK → RESHAPE."""
    if g.static_batch:
        return _static_reshape(g, t, (1, *target))
    rank = len(g.shape(t))
    shape = g.tensor((rank,), "int32")
    g.op("SHAPE", [t], [shape])
    batch = g.tensor((), "int32")
    g.op("STRIDED_SLICE", [shape, g.const_int((1,)), g.const_int((1,)), g.const_int((1,))], [batch])
    packed = g.tensor((1 + len(target),), "int32")
    g.op("PACK", [batch, *[g.const_int(()) for _ in target]], [packed])
    out = g.tensor((1, *target))
    g.op("RESHAPE", [t, packed], [out])
    return out


def _static_reshape(g: _Graph, t: int, shape: tuple[int, ...]) -> int:
    out = g.tensor(shape)
    g.op("RESHAPE", [t, g.const_int((len(shape),))], [out])
    return out


def _expand(g: _Graph, t: int) -> int:
    """(1, L, C) → (1, 1, L, C), as the converter wraps 1-D layers."""
    _, length, channels = g.shape(t)
    out = g.tensor((1, 1, length, channels))
    g.op("EXPAND_DIMS", [t, g.const_int(())], [out])
    return out


def _conv(g: _Graph, layer: _Layer, t: int, index: int, dims: int) -> int:
    c = layer.config
    name = layer.class_name
    shape = g.shape(t)
    if len(shape) != dims + 2:
        raise KerasEstimateError(
            index, f"layer {index}: {name} needs a {dims + 1}-D input, got {shape[1:]}"
        )
    kernel = _ints(c.get("kernel_size", 3), "kernel_size", index, dims)
    strides = _ints(c.get("strides", 1), "strides", index, dims)
    dilation = _ints(c.get("dilation_rate", 1), "dilation_rate", index, dims)
    padding = _text(c.get("padding"), "padding", index, "valid")
    use_bias = c.get("use_bias", True) is not False
    if dims == 1:
        t = _expand(g, t)
        kernel, strides, dilation = (1, *kernel), (1, *strides), (1, *dilation)
    _, height, width, cin = g.shape(t)
    out_h = _spatial(height, kernel[0], strides[0], padding, dilation[0])
    out_w = _spatial(width, kernel[1], strides[1], padding, dilation[1])
    depthwise = name.startswith("Depthwise")
    separable = name.startswith("Separable")
    if depthwise or separable:
        mult = _int(c.get("depth_multiplier", 1), "depth_multiplier", index)
        mid = cin * mult
        dw_out = g.tensor((1, out_h, out_w, mid))
        w = g.weights((1, kernel[0], kernel[1], mid), mid)
        g.op("DEPTHWISE_CONV_2D", [t, w, g.bias(mid)], [dw_out])
        t = dw_out
        if separable:
            filters = _int(c.get("filters"), "filters", index)
            out = g.tensor((1, out_h, out_w, filters))
            bias = g.bias(filters) if use_bias else -1
            g.op("CONV_2D", [t, g.weights((filters, 1, 1, mid), filters), bias], [out])
            t = out
    else:
        filters = _int(c.get("filters"), "filters", index)
        dilated = any(d > 1 for d in dilation)
        if dilated:
            # The converter wraps a dilated convolution in SPACE_TO_BATCH_ND/BATCH_TO_SPACE_ND.
            s2b = g.tensor(
                (
                    dilation[0] * dilation[1],
                    -(-height // dilation[0]),
                    -(-width // dilation[1]),
                    cin,
                )
            )
            g.op("SPACE_TO_BATCH_ND", [t, g.const_int((2,)), g.const_int((2, 2))], [s2b])
            t = s2b
            sh, sw = g.shape(t)[1:3]
            kh, kw = kernel
            inner = g.tensor(
                (g.shape(t)[0], _spatial(sh, kh, 1, "valid"), _spatial(sw, kw, 1, "valid"), filters)
            )
        else:
            inner = g.tensor((1, out_h, out_w, filters))
        bias = g.bias(filters) if use_bias else -1
        w = g.weights((filters, kernel[0], kernel[1], cin), filters)
        g.op("CONV_2D", [t, w, bias], [inner])
        t = inner
        if dilated:
            out = g.tensor((1, out_h, out_w, filters))
            g.op("BATCH_TO_SPACE_ND", [t, g.const_int((2,)), g.const_int((2, 2))], [out])
            t = out
    # The activation fuses into the convolution, before the 1-D layer's closing reshape.
    act = _text(c.get("activation"), "activation", index, "linear")
    t = _activation(g, t, act, index, fusable=True)
    if dims == 1:
        t = _static_reshape(g, t, (1, out_w, g.shape(t)[-1]))
    return t


def _pool(g: _Graph, layer: _Layer, t: int, index: int, dims: int) -> int:
    c = layer.config
    op = "MAX_POOL_2D" if layer.class_name.startswith("Max") else "AVERAGE_POOL_2D"
    pool = _ints(c.get("pool_size", 2), "pool_size", index, dims)
    stride_value = c.get("strides")
    strides = pool if stride_value is None else _ints(stride_value, "strides", index, dims)
    padding = _text(c.get("padding"), "padding", index, "valid")
    if dims == 1:
        t = _expand(g, t)
        pool, strides = (1, *pool), (1, *strides)
    _, height, width, channels = g.shape(t)
    out_shape = (
        1,
        _spatial(height, pool[0], strides[0], padding),
        _spatial(width, pool[1], strides[1], padding),
        channels,
    )
    out = g.tensor(out_shape)
    g.op(op, [t], [out])
    if dims == 1:
        out = _static_reshape(g, out, (1, out_shape[2], channels))
    return out


def _emit(g: _Graph, layer: _Layer, ins: list[int], index: int) -> int:
    name = layer.class_name
    c = layer.config
    t = ins[0]
    shape = g.shape(t)
    if name in IDENTITY:
        return t
    if name in ("Conv2D", "DepthwiseConv2D", "SeparableConv2D", "Convolution2D"):
        return _conv(g, layer, t, index, 2)
    if name in ("Conv1D", "DepthwiseConv1D", "SeparableConv1D", "Convolution1D"):
        return _conv(g, layer, t, index, 1)
    if name == "Dense":
        units = _int(c.get("units"), "units", index)
        out = g.tensor((*shape[:-1], units))
        bias = g.bias(units) if c.get("use_bias", True) is not False else -1
        g.op("FULLY_CONNECTED", [t, g.weights((units, shape[-1]), units), bias], [out])
        act = _text(c.get("activation"), "activation", index, "linear")
        return _activation(g, out, act, index, fusable=True)
    if name in ("MaxPooling2D", "MaxPool2D", "AveragePooling2D", "AvgPool2D"):
        return _pool(g, layer, t, index, 2)
    if name in ("MaxPooling1D", "MaxPool1D", "AveragePooling1D", "AvgPool1D"):
        return _pool(g, layer, t, index, 1)
    if name.startswith("Global") and name[6:].startswith(("Average", "Max", "Avg")):
        op = "MEAN" if "Av" in name else "REDUCE_MAX"
        keep = bool(c.get("keepdims", False))
        axes = len(shape) - 2
        out_shape = (1,) + (1,) * axes + (shape[-1],) if keep else (1, shape[-1])
        out = g.tensor(out_shape)
        g.op(op, [t, g.const_int((axes,))], [out])
        return out
    if name == "Flatten":
        return _reshape(g, t, (math.prod(shape[1:]),))
    if name == "Reshape":
        target = c.get("target_shape")
        count = len(target) if isinstance(target, list | tuple) else 1
        dims = list(_ints(target, "target_shape", index, count))
        total = math.prod(shape[1:])
        if dims.count(-1) == 1:
            known = math.prod(d for d in dims if d != -1)
            dims[dims.index(-1)] = total // known if known else 0
        if math.prod(dims) != total:
            raise KerasEstimateError(
                index, f"layer {index}: cannot reshape {shape[1:]} into {tuple(dims)}"
            )
        return _reshape(g, t, tuple(dims))
    if name == "BatchNormalization":
        producer = g.producer.get(t)
        if producer is not None and g.ops[producer].op in FUSABLE - {"ADD", "SUB", "MUL"}:
            return t  # folded into the convolution or dense layer before it
        scaled = g.tensor(shape)
        g.op("MUL", [t, g.weights((shape[-1],), 1)], [scaled])
        out = g.tensor(shape)
        g.op("ADD", [scaled, g.weights((shape[-1],), 1)], [out])
        return out
    if name in ("Activation", "ReLU", "Softmax", "LeakyReLU", "ELU"):
        if name == "Activation":
            act = _text(c.get("activation"), "activation", index, "linear")
        elif name == "ReLU":
            max_value = c.get("max_value")
            act = "relu6" if max_value == 6 or max_value == 6.0 else "relu"
            if c.get("negative_slope"):
                act = "leaky_relu"
        elif name == "LeakyReLU":
            act = "leaky_relu"
        else:
            act = name.lower()
        return _activation(g, t, act, index, fusable=True)
    if name == "Normalization":
        # Adapted mean and variance become constants: SUB the mean, then MUL by 1/std. With one
        # scalar for the whole input (axis=None) the converter folds that MUL into the weights
        # of the convolution after it, as TinyForge's keyword-spotting models do; per-feature
        # statistics (axis=-1, sensor models) keep it.
        axis = c.get("axis", -1)
        # A saved model's config says axis=None as an empty tuple.
        scalar = axis is None or (isinstance(axis, list | tuple) and not axis)
        stats = (1,) * len(shape) if scalar else (*(1,) * (len(shape) - 1), shape[-1])
        out = g.tensor(shape)
        g.op("SUB", [t, g.weights(stats, 1)], [out])
        if not scalar:
            scaled = g.tensor(shape)
            g.op("MUL", [out, g.weights(stats, 1)], [scaled])
            out = scaled
        return out
    if name == "PReLU":
        out = g.tensor(shape)
        g.op("PRELU", [t, g.weights(shape[1:], 1)], [out])
        return out
    if name in ("Add", "Subtract", "Multiply", "Maximum", "Minimum", "Average"):
        op = {"Add": "ADD", "Subtract": "SUB", "Multiply": "MUL", "Maximum": "MAXIMUM",
              "Minimum": "MINIMUM", "Average": "ADD"}[name]  # fmt: skip
        out_shape = max((g.shape(i) for i in ins), key=math.prod)
        out = ins[0]
        for other in ins[1:]:
            result = g.tensor(out_shape)
            g.op(op, [out, other], [result])
            out = result
        if name == "Average":
            half = g.tensor(out_shape)
            g.op("MUL", [out, g.weights((), 1)], [half])
            out = half
        return out
    if name == "Concatenate":
        axis = _int(c.get("axis", -1), "axis", index)
        axis = axis if axis >= 0 else len(shape) + axis
        total = sum(g.shape(i)[axis] for i in ins)
        out = g.tensor((*shape[:axis], total, *shape[axis + 1 :]))
        g.op("CONCATENATION", ins, [out])
        return out
    if name in ("ZeroPadding2D", "ZeroPadding1D"):
        pad_dims = 2 if name.endswith("2D") else 1
        pad = c.get("padding", 1)
        if isinstance(pad, list | tuple) and pad and isinstance(pad[0], list | tuple):
            pads = [sum(_ints(p, "padding", index, 2)) for p in pad]
        else:
            pads = [2 * p for p in _ints(pad, "padding", index, pad_dims)]
        out = g.tensor((1, *(s + p for s, p in zip(shape[1:-1], pads, strict=True)), shape[-1]))
        g.op("PAD", [t, g.const_int((len(shape), 2))], [out])
        return out
    if name == "Cropping2D":
        crop = c.get("cropping", 0)
        if isinstance(crop, list | tuple) and crop and isinstance(crop[0], list | tuple):
            cuts = [sum(_ints(p, "cropping", index, 2)) for p in crop]
        else:
            cuts = [2 * p for p in _ints(crop, "cropping", index, 2)]
        out = g.tensor((1, shape[1] - cuts[0], shape[2] - cuts[1], shape[3]))
        g.op("STRIDED_SLICE", [t, *(g.const_int((4,)) for _ in range(3))], [out])
        return out
    if name in ("UpSampling2D", "Resizing"):
        if name == "UpSampling2D":
            size = _ints(c.get("size", 2), "size", index, 2)
            out_hw: tuple[int, ...] = (shape[1] * size[0], shape[2] * size[1])
            interpolation = _text(c.get("interpolation"), "interpolation", index, "nearest")
        else:
            out_hw = (_int(c.get("height"), "height", index), _int(c.get("width"), "width", index))
            interpolation = _text(c.get("interpolation"), "interpolation", index, "bilinear")
        op = "RESIZE_BILINEAR" if interpolation == "bilinear" else "RESIZE_NEAREST_NEIGHBOR"
        out = g.tensor((1, *out_hw, shape[-1]))
        g.op(op, [t, g.const_int((2,))], [out])
        return out
    if name == "Permute":
        order = _ints(c.get("dims"), "dims", index, len(shape) - 1)
        out = g.tensor((1, *(shape[d] for d in order)))
        g.op("TRANSPOSE", [t, g.const_int((len(shape),))], [out])
        return out
    if name == "Rescaling":
        out = g.tensor(shape)
        g.op("MUL", [t, g.weights((), 1)], [out])
        if c.get("offset", 0):
            shifted = g.tensor(shape)
            g.op("ADD", [out, g.weights((), 1)], [shifted])
            out = shifted
        return out
    if name == "Conv2DTranspose":
        filters = _int(c.get("filters"), "filters", index)
        kernel = _ints(c.get("kernel_size", 3), "kernel_size", index, 2)
        strides = _ints(c.get("strides", 1), "strides", index, 2)
        padding = _text(c.get("padding"), "padding", index, "valid")
        if padding == "same":
            out_hw = (shape[1] * strides[0], shape[2] * strides[1])
        else:
            out_hw = tuple(
                s * st + max(k - st, 0)
                for s, k, st in zip(shape[1:3], kernel, strides, strict=True)
            )
        dims_t = g.tensor((4,), "int32")
        g.op("SHAPE", [t], [dims_t])
        batch = g.tensor((), "int32")
        g.op(
            "STRIDED_SLICE",
            [dims_t, g.const_int((1,)), g.const_int((1,)), g.const_int((1,))],
            [batch],
        )
        packed = g.tensor((4,), "int32")
        g.op("PACK", [batch, g.const_int(()), g.const_int(()), g.const_int(())], [packed])
        out = g.tensor((1, *out_hw, filters))
        w = g.weights((filters, kernel[0], kernel[1], shape[-1]), filters)
        g.op("TRANSPOSE_CONV", [packed, w, t], [out])
        act = _text(c.get("activation"), "activation", index, "linear")
        return _activation(g, out, act, index, fusable=False)
    raise KerasEstimateError(
        index, f"layer {index}: {name} is not a layer TinyForge can size statically"
    )


def estimate_from_description(description: Any) -> KerasEstimate:
    """Figures of a Keras model definition (see the module docstring); no TensorFlow."""
    model, layer_ops = definition_to_tflite(description)
    static = estimate_model(model)
    quantization = str(_field(description, "quantization", "int8") or "int8")
    return KerasEstimate(
        model=model,
        static=static,
        layer_ops=layer_ops,
        model_bytes_estimate=model.model_bytes,
        quantization=quantization,
    )


# --- real Keras files, in a child process ------------------------------------------------------

_CHILD_MODULE = "tinyforge.memory._keras_child"


def run_keras_child(
    path: Path, out_dir: Path, *, quantization: str = "int8", timeout: float = 600
) -> dict[str, Any]:
    """Load `path` with Keras in a child, write out_dir/model.tflite, return its result.

    The result holds the model's description (for `estimate_from_description`) unless the
    model has layers the description cannot express, and the conversion time.
    """
    started = time.monotonic()
    env = child_environment()  # without the API key
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    package_root = str(Path(__file__).resolve().parents[2])
    env["PYTHONPATH"] = os.pathsep.join(p for p in (package_root, env.get("PYTHONPATH")) if p)
    try:
        proc = subprocess.run(
            python_command(  # safe path (-P)
                "-m", _CHILD_MODULE, str(path), str(out_dir), "--quantization", quantization
            ),
            capture_output=True,
            text=True,
            errors="replace",
            timeout=timeout,
            env=env,
            stdin=subprocess.DEVNULL,
            check=False,
        )
    except subprocess.TimeoutExpired:
        raise StageError(
            "inspect", f"Loading and converting {path.name} took over {timeout:g} s."
        ) from None
    result: dict[str, Any] | None = None
    for line in proc.stdout.splitlines():
        if line.startswith("{"):
            try:
                result = json.loads(line)
            except json.JSONDecodeError:
                continue
    if result is None:
        tail = "\n".join(proc.stderr.splitlines()[-30:])
        raise StageError(
            "inspect",
            f"Loading {path.name} with Keras failed (the child process exited with status "
            f"{proc.returncode} without a result).",
            log_tail=tail,
        )
    if not result.get("ok"):
        raise ModelFileError(str(result.get("error") or f"Keras could not load {path.name}."))
    result["seconds"] = time.monotonic() - started
    return result
