"""Per-source-layer figures of a Keras definition, for the editor and the proposal checker.

The figures come from `keras_estimate` (the converter emulated, then TFLM's own planner and
tail replayed); this module only regroups them by the layer the user wrote, so a diagnostic or
a hover can point at `layers.Conv2D(...)` rather than at a TFLite op.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from tinyforge.memory.keras_estimate import KerasEstimateError, estimate_from_description
from tinyforge.memory.keras_source import SourceModel

# The estimator's error, under the name the editor and the proposal checker use.
CannotInfer = KerasEstimateError


@dataclass
class LayerFigures:
    index: int
    class_name: str
    op: str | None  # the main TFLite op it becomes; None when the converter folds it away
    out_shape: tuple[int, ...]
    params: int  # weights + biases (elements)
    param_bytes: int
    activation_bytes: int  # its output tensor
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


def estimate(model: SourceModel) -> ModelEstimate:
    """Figures for `model`; raises CannotInfer naming the layer that stopped it."""
    # TinyForge converts with a fixed batch of one (see convert/keras_worker.py).
    description = {
        "input_shape": model.input_shape,
        "layers": model.layers,
        "problems": model.problems,
        "static_batch": True,
    }
    est = estimate_from_description(description)
    tflite = est.model
    by_op = {info.index: info for info in est.static.layers}
    figures: list[LayerFigures] = []
    # estimate_from_description took the input shape as constant: an Unknown one raised there.
    input_shape = tuple(model.input_shape) if isinstance(model.input_shape, tuple) else ()
    for index, (layer, op_indexes) in enumerate(zip(model.layers, est.layer_ops, strict=True)):
        infos = [by_op[i] for i in op_indexes if i in by_op]
        names = [tflite.ops[i].op for i in op_indexes]
        main = _main_op(names)
        # Weights and biases only: the int32 shape constants of reshapes are not parameters.
        params = sum(
            math.prod(t.shape)
            for i in op_indexes
            if tflite.ops[i].op in _WEIGHTED
            for t in (tflite.tensors[j] for j in tflite.ops[i].inputs[1:] if j >= 0)
            if t.is_constant
        )
        last = infos[-1] if infos else None
        inbound = layer.inbound[0] if layer.inbound else index - 1
        # A folded layer (Dropout, a BatchNormalization merged into its conv) passes its input on.
        shape = (
            tuple(last.output_shape[1:])
            if last
            else (figures[inbound].out_shape if inbound >= 0 else input_shape)
        )
        figures.append(
            LayerFigures(
                index=index,
                class_name=layer.class_name,
                op=main,
                out_shape=shape,
                params=params,
                param_bytes=sum(info.params_bytes for info in infos),
                activation_bytes=last.activation_bytes if last else 0,
                macs=sum(info.macs for info in infos),
                extra_ops=[n for n in names if n != main],
            )
        )
    return ModelEstimate(
        layers=figures,
        input_bytes=tflite.tensors[tflite.inputs[0]].nbytes,
        arena_floor_bytes=est.arena_floor_bytes,
        arena_bytes_estimate=est.arena_bytes_estimate,
        arena_bytes_target=est.arena_bytes_target,
        model_bytes_estimate=est.model_bytes_estimate,
        ops=[op.op for op in tflite.ops],
    )


_WEIGHTED = {"CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED", "TRANSPOSE_CONV", "MUL", "ADD"}

# The op that names a layer when the converter emits several (e.g. EXPAND_DIMS around a Conv1D).
_PLUMBING = {"RESHAPE", "EXPAND_DIMS", "SQUEEZE", "SHAPE", "STRIDED_SLICE", "PACK", "QUANTIZE"}


def _main_op(names: list[str]) -> str | None:
    real = [n for n in names if n not in _PLUMBING]
    if real:
        return real[0]
    return names[-1] if names else None
