"""TFLM's arena tail and the smallest working arena, simulated without TFLM.

The arena of TFLM's MicroAllocator has a head (planned activations, see `plan.py`) growing up
from the start and a tail (persistent data) growing down from the end. `simulate_arena` replays,
in TFLM's order, every allocation MicroInterpreter::AllocateTensors makes, with the alignment
rules of SingleArenaBufferAllocator, and checks every moment at which the two ends can meet:

1. allocator objects, SubgraphAllocations, TfLiteEvalTensor per tensor and NodeAndRegistration
   per op (micro_allocator.cc StartModelAllocation); the scratch-request list is a resizable
   buffer at the head start with room for 12 requests;
2. each op's parsed builtin options (MicroBuiltinDataAllocator, unrecorded by the recording
   allocator), then every kernel's Init (its OpData), then every kernel's Prepare (per-channel
   quantization arrays etc.) while temporary TfLiteTensors sit above the head;
3. FinishModelAllocation: scratch-buffer handles, variables, then CommitStaticMemoryPlan, whose
   AllocationInfo array and GreedyMemoryPlanner scratch (40 bytes per planned buffer) are
   temporaries between head and tail, and finally the planned head itself;
4. the interpreter's persistent TfLiteTensors (and quantization data) for inputs and outputs.

The per-kernel figures (OpData sizes, builtin option sizes, Prepare-time arrays and scratch
requests) are those of the *reference* kernels built into the `tflite-micro` Python package,
calibrated against its RecordingMicroAllocator per-kind report (bench/arena_calibrate.py
re-checks them). Ops missing from the table get deliberately generous figures and are listed
as approximations, so that an estimate errs on the large side: an arena that is too small
crashes a device, one that is a few bytes too large costs nothing.

Two struct layouts are simulated: the 64-bit host build that the measurement runs, and a
32-bit MCU (Cortex-M, Xtensa, RISC-V), where TFLM's pointer-bearing structs are smaller.
Per-kernel OpData and the allocator objects keep their host sizes on the target, which keeps
the target figure an upper bound.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from tinyforge.memory.plan import ARENA_ALIGNMENT, HeadPlan, ScratchRequest, align_up, plan_head
from tinyforge.memory.tflite_model import OpInfo, TensorInfo, TfliteModel

# --- struct layouts --------------------------------------------------------------------------


@dataclass(frozen=True)
class StructSizes:
    """sizeof/alignof of the TFLM structs that live in the arena, for one kind of build."""

    name: str
    pointer: int
    eval_tensor: int  # TfLiteEvalTensor {data*, dims*, type}
    node_and_registration: int  # TfLiteNode (6 pointers + int) + registration*
    tflite_tensor: int  # TfLiteTensor as built with TF_LITE_STATIC_MEMORY
    affine_quantization: int  # TfLiteAffineQuantization {scale*, zero_point*, int}
    allocation_info: int  # AllocationInfo {size_t, void**, 3 ints, bool}
    scratch_request: int  # internal::ScratchBufferRequest {size_t bytes, int, int}
    scratch_handle: int  # ScratchBufferHandle {uint8_t* data}
    subgraph_allocations: int  # SubgraphAllocations {NodeAndRegistration*, TfLiteEvalTensor*}
    # RecordingSingleArenaBufferAllocator + GreedyMemoryPlanner + RecordingMicroAllocator +
    # MicroBuiltinDataAllocator, created before the model is looked at. Calibrated on the host
    # (the per-kind report leaves them out; the tail total does not). The MCU build uses the
    # smaller non-recording classes, so the host figure is an upper bound there.
    allocator_objects: int


HOST_64 = StructSizes(
    name="64-bit host (tflite-micro Python package)",
    pointer=8,
    eval_tensor=24,
    node_and_registration=64,
    tflite_tensor=64,
    affine_quantization=24,
    allocation_info=32,
    scratch_request=16,
    scratch_handle=8,
    subgraph_allocations=16,
    allocator_objects=472,
)
TARGET_32 = StructSizes(
    name="32-bit MCU (Cortex-M, Xtensa, RISC-V)",
    pointer=4,
    eval_tensor=12,
    node_and_registration=32,
    tflite_tensor=40,
    affine_quantization=12,
    allocation_info=24,
    scratch_request=12,
    scratch_handle=4,
    subgraph_allocations=8,
    allocator_objects=472,
)

# Constants of micro_allocator.cc and greedy_memory_planner.h.
MAX_SCRATCH_BUFFERS_PER_OP = 12
PLANNER_BYTES_PER_BUFFER = 40  # BufferRequirements (16) + 3 ints + ListEntry (12)
_INT_ARRAY_HEADER = 4  # TfLiteIntArray {int size; int data[];}


# --- per-kernel knowledge ----------------------------------------------------------------------

# Parsed builtin options: (sizeof, alignof) of the TfLite*Params struct the op's parser
# allocates (tensorflow/lite/core/c/builtin_op_data.h as compiled into this TFLM build; CONV_2D,
# FULLY_CONNECTED and DEPTHWISE_CONV_2D checked against the recorded tail). Ops whose parser
# allocates nothing are absent here and listed in _NO_OPTIONS.
_BUILTIN_OPTIONS: dict[str, tuple[int, int]] = {
    "CONV_2D": (28, 4),
    "DEPTHWISE_CONV_2D": (28, 4),
    # 32 bytes aligned to 8 in this build (the header above has 16): seen in the tail of
    # models where an FC's options follow an odd number of 4-byte words.
    "FULLY_CONNECTED": (32, 8),
    "TRANSPOSE_CONV": (20, 4),
    "AVERAGE_POOL_2D": (40, 4),
    "MAX_POOL_2D": (40, 4),
    "L2_POOL_2D": (40, 4),
    "SOFTMAX": (4, 4),
    "LOG_SOFTMAX": (4, 4),
    "ADD": (8, 4),
    "SUB": (8, 4),
    "MUL": (4, 4),
    "DIV": (4, 4),
    "CONCATENATION": (8, 4),
    "RESHAPE": (36, 4),
    "SQUEEZE": (36, 4),
    "STRIDED_SLICE": (24, 4),
    "PACK": (8, 4),
    "UNPACK": (8, 4),
    "SHAPE": (4, 4),
    "MEAN": (1, 1),
    "SUM": (1, 1),
    "REDUCE_MAX": (1, 1),
    "REDUCE_MIN": (1, 1),
    "REDUCE_PROD": (1, 1),
    "LEAKY_RELU": (4, 4),
    "RESIZE_BILINEAR": (2, 1),
    "RESIZE_NEAREST_NEIGHBOR": (2, 1),
    "SPLIT": (4, 4),
    "SPLIT_V": (4, 4),
    "GATHER": (8, 4),
    "ARG_MAX": (4, 4),
    "ARG_MIN": (4, 4),
    "DEPTH_TO_SPACE": (4, 4),
    "SPACE_TO_DEPTH": (4, 4),
    "CAST": (8, 4),
    "SVDF": (12, 4),
    "UNIDIRECTIONAL_SEQUENCE_LSTM": (20, 4),
    "BATCH_MATMUL": (3, 1),
    "CUMSUM": (2, 1),
    "L2_NORMALIZATION": (4, 4),
    "MIRROR_PAD": (4, 4),
    "GELU": (1, 1),
    "IF": (8, 4),
    "WHILE": (8, 4),
    "CALL_ONCE": (4, 4),
    "VAR_HANDLE": (16, 8),
}
_NO_OPTIONS = frozenset(
    {
        "RELU", "RELU6", "RELU_N1_TO_1", "RELU_0_TO_1", "LOGISTIC", "TANH", "HARD_SWISH",
        "PAD", "PADV2", "TRANSPOSE", "EXPAND_DIMS", "QUANTIZE", "DEQUANTIZE", "NEG", "ABS",
        "SQRT", "RSQRT", "SQUARE", "EXP", "LOG", "SIN", "COS", "FLOOR", "CEIL", "ROUND",
        "SQUARED_DIFFERENCE", "MAXIMUM", "MINIMUM", "PRELU", "ELU", "SLICE", "ZEROS_LIKE",
        "FILL", "BROADCAST_TO", "BROADCAST_ARGS", "SELECT_V2", "LESS", "GREATER", "EQUAL",
        "NOT_EQUAL", "LESS_EQUAL", "GREATER_EQUAL", "LOGICAL_AND", "LOGICAL_OR", "LOGICAL_NOT",
        "FLOOR_DIV", "FLOOR_MOD", "BATCH_TO_SPACE_ND", "SPACE_TO_BATCH_ND", "ADD_N",
        "ASSIGN_VARIABLE", "READ_VARIABLE", "EMBEDDING_LOOKUP", "SIGN",
    }
)  # fmt: skip

# Bytes every kernel asks for in Init (context->AllocatePersistentBuffer(sizeof(OpData...))),
# host build, calibrated against 'Persistent buffer data' of single-op models. 0: no OpData.
_OPDATA: dict[str, int] = {
    "CONV_2D": 80,
    "DEPTHWISE_CONV_2D": 80,
    "FULLY_CONNECTED": 72,
    "TRANSPOSE_CONV": 88,
    "SOFTMAX": 80,
    "AVERAGE_POOL_2D": 32,
    "MAX_POOL_2D": 32,
    "MEAN": 44,
    "SUM": 44,
    "REDUCE_MAX": 44,
    "REDUCE_MIN": 44,
    "ADD": 60,
    "SUB": 52,
    "MUL": 36,
    "CONCATENATION": 80,
    "RELU": 28,
    "RELU6": 8,
    "LEAKY_RELU": 24,
    "LOGISTIC": 16,
    "TANH": 16,
    "HARD_SWISH": 20,
    "PAD": 56,
    "PADV2": 56,
    "STRIDED_SLICE": 84,
    "QUANTIZE": 32,
    "DEQUANTIZE": 32,
    "SQUARED_DIFFERENCE": 112,
    "ELU": 256,  # a 256-entry lookup table, allocated for float models too
    "ABS": 28,
    "RSQRT": 28,
    "DIV": 28,
    "PRELU": 28,
    "DEPTH_TO_SPACE": 20,
    "SPACE_TO_DEPTH": 20,
    "MIRROR_PAD": 20,
    "GATHER": 12,
    "LOG_SOFTMAX": 40,  # int8 only; float allocates nothing
    "SPACE_TO_BATCH_ND": 4,
    "BATCH_TO_SPACE_ND": 4,
    "RESHAPE": 0,
    "SHAPE": 0,
    "PACK": 0,
    "UNPACK": 0,
    "EXPAND_DIMS": 0,
    "SQUEEZE": 0,
    "TRANSPOSE": 0,
    "RESIZE_BILINEAR": 0,
    "RESIZE_NEAREST_NEIGHBOR": 0,
    "SLICE": 0,
    "SPLIT": 0,
    "CAST": 0,
    "ARG_MAX": 0,
    "NEG": 0,
    "EXP": 0,
    "LOG": 0,
    "SQRT": 0,
    "SQUARE": 0,
    "MAXIMUM": 0,
    "MINIMUM": 0,
    "ADD_N": 0,
}
# Generous stand-ins for ops the table does not know: larger than any OpData above, a full
# options struct, and one scratch buffer the size of the op's largest activation (a few
# kernels, e.g. TRANSPOSE_CONV int8, need one).
_UNKNOWN_OPDATA = 256
_UNKNOWN_OPTIONS = (64, 8)

# Ops that hold 2 int32 arrays per output channel (per-channel multiplier and shift),
# allocated in Prepare; the channel count is that of the weights' quantized dimension.
_PER_CHANNEL = {"CONV_2D": (1, 0), "DEPTHWISE_CONV_2D": (1, 3), "TRANSPOSE_CONV": (1, 0)}
# The same for FULLY_CONNECTED, only for integer inputs.
_PER_CHANNEL_INTEGER = {"FULLY_CONNECTED": (1, 0)}
# Kernels whose Prepare holds the temporary TfLiteTensors of their inputs and outputs twice at
# once (the reductions, TANH and TRANSPOSE_CONV call helpers that allocate them again); seen as
# larger transients in the smallest working arena.
_DOUBLE_TEMPS = frozenset(
    {"TRANSPOSE_CONV", "TANH", "MEAN", "SUM", "REDUCE_MAX", "REDUCE_MIN"}
)  # fmt: skip
# conv_common.cc / depthwise_conv_common.cc: Prepare holds output, input and filter, allocates
# the per-channel arrays, then CalculateOpData* takes input, filter, bias and output again.
_CONV_TEMPS = frozenset({"CONV_2D", "DEPTHWISE_CONV_2D"})


@dataclass
class OpCost:
    """What one op allocates in the arena besides its tensors, host sizes."""

    options: tuple[int, int] | None  # (size, alignment) of the parsed builtin options
    init: list[int]  # persistent buffers allocated in Init
    prepare: list[int]  # persistent buffers allocated in Prepare
    scratch: list[int]  # scratch buffers requested in Prepare (planned in the head)
    temp_tensors: list[int]  # tensor indices held as temporary TfLiteTensors in Prepare
    known: bool  # False: the op is not in the calibrated tables; figures are generous


def _channels(model: TfliteModel, op: OpInfo, spec: tuple[int, int]) -> int:
    position, dim = spec
    if position >= len(op.inputs) or op.inputs[position] < 0:
        return 0
    shape = model.tensors[op.inputs[position]].shape
    return shape[dim] if -len(shape) <= dim < len(shape) and shape[dim] > 0 else 0


def _elements(tensor: TensorInfo) -> int:
    count = 1
    for d in tensor.shape:
        count *= max(d, 0)
    return count


def _is_integer(tensor: TensorInfo) -> bool:
    return tensor.dtype in ("int8", "int16", "uint8")


def op_cost(model: TfliteModel, op: OpInfo) -> OpCost:
    """The arena allocations of one op's kernel (reference kernels of the Python package)."""
    name = op.op
    inputs = [model.tensors[i] for i in op.inputs if i >= 0]
    outputs = [model.tensors[i] for i in op.outputs if i >= 0]
    first = inputs[0] if inputs else None
    known = name in _OPDATA

    if name in _BUILTIN_OPTIONS:
        options: tuple[int, int] | None = _BUILTIN_OPTIONS[name]
    elif name in _NO_OPTIONS or name.startswith("CUSTOM:"):
        options = None
    else:
        options = _UNKNOWN_OPTIONS

    opdata = _OPDATA.get(name, _UNKNOWN_OPDATA)
    init = [opdata] if opdata else []

    prepare: list[int] = []
    spec = _PER_CHANNEL.get(name)
    if spec is None and first is not None and _is_integer(first):
        spec = _PER_CHANNEL_INTEGER.get(name)
    if spec is not None:
        channels = _channels(model, op, spec)
        prepare += [4 * channels, 4 * channels]

    scratch: list[int] = []
    if name in ("MEAN", "SUM") and first is not None and outputs:
        # reduce_common.cc: an int32 accumulator per output element for integer inputs, then
        # the index and resolved-axis arrays every reduction asks for.
        if _is_integer(first):
            scratch.append(4 * _elements(outputs[0]))
        scratch += _reduce_index_scratch(model, op)
    elif name in ("REDUCE_MAX", "REDUCE_MIN"):
        scratch += _reduce_index_scratch(model, op)
    elif name == "ADD_N":
        # add_n.cc: an array of input pointers.
        scratch.append(8 * len(inputs))
    elif name == "MIRROR_PAD" and first is not None:
        scratch += [4 * len(first.shape)] * 2
    elif name == "TRANSPOSE_CONV" and outputs and len(inputs) >= 3:
        # transpose_conv.cc: an int32 (int16 input: int64) accumulator per output element.
        data = model.tensors[op.inputs[2]]
        if data.dtype == "int8":
            scratch.append(4 * _elements(outputs[0]))
        elif data.dtype == "int16":
            scratch.append(8 * _elements(outputs[0]))
    elif not known:
        largest = max((t.nbytes for t in (*inputs, *outputs)), default=0)
        scratch.append(largest)

    temps = [i for i in (*op.inputs, *op.outputs) if i >= 0]
    if name in _CONV_TEMPS:
        first_round = [i for i in (*op.outputs[:1], *op.inputs[:2]) if i >= 0]
        temps = first_round + temps
    elif name in _DOUBLE_TEMPS or not known:
        temps = temps * 2
    return OpCost(
        options=options,
        init=init,
        prepare=prepare,
        scratch=[s for s in scratch if s > 0],
        temp_tensors=temps,
        known=known,
    )


