"""What the model reads: quantities named as inputs are input columns, never classes.

"from soil moisture, temperature and light readings" or "using the RGB values" name the model's
inputs; what it tells apart is read from the rest of the request.
"""

from __future__ import annotations

import re

from tinyforge.plan.offline.classes import LIST_STOP
from tinyforge.plan.offline.lexicon import lexicon
from tinyforge.plan.offline.text import IGNORECASE, rx

_LEX = lexicon()

_INPUT_PREP = r"(?:from|using|with|based\s+on|given|reading|reads|measuring|via|off)"
_INPUT_NOUN = (
    r"(?:sensor\s+)?(?:readings?|values?|measurements?|data|inputs?|features?|levels?"
    r"|signals?|channels?|columns?|sensors?|probes?)"
)
_INPUT_START = rx(
    rf"\b{_INPUT_PREP}\s+(?:the\s+|my\s+|its\s+|their\s+|a\s+|an\s+|our\s+)?(?=[^\W\d_])"
)
_INPUT_END = rx(rf"\s+{_INPUT_NOUN}\b")
# The same without the noun, when every item is a quantity a sensor measures: the list runs
# from the preposition to the end of its clause ("using temperature, humidity and CO2 in x.csv").
_INPUT_BARE_START = rx(r"\b(?:using|from|based\s+on|given|measuring)\s+(?:the\s+)?(?=[^\W\d_])")
_CLAUSE_END = rx(
    r"[.;:!?()]|\s(?:in|from|on|at|to|for|with|into|as|label|labels|column|under|within|using)\b"
)
# A quantity a sensor measures, optionally qualified: "soil moisture".
_QUALIFIERS = _LEX.alternation("inputs.qualifiers")
_QUANTITIES = _LEX.alternation("inputs.quantities")
_QUANTITY_WORDS = rx(rf"^(?:(?:{_QUALIFIERS})\s+)?(?:{_QUANTITIES})$")
_INPUT_SPLIT = re.compile(r"\s*(?:,|/|&|\band\b|\bplus\b)\s*", re.I)
_INPUT_ARTICLES = re.compile(r"^(?:the|a|an|its|their|my|our)\s+", re.I)
_MOTION_INPUT = _LEX.cue("inputs.motion")


def _input_items(text: str) -> list[str] | None:
    """The items of an input list, or None when it does not look like one."""
    text = re.sub(r"\s+", " ", text.replace("’", "'")).strip()
    if re.search(r"\brgbc?\b", text, IGNORECASE):
        # A colour sensor's channels: the CSV calls them R, G, B (or red, green, blue).
        rgb = ["red", "green", "blue"]
        return [*rgb, "clear"] if re.search(r"\brgbc\b", text, IGNORECASE) else rgb
    items = [_INPUT_ARTICLES.sub("", i).strip(" '") for i in _INPUT_SPLIT.split(text)]
    items = [i for i in items if i]
    if any(re.search(r"[^\w\s'\-.]", i) for i in items):
        return None  # "colour sensor: unripe, ripe, overripe —" is a class list, not inputs
    if len(items) < 2 or any(len(i.split()) > 3 for i in items):
        return None
    if any(w.lower() in LIST_STOP - {"light"} for i in items for w in i.split()):
        return None
    return items


def find_inputs(masked: str) -> tuple[list[str], tuple[int, int]] | None:
    """Named inputs and their span; motion sensors are not columns to select (axes are)."""
    for start in _INPUT_START.finditer(masked):
        # The list ends at an input noun within a dozen words: try each, nearest first
        # ("from the colour sensor's RGB readings": "colour" alone is no list, the rest is).
        window = masked[start.end() : start.end() + 120]
        for end in _INPUT_END.finditer(window):
            items = _input_items(window[: end.start()])
            if items and not any(_MOTION_INPUT.search(i) for i in items):
                return items, (start.end(), start.end() + end.end())
            if items:
                break
    for start in _INPUT_BARE_START.finditer(masked):
        rest = masked[start.end() : start.end() + 160]
        stop = _CLAUSE_END.search(rest)
        text = rest[: stop.start() if stop else len(rest)].rstrip(" ,")
        items = _input_items(text)
        if items and all(_QUANTITY_WORDS.match(i) for i in items):
            return items, (start.end(), start.end() + len(text))
    return None
