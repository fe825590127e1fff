"""The memory budget: RAM and flash limits stated in the request, capped at the board's.

Each size is tied to the nearest memory word in its clause ("RAM under 100 KB, flash under
1 MB"); a size on "the model" limits flash; "leave 64 KB free" limits to what is left. With
nothing stated, the budget is the whole board.
"""

from __future__ import annotations

import re

from tinyforge.boards import Board
from tinyforge.errors import PlanError
from tinyforge.plan.offline.lexicon import lexicon
from tinyforge.plan.offline.text import IGNORECASE, Assume, mask, rx
from tinyforge.plan.units import SIZE_PATTERN, format_size, parse_size
from tinyforge.spec import Budget

_LEX = lexicon()

_SIZE = re.compile(SIZE_PATTERN, IGNORECASE)
_FLASH_WORD = _LEX.cue("budgets.flash")
_RAM_WORD = _LEX.cue("budgets.ram")
_MEMORY_WORD = _LEX.cue("budgets.memory")
_MODEL_WORD = _LEX.cue("budgets.model")
_BUDGET_VERB = _LEX.cue("budgets.limit")
_FREE = _LEX.cue("budgets.free")
_LEAVE = _LEX.cue("budgets.leave")
# Clauses end at punctuation (but not inside "1,024" or "0.5") and at conjunctions, so that in
# "RAM under 100 KB, flash under 1 MB" each size stays with its own memory word.
_CLAUSE_SPLIT = rx(r"[;\n!?]|[.,](?!\d)|(?<!\d)[.,]|\b(?:and|but|while|whereas|plus|also|then)\b")


def budget(masked: str, board: Board, assume: Assume) -> Budget:
    """The budget the request states, within the board's RAM and flash."""
    ram: int | None = None
    flash: int | None = None
    for kind, value in _stated_limits(masked, board, assume):
        if kind == "ram":
            ram = value if ram is None else min(ram, value)
        else:
            flash = value if flash is None else min(flash, value)
    ram = _cap("RAM", ram, board.ram_bytes, board, assume)
    flash = _cap("flash", flash, board.flash_bytes, board, assume)
    return Budget(ram_bytes=ram, flash_bytes=flash)


def _cap(what: str, stated: int | None, limit: int, board: Board, assume: Assume) -> int:
    if stated is None:
        return limit
    if stated <= 0:
        assume(f"Ignored a {what} limit of zero: using the board's {format_size(limit)}.")
        return limit
    if stated > limit:
        assume(
            f"The requested {what} limit ({format_size(stated)}) is more than "
            f"{board.id} has: capped at {format_size(limit)} ({limit} bytes)."
        )
        return limit
    return stated


def _stated_limits(masked: str, board: Board, assume: Assume) -> list[tuple[str, int]]:
    limits: list[tuple[str, int]] = []
    bounds = [0, *(m.end() for m in _CLAUSE_SPLIT.finditer(masked)), len(masked)]
    sizes = list(_SIZE.finditer(masked))
    for size in sizes:
        clause_start = max(b for b in bounds if b <= size.start())
        clause_end = min((b for b in bounds if b >= size.end()), default=len(masked))
        clause = masked[clause_start:clause_end]
        offset = size.start() - clause_start
        kind, note = _resource(clause, offset, offset + len(size.group()))
        relative = re.search(r"%|percent|per\s*cent|half|quarter|third", size.group(), IGNORECASE)
        if kind is None or (relative and note == "model"):
            continue
        total = board.ram_bytes if kind == "ram" else board.flash_bytes
        try:
            value = parse_size(size.group(), total=total)
        except PlanError:
            continue
        if _FREE.search(clause) and _LEAVE.search(clause):
            value = total - value
        if note == "memory":
            assume("'Memory' in the request is read as RAM.")
        elif note == "model":
            assume(
                f"'{' '.join(clause.split())}' is read as a flash limit on the model and firmware."
            )
        limits.append((kind, value))
    return limits


def _resource(clause: str, start: int, end: int) -> tuple[str | None, str | None]:
    """Which memory a size in `clause` refers to: the nearest resource word, if any."""
    flash_words = list(_FLASH_WORD.finditer(clause))
    # "program memory" is flash: blank it before looking for RAM words.
    ram_clause = mask(clause, [(m.start(), m.end()) for m in flash_words])
    found: list[tuple[int, str, str | None]] = []
    for m in flash_words:
        found.append((_distance(m, start, end), "flash", None))
    for m in _RAM_WORD.finditer(ram_clause):
        found.append((_distance(m, start, end), "ram", None))
    for m in _MEMORY_WORD.finditer(ram_clause):
        found.append((_distance(m, start, end), "ram", "memory"))
    if found:
        found.sort(key=lambda f: f[0])
        return found[0][1], found[0][2]
    if _MODEL_WORD.search(clause) and _BUDGET_VERB.search(clause):
        return "flash", "model"
    return None, None


# -- quantization, name ------------------------------------------------------------------


def _distance(match: re.Match[str], start: int, end: int) -> int:
    if match.end() <= start:
        return start - match.end()
    if match.start() >= end:
        return match.start() - end
    return 0
