"""Board names the database does not know: they must not silently become the default board.

Only phrases anchored on a vendor, board family or chip name count (boards.toml [words]), so
everyday words ("on the table", "for my thesis") never trigger it. A known name glued to more
board words ("Arduino Nano ESP32", "Nano 33 IoT") names another board too.
"""

from __future__ import annotations

import re

from tinyforge.boards import BoardMention, board_words
from tinyforge.plan.offline.lexicon import lexicon
from tinyforge.plan.offline.text import rx

_LEX = lexicon()
# The board registry's words (boards.toml [words]): vendor and family names, model words.
_FAMILY = board_words().family
_VENDORS = board_words().vendors
_MODEL_WORDS = board_words().models
_VARIANTS = board_words().variants
# The English around a board's name.
_BOARD_TAIL = _LEX.words("boards.tail")
_PHRASE_STOP = _LEX.words("boards.phrase_stop")
_GENERIC_BOARD_WORDS = _LEX.words("boards.generic")
_PREP_BOARD = rx(
    r"\b(?:on|for|to|onto|using|with|into)\s+(?:my|an?|the|our|this|that|your)\s+"
    r"((?:[\w\-.]+\s+){1,3}?)(?:dev(?:elopment)?\s*)?(?:board|devkit|microcontroller|mcu)\b"
)


def unknown_board_phrase(text: str) -> str | None:
    """A board-like name in `text` (already stripped of known boards), or None."""
    tokens = list(re.finditer(r"[^\W_][\w\-.:]*", text))
    for anchor in _FAMILY.finditer(text):
        start, end = anchor.start(), anchor.end()
        before = [t for t in tokens if t.end() <= start]
        after = [t for t in tokens if t.start() >= end]
        # Pull in a vendor word just before ("Arduino" + "Uno").
        if before and before[-1].group().lower() in _VENDORS | {"pi", "studio", "st"}:
            gap = text[before[-1].end() : start]
            if not gap.strip():
                start = before[-1].start()
                if len(before) > 1 and before[-2].group().lower() in _VENDORS:
                    start = before[-2].start()
        last = end
        for token in after[:4]:
            gap = text[last : token.start()]
            word = token.group().rstrip(".:")
            lower = word.lower()
            if gap.strip() or lower in _PHRASE_STOP:
                break
            modelish = (
                lower in _MODEL_WORDS
                or lower in _BOARD_TAIL
                or (re.search(r"\d", word) is not None and re.search(r"[a-z]", lower) is not None)
                or re.fullmatch(r"\d{1,2}(?:\.\d{1,2})?", word) is not None
            )
            if not modelish or re.fullmatch(
                r"\d+(?:\.\d+)?\s*(?:kb|kib|k|mb|mib|gb|b|bytes?|hz|khz|mhz|x\d+|%)", lower
            ):
                break
            last = token.start() + len(word)
        phrase = " ".join(text[start:last].split())
        words = phrase.split()
        while words and words[-1].lower() in _BOARD_TAIL:
            words.pop()
        phrase = " ".join(words)
        if phrase:
            return phrase
    for m in _PREP_BOARD.finditer(text):
        words = [w for w in m.group(1).split() if w.lower() not in _BOARD_TAIL]
        named = [
            w
            for w in words
            if w.lower() not in _GENERIC_BOARD_WORDS
            and re.search(r"[^\W\d_]", w)
            and (re.search(r"\d", w) or w[:1].isupper())
        ]
        if named:
            return " ".join(words)
    return None


def unknown_next_to(masked: str, mentions: list[BoardMention]) -> str | None:
    """'Arduino Nano ESP32', 'Nano 33 IoT': a known name glued to more board words names
    another board, which must not silently become the known one."""
    for m in mentions:
        right = re.match(r"[ \t\-]+([^\W_][\w\-]*)", masked[m.end : m.end + 20])
        if right is not None and right.group(1).lower() in _VARIANTS:
            return f"{m.text} {right.group(1)}"
        left = masked[max(0, m.start - 40) : m.start]
        glued = re.search(r"((?:[^\W_][\w\-]*\s){1,3})$", left)
        if glued is None:
            continue
        words = glued.group(1).split()
        # Keep only the trailing run of board-ish words.
        run: list[str] = []
        for word in reversed(words):
            lower = word.lower()
            if lower in _VENDORS or lower in _MODEL_WORDS or _FAMILY.fullmatch(word):
                run.insert(0, word)
            else:
                break
        # Words from the board's own names ("STM32" before "Nucleo-H743ZI2") are fine.
        own = {
            w.lower()
            for n in (m.board.name, m.board.vendor, *m.board.aliases)
            for w in re.findall(r"[^\W_]+", n)
        }
        if any(w.lower() not in _VENDORS | own | {"pi", "studio"} for w in run):
            return " ".join([*run, m.text])
    return None