def _reduce_index_scratch(model: TfliteModel, op: OpInfo) -> list[int]:
    rank = len(model.tensors[op.inputs[0]].shape)
    axis = model.tensors[op.inputs[1]] if len(op.inputs) > 1 and op.inputs[1] >= 0 else None
    axes = _elements(axis) if axis is not None else 1
    return [4 * rank, 4 * axes]


# --- the simulation --------------------------------------------------------------------------


def _align_down(value: int, alignment: int) -> int:
    return value - value % alignment


@dataclass
class ArenaSimulation:
    """One simulated AllocateTensors(): what the arena holds and the smallest size that works."""

    structs: StructSizes
    arena_bytes: int  # smallest size such that every larger arena works too (kTensorArenaSize)
    head_bytes: int  # planned activations + scratch buffers (the same on every build)
    tail_bytes: int  # persistent part, for an arena whose end is 16-byte aligned
    tail_parts: dict[str, int]  # tail bytes by kind, alignment padding included
    binding: str  # which moment of AllocateTensors needs the most room
    approximate_ops: list[str] = field(default_factory=list)  # ops with generous stand-ins

    @property
    def total_bytes(self) -> int:
        """head + tail: what RecordingMicroAllocator reports as its allocation total."""
        return self.head_bytes + self.tail_bytes


