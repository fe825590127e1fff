"""The static memory estimate of a parsed model: milliseconds, no TensorFlow, no TFLM.

`estimate_model` puts together the head plan (`plan.py`), the simulated tail and smallest
working arena (`tail.py`) for the 64-bit host build and a 32-bit MCU, the activation floor,
and a per-layer table. It is what the editor calls on every change.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

from tinyforge.memory.plan import HeadPlan, plan_head
from tinyforge.memory.tail import (
    HOST_64,
    TARGET_32,
    ArenaSimulation,
    op_cost,
    scratch_requests,
    simulate_arena,
)
from tinyforge.memory.tflite_model import OpInfo, TensorInfo, TfliteModel

OFFLINE_PLAN_METADATA = "OfflineMemoryAllocation"


@dataclass(frozen=True)
class LayerInfo:
    """One tensor-producing op of subgraph 0."""

    index: int
    name: str  # a readable layer name, taken from the output tensor's name
    tensor: str  # the output tensor's full name (TFLite keeps the Keras layer path in it)
    op: str
    output_shape: tuple[int, ...]
    dtype: str
    params_bytes: int  # constant inputs: weights, biases, constant shapes
    activation_bytes: int  # the output tensor
    macs: int  # multiply-accumulates of one inference (0 for ops without any)

    def to_dict(self) -> dict[str, object]:
        return {
            "index": self.index,
            "name": self.name,
            "tensor": self.tensor,
            "op": self.op,
            "output_shape": list(self.output_shape),
            "dtype": self.dtype,
            "params_bytes": self.params_bytes,
            "activation_bytes": self.activation_bytes,
            "macs": self.macs,
        }


@dataclass
class StaticEstimate:
    model: TfliteModel
    head: HeadPlan
    host: ArenaSimulation  # the 64-bit host build of the tflite-micro package
    target: ArenaSimulation  # a 32-bit MCU
    layers: list[LayerInfo]
    problems: list[str] = field(default_factory=list)  # the figures cannot be trusted
    notes: list[str] = field(default_factory=list)  # the figures are approximate, upward
    seconds: float = 0.0

    @property
    def arena_bytes(self) -> int:
        return self.host.arena_bytes

    @property
    def arena_bytes_target(self) -> int:
        return self.target.arena_bytes

    @property
    def floor_bytes(self) -> int:
        return self.head.floor_bytes

    def largest_live_tensor(self) -> str | None:
        """The biggest buffer at the peak of the plan, in words (for a budget violation)."""
        live = self.head.live_at(self.head.peak_scope)
        if not live:
            return None
        biggest = max(live, key=lambda b: b.size)
        if biggest.tensor is None:
            return f"{biggest.label} = {biggest.nbytes / 1024:.1f} KB"
        tensor = self.model.tensors[biggest.tensor]
        dims = "×".join(str(d) for d in tensor.shape if d != 1) or "1"
        name = layer_name(tensor.name) or f"tensor {tensor.index}"
        role = "model input" if biggest.tensor in self.model.inputs else "output"
        return f"{name} {role} {dims} {tensor.dtype} = {tensor.nbytes / 1024:.1f} KB"


def estimate_model(model: TfliteModel) -> StaticEstimate:
    """Static host and target arena figures, floor and per-layer table of a parsed model."""
    started = time.perf_counter()
    costs = [op_cost(model, op) for op in model.ops]
    head = plan_head(model, scratch_requests(model, costs))
    host = simulate_arena(model, HOST_64, head, costs)
    target = simulate_arena(model, TARGET_32, head, costs)
    estimate = StaticEstimate(
        model=model,
        head=head,
        host=host,
        target=target,
        layers=describe_layers(model),
        problems=model_problems(model),
    )
    if host.approximate_ops:
        estimate.notes.append(
            "No calibrated figures for op(s) "
            + ", ".join(host.approximate_ops)
            + ": generous stand-ins were used, so the static arena estimate is on the high side."
        )
    if model.subgraph_count > 1:
        estimate.notes.append(
            f"The model has {model.subgraph_count} subgraphs; the static plan covers subgraph 0 "
            "only, so the activations of control-flow bodies are not in the estimate."
        )
    estimate.seconds = time.perf_counter() - started
    return estimate


def model_problems(model: TfliteModel) -> list[str]:
    """Reasons why TFLM cannot allocate the model as it stands, one sentence each."""
    problems = []
    unknown = [t for t in model.tensors if any(d < 0 for d in t.shape)]
    if unknown:
        names = ", ".join(f"'{t.name}' {list(t.shape)}" for t in unknown[:3])
        more = f" and {len(unknown) - 3} more" if len(unknown) > 3 else ""
        problems.append(
            f"{len(unknown)} tensor(s) have unknown dimensions ({names}{more}); TFLM needs "
            "every shape fixed: convert with a fixed batch size of 1."
        )
    unsized = [
        t for t in model.tensors
        if t.nbytes == 0 and not t.is_constant and all(d >= 0 for d in t.shape)
        and math.prod(t.shape) > 0
    ]  # fmt: skip
    if unsized:
        types = ", ".join(sorted({t.dtype for t in unsized}))
        problems.append(f"Tensors of type {types} have no fixed size; TFLM cannot plan them.")
    if OFFLINE_PLAN_METADATA in model.metadata_names:
        problems.append(
            "The model carries an offline memory plan (OfflineMemoryAllocation), which TFLM "
            "follows instead of its own planner; the static plan does not model it."
        )
    return problems


def describe_layers(model: TfliteModel) -> list[LayerInfo]:
    layers = []
    for op in model.ops:
        outputs = [model.tensors[i] for i in op.outputs if i >= 0]
        if not outputs:
            continue
        out = outputs[0]
        params = sum(
            model.tensors[i].nbytes
            for i in set(op.inputs)
            if i >= 0 and model.tensors[i].is_constant
        )
        layers.append(
            LayerInfo(
                index=op.index,
                name=layer_name(out.name) or f"{op.op.lower()}_{op.index}",
                tensor=out.name,
                op=op.op,
                output_shape=out.shape,
                dtype=out.dtype,
                params_bytes=params,
                activation_bytes=sum(t.nbytes for t in outputs),
                macs=op_macs(model, op),
            )
        )
    return layers


def layer_name(tensor_name: str) -> str:
    """'sequential_1/conv2d_2/Relu;sequential_1/...' → 'conv2d_2'.

    The converter names an op's output after the TensorFlow ops fused into it, joined by ';',
    each a path ending in the Keras layer and the TensorFlow op; models nested in a wrapper
    (TinyForge's batch-1 conversion) only add leading parts. Other names are kept as they are.
    """
    first = tensor_name.split(";", 1)[0]
    parts = [p for p in first.split("/") if p]
    if len(parts) >= 3:
        return parts[-2]
    return first


def _elements(tensor: TensorInfo) -> int:
    return math.prod(max(d, 0) for d in tensor.shape)


def op_macs(model: TfliteModel, op: OpInfo) -> int:
    """Multiply-accumulates of the compute-heavy ops, from their shapes."""

    def tensor(position: int, outputs: bool = False) -> TensorInfo | None:
        refs = op.outputs if outputs else op.inputs
        if position < len(refs) and refs[position] >= 0:
            return model.tensors[refs[position]]
        return None

    out = tensor(0, outputs=True)
    if out is None:
        return 0
    name = op.op
    weights = tensor(1)
    if name == "CONV_2D" and weights is not None and len(weights.shape) == 4:
        _, kh, kw, cin = weights.shape
        return _elements(out) * kh * kw * cin
    if name == "DEPTHWISE_CONV_2D" and weights is not None and len(weights.shape) == 4:
        return _elements(out) * weights.shape[1] * weights.shape[2]
    if name == "FULLY_CONNECTED" and weights is not None and len(weights.shape) == 2:
        return _elements(out) * weights.shape[1]
    if name == "TRANSPOSE_CONV" and weights is not None and len(weights.shape) == 4:
        data = tensor(2)
        if data is not None:
            cout, kh, kw, _ = weights.shape
            return _elements(data) * kh * kw * cout
    if name == "BATCH_MATMUL":
        lhs = tensor(0)
        if lhs is not None and lhs.shape:
            return _elements(out) * lhs.shape[-1]
    return 0
