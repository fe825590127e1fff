"""What the firmware needs per board family: TFLM library, build flags, arena size and placement.

Only data and small decisions live here; the files themselves are the Jinja2 templates
`platformio.ini.j2` and `main.cpp.j2`.
"""

from __future__ import annotations

import math

from tinyforge.boards import Board

# TFLM runtimes that ship inside a board's Arduino core, so lib_deps must not name them:
# the Arduino-ESP32 3.x core bundles Espressif's esp-tflite-micro (with ESP-NN kernels) for
# every target except the ESP32-C2 (esp32-arduino-lib-builder's idf_component.yml).
BUNDLED_TFLM = {
    "espressif/esp-tflite-micro": "the Arduino-ESP32 3.x core (pioarduino platform)",
}

# The header each TFLM library for Arduino asks sketches to include before TFLM's own headers.
# The bundled ESP32 runtime has none: its headers are on the core's include path.
UMBRELLA_HEADERS = {
    "Chirale_TensorFLowLite": "Chirale_TensorFlowLite.h",
    "Arduino_TensorFlowLite": "TensorFlowLite.h",
    "TensorFlowLite_ESP32": "TensorFlowLite_ESP32.h",
}

# The firmware's arena is the measured smallest working size plus this margin. The measurement
# uses TFLM's reference kernels; the optimised kernels the boards really run (ESP-NN, CMSIS-NN)
# ask for scratch buffers of their own, and a different TFLM version can lay the arena out a
# little differently. 10 % (at least 1 KB) covers both in the models tried.
ARENA_MARGIN_FRACTION = 0.10
ARENA_MARGIN_MIN_BYTES = 1024

# ESP32 chips cannot hold large static arrays: "statically allocated DRAM is limited to 160 KB"
# on the ESP32 (ESP-IDF docs), and the Arduino core and its Wi-Fi/BT buffers take part of it,
# so sketches hit "region `dram0_0_seg' overflowed" with static buffers of ~100 KB. Above these
# sizes the generated firmware allocates the arena from the heap at start-up instead (internal
# RAM first, PSRAM when the board has it), where the rest of the RAM is.
STATIC_ARENA_LIMITS = {
    "esp32": 96 * 1024,
    "esp32s3": 160 * 1024,
    "esp32c3": 160 * 1024,
}

ARENA_HEAP_MACRO = "TINYFORGE_ARENA_IN_HEAP"


def is_bundled(board: Board) -> bool:
    return tflm_package(board) in BUNDLED_TFLM


def tflm_package(board: Board) -> str:
    """`owner/name` of the board's TFLM library, without its version."""
    return board.tflm_library.split("@", 1)[0].strip()


def tflm_lib_deps(board: Board) -> str | None:
    """The lib_deps entry for the board's TFLM library; None when its core already has TFLM."""
    return None if is_bundled(board) else board.tflm_library


def umbrella_header(board: Board) -> str | None:
    if is_bundled(board):
        return None
    for key, header in UMBRELLA_HEADERS.items():
        if key.lower() in board.tflm_library.lower():
            return header
    return "TensorFlowLite.h"


def arena_margin_bytes(measured: int) -> int:
    margin = max(ARENA_MARGIN_MIN_BYTES, math.ceil(measured * ARENA_MARGIN_FRACTION))
    return -(-margin // 16) * 16  # whole 16-byte units: the arena itself is 16-byte aligned


def firmware_arena_bytes(measured: int) -> int:
    """kTensorArenaSize: what the firmware allocates for a measured arena."""
    return measured + arena_margin_bytes(measured)


def static_arena_limit(board: Board) -> int | None:
    return STATIC_ARENA_LIMITS.get(board.family)


def arena_in_heap(board: Board, arena_bytes: int) -> bool:
    """True when a static arena of this size is a known link failure on the board."""
    limit = static_arena_limit(board)
    return limit is not None and arena_bytes > limit


def has_heap_arena_option(board: Board) -> bool:
    """Boards where moving the arena to the heap can help: their static RAM is only part of it."""
    return board.family in STATIC_ARENA_LIMITS or board.psram_bytes > 0


def extra_build_flags(board: Board) -> list[tuple[str, str]]:
    """(flag, why) pairs beyond TFLM's own flags."""
    flags: list[tuple[str, str]] = []
    if board.psram_bytes > 0 and board.family in STATIC_ARENA_LIMITS:
        flags.append(("-DBOARD_HAS_PSRAM", "the board's PSRAM is usable for the arena"))
    return flags
