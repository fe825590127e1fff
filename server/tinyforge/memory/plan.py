"""Static memory plan of TFLM's arena head: tensor lifetimes and the default greedy planner.

This reproduces what TFLM's MicroAllocator does in CommitStaticMemoryPlan, step by step, so that
the planned head matches the real interpreter's byte for byte without running it:

- which buffers are planned (micro_allocation_info.cc, InitializeAllocationInfo): every tensor
  without data in the flatbuffer, that is not a variable and has a non-zero size, then every
  scratch buffer a kernel requested in Prepare, in that order;
- their lifetimes in "allocation scopes" (MarkAllocationLifetimes): graph inputs and outputs
  are created at scope 0, op i runs in scope i + 1; an op's outputs are created in its scope,
  its inputs and outputs are last used in it, its scratch buffers live in it only; graph
  outputs live to the end;
- sizes rounded up to MicroArenaBufferAlignment() (16);
- GreedyMemoryPlanner::CalculateOffsetsIfNeeded: buffers are sorted by size, largest first (a
  stable bubble sort over the ids in *reverse* order, so equal sizes go highest id first), the
  first is put at offset 0, and every later one into the first gap, between buffers live at the
  same time, that is big enough, else after the last of them.

Everything here is pure Python on a parsed model: no TensorFlow, no TFLM.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from tinyforge.memory.tflite_model import TfliteModel

# MicroArenaBufferAlignment() in tensorflow/lite/micro/micro_arena_constants.h.
ARENA_ALIGNMENT = 16


def align_up(n: int, alignment: int = ARENA_ALIGNMENT) -> int:
    return (n + alignment - 1) // alignment * alignment


@dataclass(frozen=True)
class ScratchRequest:
    """A scratch buffer a kernel asks for in Prepare (RequestScratchBufferInArena)."""

    op_index: int  # the op (node) of subgraph 0 that requested it
    nbytes: int
    label: str = "scratch"


@dataclass
class PlannedBuffer:
    label: str  # tensor name, or '<op> scratch'
    tensor: int | None  # tensor index; None for a scratch buffer
    nbytes: int  # bytes requested
    size: int  # aligned size the planner places
    first: int  # first allocation scope in which it is live
    last: int  # last allocation scope in which it is live
    offset: int = -1


@dataclass
class HeadPlan:
    buffers: list[PlannedBuffer]  # in TFLM's AddBuffer order
    head_bytes: int  # GreedyMemoryPlanner::GetMaximumMemorySize()
    floor_bytes: int  # peak of simultaneously live (aligned) bytes: no planner can do better
    peak_scope: int  # the scope at which that peak happens
    scopes: int  # number of allocation scopes (ops + 1)

    def live_at(self, scope: int) -> list[PlannedBuffer]:
        return [b for b in self.buffers if b.first <= scope <= b.last]


def planned_buffers(
    model: TfliteModel, scratch: Sequence[ScratchRequest] = ()
) -> list[PlannedBuffer]:
    """The buffers TFLM plans in the head, with their lifetimes, in AddBuffer order."""
    unset = -1
    first = [unset] * len(model.tensors)
    last = [unset] * len(model.tensors)

    def created(index: int, scope: int) -> None:
        # UpdateFirstCreated: a (re)creation also restarts the lifetime.
        first[index] = scope
        last[index] = scope

    for index in (*model.inputs, *model.outputs):
        if index >= 0:
            created(index, 0)
    scratch_life: dict[int, tuple[int, int]] = {}
    scope = 0
    for op in model.ops:
        scope += 1
        for index in op.outputs:
            if index >= 0:
                created(index, scope)
        for index in (*op.inputs, *op.outputs):
            if index >= 0:
                last[index] = scope
        for k, request in enumerate(scratch):
            if request.op_index == op.index:
                scratch_life[k] = (scope, scope)
    for index in model.outputs:
        if index >= 0:
            last[index] = scope

    buffers = []
    for tensor in model.tensors:
        if tensor.is_constant or tensor.is_variable or tensor.nbytes == 0:
            continue
        buffers.append(
            PlannedBuffer(
                label=tensor.name or f"tensor {tensor.index}",
                tensor=tensor.index,
                nbytes=tensor.nbytes,
                size=align_up(tensor.nbytes),
                first=first[tensor.index],
                last=last[tensor.index],
            )
        )
    for k, request in enumerate(scratch):
        # A request whose op never runs keeps TFLM's uninitialised lifetime (-1, -1).
        begin, end = scratch_life.get(k, (unset, unset))
        buffers.append(
            PlannedBuffer(
                label=request.label,
                tensor=None,
                nbytes=request.nbytes,
                size=align_up(request.nbytes),
                first=begin,
                last=end,
            )
        )
    return buffers


def greedy_offsets(buffers: Sequence[PlannedBuffer]) -> int:
    """Place the buffers like GreedyMemoryPlanner; set their offsets, return the head size."""
    count = len(buffers)
    if count == 0:
        return 0
    # Online buffers fill the sort arrays from the tail, so the ids start in reverse order;
    # the bubble sort is stable and descending, so equal sizes keep that reverse id order.
    order = sorted(range(count - 1, -1, -1), key=lambda i: -buffers[i].size)
    # Placed buffers as (offset, index), kept sorted by offset like TFLM's linked list; a new
    # buffer goes after every placed buffer with the same offset (TFLM inserts before the
    # first entry with a strictly greater offset, except at the very front).
    placed: list[tuple[int, int]] = []
    for n, i in enumerate(order):
        wanted = buffers[i]
        candidate = 0
        if n > 0:
            for offset, j in placed:
                other = buffers[j]
                if other.first > wanted.last or wanted.first > other.last:
                    continue  # not live at the same time
                if offset - candidate >= wanted.size:
                    break  # the gap before this buffer is big enough
                candidate = max(candidate, offset + other.size)
        wanted.offset = candidate
        _insert_by_offset(placed, candidate, i)
    return max(b.offset + b.size for b in buffers)


def _insert_by_offset(placed: list[tuple[int, int]], offset: int, index: int) -> None:
    if placed and placed[0][0] > offset:
        placed.insert(0, (offset, index))
        return
    position = len(placed)
    for k in range(1, len(placed)):
        if placed[k][0] > offset:
            position = k
            break
    placed.insert(position, (offset, index))


def plan_head(model: TfliteModel, scratch: Sequence[ScratchRequest] = ()) -> HeadPlan:
    """The head of the arena as TFLM plans it, and the floor no planner can beat."""
    buffers = planned_buffers(model, scratch)
    head = greedy_offsets(buffers)
    scopes = len(model.ops) + 1
    floor, peak_scope = 0, 0
    for scope in range(-1, scopes):
        live = sum(b.size for b in buffers if b.first <= scope <= b.last)
        if live > floor:
            floor, peak_scope = live, scope
    return HeadPlan(
        buffers=buffers, head_bytes=head, floor_bytes=floor, peak_scope=peak_scope, scopes=scopes
    )