class _Arena:
    """SingleArenaBufferAllocator with addresses relative to a 16-aligned arena start.

    `end` may be any residue modulo 16: the tail's alignment padding depends on it. Sizes are
    checked afterwards: each moment at which head and tail could meet is recorded as
    (label, bytes needed from the arena start, tail address at that moment).
    """

    def __init__(self, end: int) -> None:
        self.tail = end
        self.end = end
        self.kinds: dict[str, int] = {}
        self.needs: list[tuple[str, int, int]] = []

    def persistent(self, size: int, alignment: int, kind: str) -> None:
        before = self.tail
        self.tail = _align_down(self.tail - size, alignment)
        self.kinds[kind] = self.kinds.get(kind, 0) + before - self.tail

    def need(self, label: str, head_end: int) -> None:
        """Head and temporaries reach `head_end` while the tail is where it is now."""
        self.needs.append((label, head_end, self.tail))


def _tensor_temp(arena_temp: int, tensor: TensorInfo, s: StructSizes) -> int:
    """Temp pointer after one temporary TfLiteTensor (with quantization data) is allocated."""
    p = align_up(arena_temp, s.pointer) + s.tflite_tensor
    if tensor.scale and tensor.zero_point:
        p = align_up(p, s.pointer) + s.affine_quantization
        p = align_up(p, 4) + _INT_ARRAY_HEADER + 4 * len(tensor.scale)
    return p


