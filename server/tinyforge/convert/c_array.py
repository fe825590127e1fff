"""Bytes and arrays as C initialiser lists (what `xxd -i` does, without needing xxd)."""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np


def hex_bytes(data: bytes, per_line: int = 12, indent: str = "    ") -> str:
    lines = []
    for start in range(0, len(data), per_line):
        chunk = data[start : start + per_line]
        lines.append(indent + ", ".join(f"0x{b:02x}" for b in chunk) + ",")
    return "\n".join(lines)


def numbers(values: Iterable[float | int], per_line: int = 16, indent: str = "    ") -> str:
    items = [_literal(v) for v in values]
    lines = []
    for start in range(0, len(items), per_line):
        lines.append(indent + ", ".join(items[start : start + per_line]) + ",")
    return "\n".join(lines)


def _literal(value: float | int) -> str:
    if isinstance(value, (int, np.integer)):
        return str(int(value))
    return f"{float(value):.8g}f"


def c_type(dtype: np.dtype) -> str:
    return {
        "int8": "int8_t",
        "uint8": "uint8_t",
        "int16": "int16_t",
        "int32": "int32_t",
        "float32": "float",
    }[np.dtype(dtype).name]
