"""The tensor arena on a 32-bit MCU, derived from a measurement on the 64-bit host build.

The head (planned activation buffers) is the same on both. The tail holds TFLM structs whose
pointers halve on a 32-bit Cortex-M/Xtensa/RISC-V. With the model at hand, the static
simulation (`tail.py`) replays TFLM's allocations with both struct layouts, so the target figure
is the measurement minus exactly what the 32-bit layouts save. Everything the simulation does
not know keeps its host size, so the target figure stays an upper bound: under-estimating RAM
crashes a device, over-estimating only wastes a few bytes.
"""

from __future__ import annotations

from tinyforge.memory.measure import ArenaMeasurement
from tinyforge.memory.tflite_model import TfliteModel

# Without the model: the 64-bit → 32-bit size ratio of allocation kinds made only of
# pointer-sized fields (and padding that disappears with them): TfLiteEvalTensor
# {data*, dims*, type} is 24 → 12 bytes; NodeAndRegistration {TfLiteNode of 6 pointers and an
# int, registration*} is 64 → 32 bytes.
POINTER_ONLY_KINDS = {
    "TfLiteEvalTensor data": 0.5,
    "NodeAndRegistration struct": 0.5,
}


def target_arena_bytes(measurement: ArenaMeasurement, model: TfliteModel | None = None) -> int:
    """Upper bound of kTensorArenaSize on a 32-bit MCU for the measured model."""
    if model is not None:
        from tinyforge.memory.estimate import estimate_model

        static = estimate_model(model)
        if not static.problems:
            saved = static.host.arena_bytes - static.target.arena_bytes
            derived = measurement.arena_bytes - max(saved, 0)
            # The simulated target figure is an upper bound of its own (it keeps host sizes for
            # what it does not know); never go below it, never above the host measurement.
            return min(measurement.arena_bytes, max(derived, static.target.arena_bytes))
    saved = 0
    for kind, ratio in POINTER_ONLY_KINDS.items():
        used = measurement.breakdown.get(kind, 0)
        saved += int(used * (1 - ratio))
    return measurement.arena_bytes - saved
