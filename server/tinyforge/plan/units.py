"""Memory sizes as people write them: "64 KB", "0.5 MB", "1,024 bytes", "50%", "half"."""

from __future__ import annotations

import math
import re

from tinyforge.errors import PlanError

__all__ = ["KIB", "MIB", "SIZE_PATTERN", "format_size", "parse_size"]

KIB = 1024
MIB = 1024 * 1024

# Binary multiples for every spelling, on purpose: microcontroller datasheets, PlatformIO and the
# vendors' board pages all mean 1024 bytes by "KB", so a user's "256 KB of flash" is the board's
# 262144 bytes, not 256000.
_UNITS: dict[str, int] = {
    "b": 1,
    "byte": 1,
    "bytes": 1,
    "k": KIB,
    "kb": KIB,
    "kib": KIB,
    "kbyte": KIB,
    "kbytes": KIB,
    "kilobyte": KIB,
    "kilobytes": KIB,
    "kibibyte": KIB,
    "kibibytes": KIB,
    "m": MIB,
    "mb": MIB,
    "mib": MIB,
    "mbyte": MIB,
    "mbytes": MIB,
    "megabyte": MIB,
    "megabytes": MIB,
    "mebibyte": MIB,
    "mebibytes": MIB,
    "g": 1024 * MIB,
    "gb": 1024 * MIB,
    "gib": 1024 * MIB,
    "gigabyte": 1024 * MIB,
    "gigabytes": 1024 * MIB,
}

_FRACTIONS: dict[str, float] = {
    "half": 0.5,
    "a half": 0.5,
    "one half": 0.5,
    "quarter": 0.25,
    "a quarter": 0.25,
    "one quarter": 0.25,
    "third": 1 / 3,
    "a third": 1 / 3,
    "one third": 1 / 3,
    "two thirds": 2 / 3,
    "three quarters": 0.75,
}

# A number with optional thousands separators and decimals: "1,024", "0.5", "65536".
_NUMBER = r"\d{1,3}(?:,\d{3})+(?:\.\d+)?|\d+(?:\.\d+)?|\.\d+"
_UNIT_ALTERNATION = "|".join(sorted(_UNITS, key=len, reverse=True))

# Numbers spelled out: "sixty four kilobytes", "one hundred and twenty KB", "half a megabyte".
_ONES = {
    w: n
    for n, w in enumerate(
        [
            "zero",
            "one",
            "two",
            "three",
            "four",
            "five",
            "six",
            "seven",
            "eight",
            "nine",
            "ten",
            "eleven",
            "twelve",
            "thirteen",
            "fourteen",
            "fifteen",
            "sixteen",
            "seventeen",
            "eighteen",
            "nineteen",
        ]
    )
}
_TENS = {
    w: 10 * n
    for n, w in enumerate(
        ["twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety"], 2
    )
}
_SMALL = (
    rf"(?:(?:{'|'.join(_TENS)})(?:[\s-]+(?:{'|'.join(w for w in _ONES if _ONES[w] < 10)}))?"
    rf"|{'|'.join(sorted(_ONES, key=len, reverse=True))})"
)
_WORD_NUMBER = (
    rf"(?:(?:{_SMALL}|a|one)\s+(?:hundred|thousand)(?:\s+(?:and\s+)?{_SMALL})?"
    rf"|{_SMALL}|half\s+an?|an?)"
)
# Only whole unit words after a spelled number: "a b" or "one k" are not sizes in a sentence.
_WORD_UNITS = "|".join(sorted((u for u in _UNITS if len(u) > 1), key=len, reverse=True))

# Used by the planner to find sizes inside sentences; parse_size accepts exactly what it finds.
SIZE_PATTERN = (
    rf"(?:(?<![\w.,])(?:{_WORD_NUMBER})[\s-]*(?:{_WORD_UNITS})\b"
    rf"|(?<![\w.,])(?:{_NUMBER})\s*(?:%|percent\b|per\s*cent\b)"
    rf"|(?<![\w.,])(?:{_NUMBER})\s*(?:{_UNIT_ALTERNATION})\b"
    rf"|\b(?:two\s+thirds|three\s+quarters|(?:a\s+|one\s+)?(?:half|quarter|third))\b)"
)

_FULL = re.compile(rf"^(?P<num>{_NUMBER})\s*(?:(?P<pct>%|percent|per\s*cent)|(?P<unit>[a-z]+))?$")


def parse_size(text: str, *, total: int | None = None) -> int:
    """Bytes meant by `text`.

    Units are binary: KB, kB, K, KiB and kilobyte all mean 1024 bytes, MB and MiB 1024 * 1024
    (the embedded convention PlatformIO and board vendors follow). A bare number is bytes.
    Percentages and fractions ("50%", "half", "a quarter") are of `total`, which they require.
    Raises PlanError for anything else.
    """
    cleaned = " ".join(text.strip().lower().split())
    spelled = _SPELLED.match(cleaned)
    if spelled is not None:
        value = _words_to_number(spelled["num"])
        if value is not None:
            cleaned = f"{value:g} {spelled['unit']}"
    if cleaned in _FRACTIONS:
        return _of_total(_FRACTIONS[cleaned], total, text)
    match = _FULL.match(cleaned)
    if match is None:
        raise PlanError(f"'{text.strip()}' is not a size: write it like '64 KB', '1 MB' or '50%'.")
    value = float(match["num"].replace(",", ""))
    if match["pct"]:
        return _of_total(value / 100.0, total, text)
    unit = match["unit"] or "b"
    if unit not in _UNITS:
        raise PlanError(f"'{text.strip()}' has an unknown unit '{unit}': use bytes, KB or MB.")
    size = value * _UNITS[unit]
    if not math.isfinite(size):
        raise PlanError(f"'{text.strip()}' is too large to be a size.")
    return round(size)


_SPELLED = re.compile(rf"^(?P<num>{_WORD_NUMBER})[\s-]*(?P<unit>{_WORD_UNITS})$")


def _words_to_number(text: str) -> float | None:
    """ "sixty-four" → 64, "one hundred and twenty" → 120, "half a" → 0.5, "a" → 1."""
    words = [w for w in re.split(r"[\s-]+", text) if w and w != "and"]
    if words[:1] == ["half"]:
        return 0.5
    total = current = 0
    for word in words:
        if word in ("a", "an"):
            current = 1
        elif word in _ONES:
            current += _ONES[word]
        elif word in _TENS:
            current += _TENS[word]
        elif word == "hundred":
            current = max(current, 1) * 100
        elif word == "thousand":
            total += max(current, 1) * 1000
            current = 0
        else:
            return None
    return float(total + current)


def _of_total(fraction: float, total: int | None, text: str) -> int:
    if total is None:
        raise PlanError(f"'{text.strip()}' is relative: say of what (e.g. '50% of the RAM').")
    size = total * fraction
    if not math.isfinite(size):
        raise PlanError(f"'{text.strip()}' is too large to be a size.")
    return round(size)


def format_size(size: int) -> str:
    """A short human form in the same binary units parse_size reads: 262144 -> '256 KB'."""
    for unit, factor in (("MB", MIB), ("KB", KIB)):
        if size >= factor:
            value = size / factor
            return f"{value:.0f} {unit}" if value == int(value) else f"{value:.1f} {unit}"
    return f"{size} bytes"