def _persistent_tensor(arena: _Arena, tensor: TensorInfo, s: StructSizes) -> None:
    arena.persistent(s.tflite_tensor, s.pointer, "persistent TfLiteTensor")
    if tensor.scale and tensor.zero_point:
        arena.persistent(s.affine_quantization, s.pointer, "persistent TfLiteTensor quantization")
        arena.persistent(
            _INT_ARRAY_HEADER + 4 * len(tensor.scale), 4, "persistent TfLiteTensor quantization"
        )


def _head_side(
    model: TfliteModel, costs: Sequence[OpCost], s: StructSizes, requests: int
) -> list[tuple[str, int, str, int]]:
    """Per op, where its Prepare's temporaries and then the scratch-request list end, from the
    arena start: (label, bytes, label, bytes). The head side does not depend on where the
    arena ends, so the sixteen replays share it."""
    side = []
    request_count = 0
    for op, cost in zip(model.ops, costs, strict=True):
        temp = requests
        for index in cost.temp_tensors:
            temp = _tensor_temp(temp, model.tensors[index], s)
        request_count += len(cost.scratch)
        requests = s.scratch_request * (request_count + MAX_SCRATCH_BUFFERS_PER_OP)
        side.append(
            (
                f"Prepare of op {op.index} ({op.op})",
                temp,
                f"scratch requests after op {op.index}",
                requests,
            )
        )
    return side


