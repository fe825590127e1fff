"""What every reader of the request shares: number words, masking and pattern flags.

Positions matter (a path, a label column or a board name must not also be read as class names),
so the request is "masked" step by step: each span that has been understood is blanked out with
spaces of the same length, keeping offsets valid, before the next step looks at the text.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable

from tinyforge.plan.offline.lexicon import lexicon

# Writes one plain-English sentence to the spec's assumptions (each sentence once, in order).
Assume = Callable[[str], None]

IGNORECASE = re.IGNORECASE

NUMBER_WORDS: dict[str, int] = lexicon().numbers("numbers")
# Longest first so "a couple of" wins over shorter words; \d{1,6} keeps int() cheap and safe.
NUM = r"(?:\d{1,6}|" + "|".join(sorted(map(re.escape, NUMBER_WORDS), key=len, reverse=True)) + ")"


def rx(pattern: str) -> re.Pattern[str]:
    return re.compile(pattern, IGNORECASE)


def to_int(text: str) -> int | None:
    word = " ".join(text.lower().split())
    if word in NUMBER_WORDS:
        return NUMBER_WORDS[word]
    try:
        return int(word)
    except ValueError:
        return None


def to_float(text: str) -> float | None:
    value = to_int(text)
    if value is not None:
        return float(value)
    try:
        return float(text)
    except ValueError:
        return None


def mask(text: str, spans: Iterable[tuple[int, int]]) -> str:
    chars = list(text)
    for start, end in spans:
        chars[start:end] = " " * (end - start)
    return "".join(chars)
