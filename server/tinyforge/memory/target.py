"""The tensor arena on a 32-bit MCU, derived from a measurement on the 64-bit host build.

The head (planned activation buffers) is the same on both. The tail holds TFLM structs whose
pointers halve on a 32-bit Cortex-M/Xtensa/RISC-V. Only structs made of pointer-sized fields are
scaled, by their exact ratio; everything else keeps its host size, so the target figure stays an
upper bound: under-estimating RAM crashes a device, over-estimating only wastes a few bytes.
"""

from __future__ import annotations

from tinyforge.memory.measure import ArenaMeasurement
from tinyforge.memory.tflite_model import TfliteModel

# 64-bit → 32-bit size ratio of allocation kinds made only of pointer-sized fields (and padding
# that disappears with them): TfLiteEvalTensor {data*, dims*, type} is 24 → 12 bytes;
# NodeAndRegistration {TfLiteNode of pointers and an int, registration*} is 64 → 32 bytes.
POINTER_ONLY_KINDS = {
    "TfLiteEvalTensor data": 0.5,
    "NodeAndRegistration struct": 0.5,
}


def target_arena_bytes(measurement: ArenaMeasurement, model: TfliteModel | None = None) -> int:
    del model  # kept for callers: a later refinement may weigh per-op persistent data
    saved = 0
    for kind, ratio in POINTER_ONLY_KINDS.items():
        used = measurement.breakdown.get(kind, 0)
        saved += int(used * (1 - ratio))
    return measurement.arena_bytes - saved