def _first_requests(s: StructSizes) -> int:
    """The scratch-request list: a resizable buffer at the head start with room for 12."""
    request_align = min(s.pointer, 8)
    return align_up(0, request_align) + s.scratch_request * MAX_SCRATCH_BUFFERS_PER_OP


def _replay(
    model: TfliteModel,
    costs: Sequence[OpCost],
    head: HeadPlan,
    s: StructSizes,
    end: int,
    extra_tensors: int,
    head_side: Sequence[tuple[str, int, str, int]],
) -> _Arena:
    arena = _Arena(end)
    subgraphs = max(model.subgraph_count, 1)
    tensor_count = len(model.tensors) + extra_tensors
    persistent = arena.persistent
    persistent(s.allocator_objects, 8, "allocator objects")
    persistent(s.subgraph_allocations * subgraphs, s.pointer, "allocator objects")
    requests = _first_requests(s)
    arena.need("start of allocation", requests)
    persistent(s.eval_tensor * tensor_count, s.pointer, "TfLiteEvalTensor")
    op_count = len(model.ops) + sum(model.other_subgraph_ops)
    persistent(s.node_and_registration * op_count, s.pointer, "NodeAndRegistration")

    for cost in costs:
        if cost.options is not None:
            persistent(cost.options[0], cost.options[1], "builtin options")
    for cost in costs:
        for size in cost.init:
            persistent(size, ARENA_ALIGNMENT, "kernel OpData")

    request_count = 0
    for cost, (prepare_label, temp, requests_label, requests) in zip(costs, head_side, strict=True):
        for size in cost.prepare:
            persistent(size, ARENA_ALIGNMENT, "kernel OpData")
        # Conservative: the temporaries are checked against the tail after this op's own
        # Prepare allocations, some of which TFLM makes before its temporaries.
        arena.need(prepare_label, temp)
        request_count += len(cost.scratch)
        arena.need(requests_label, requests)

    if request_count:
        # AllocateScratchBufferHandles runs once per subgraph (each time for all requests).
        for _ in range(subgraphs):
            persistent(s.scratch_handle * request_count, s.pointer, "scratch buffer handles")
    for tensor in model.tensors:
        if tensor.is_variable:
            persistent(max(tensor.nbytes, 1), ARENA_ALIGNMENT, "variable tensors")

    # CommitStaticMemoryPlan: subgraph offsets and AllocationInfo as temporaries after the
    # request list, then all the remaining memory for the planner, which needs 40 bytes a
    # buffer; afterwards the head is reserved from the arena start.
    temp = align_up(requests, s.pointer) + s.pointer * subgraphs
    temp = align_up(temp, s.pointer) + s.allocation_info * (tensor_count + request_count)
    planner = align_up(temp, ARENA_ALIGNMENT) + PLANNER_BYTES_PER_BUFFER * len(head.buffers)
    # GetAvailableMemory aligns the tail down to 16 as well.
    arena.needs.append(("memory planning", planner, _align_down(arena.tail, ARENA_ALIGNMENT)))
    arena.need("planned head", head.head_bytes)

    for group in (model.inputs, model.outputs):
        persistent(s.pointer * len(group), ARENA_ALIGNMENT, "input/output tensor lists")
        for index in group:
            _persistent_tensor(arena, model.tensors[index], s)
    arena.need("input and output tensors", head.head_bytes)
    return arena


def simulate_arena(
    model: TfliteModel,
    structs: StructSizes = HOST_64,
    head: HeadPlan | None = None,
    costs: Sequence[OpCost] | None = None,
) -> ArenaSimulation:
    """Simulate TFLM's AllocateTensors() for `model` on one build and find its arena size."""
    if costs is None:
        costs = [op_cost(model, op) for op in model.ops]
    if head is None:
        head = plan_head(model, scratch_requests(model, costs))
    extra = sum(model.other_subgraph_tensors)

    smallest_per_residue = []
    aligned: _Arena | None = None
    binding = ""
    head_side = _head_side(model, costs, structs, _first_requests(structs))
    for residue in range(ARENA_ALIGNMENT):
        arena = _replay(model, costs, head, structs, residue, extra, head_side)
        # Every need is: bytes from the start <= tail address, where the tail address is
        # residue - consumed + 16 k for an arena of residue + 16 k bytes.
        k, label = 0, arena.needs[0][0]
        for what, head_end, tail in arena.needs:
            needed_k = max(0, -(-(head_end - tail) // ARENA_ALIGNMENT))
            if needed_k > k:
                k, label = needed_k, what
        smallest_per_residue.append(residue + ARENA_ALIGNMENT * k)
        if residue == 0:
            aligned, binding = arena, label
    assert aligned is not None
    # The smallest size from which on every size works, whatever its residue.
    threshold = max(size - (ARENA_ALIGNMENT - 1) for size in smallest_per_residue)
    threshold = max(threshold, min(smallest_per_residue))
    return ArenaSimulation(
        structs=structs,
        arena_bytes=threshold,
        head_bytes=head.head_bytes,
        tail_bytes=aligned.end - aligned.tail,
        tail_parts=dict(aligned.kinds),
        binding=binding,
        approximate_ops=sorted(
            {op.op for op, c in zip(model.ops, costs, strict=True) if not c.known}
        ),
    )


def scratch_requests(
    model: TfliteModel, costs: Sequence[OpCost] | None = None
) -> list[ScratchRequest]:
    """The scratch buffers the kernels request, in request order (op by op)."""
    if costs is None:
        costs = [op_cost(model, op) for op in model.ops]
    return [
        ScratchRequest(op_index=op.index, nbytes=size, label=f"{op.op} scratch")
        for op, cost in zip(model.ops, costs, strict=True)
        for size in cost.scratch
    ]
