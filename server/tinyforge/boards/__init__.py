"""Board database: the supported microcontroller boards, kept as data in boards.toml.

Figures come from PlatformIO's board manifests so that TinyForge's budget and PlatformIO's own
size check agree. Lookups accept the nicknames people type ("Pi Pico", "ESP32-CAM").
"""

from __future__ import annotations

import difflib
import re
import tomllib
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any

from tinyforge.errors import TinyForgeError, UnknownBoardError

__all__ = [
    "Board",
    "BoardMention",
    "BoardWords",
    "all_boards",
    "board_words",
    "find_board_mentions",
    "get_board",
    "has_camera",
    "normalize_board_name",
    "suggest_boards",
]

_BOARDS_FILE = "boards.toml"


@dataclass(frozen=True)
class Board:
    id: str
    name: str
    vendor: str
    platform: str
    framework: str
    mcu: str
    f_cpu: int
    flash_bytes: int
    ram_bytes: int
    psram_bytes: int
    family: str
    cpu: str
    tflm_library: str
    aliases: tuple[str, ...]


@dataclass(frozen=True)
class BoardMention:
    board: Board
    start: int
    end: int
    text: str


_STR_FIELDS = (
    "id",
    "name",
    "vendor",
    "platform",
    "framework",
    "mcu",
    "family",
    "cpu",
    "tflm_library",
)
_INT_FIELDS = ("f_cpu", "flash_bytes", "ram_bytes", "psram_bytes")
_ALL_FIELDS = frozenset((*_STR_FIELDS, *_INT_FIELDS, "aliases"))
_OPTIONAL_FIELDS = frozenset({"text_aliases", "camera"})

# Users write "ESP32-CAM", "esp32 cam", "ESP32_CAM" and "Teensy 4.1" for the same things.
_IGNORED_IN_NAMES = re.compile(r"[\s\-_.]+")


def normalize_board_name(name: str) -> str:
    """The comparison key for board names: case, spaces, '-', '_' and '.' do not matter."""
    return _IGNORED_IN_NAMES.sub("", name).casefold()


def _board_from_table(table: dict[str, Any], index: int) -> Board:
    where = f"{_BOARDS_FILE} board #{index + 1}"
    unknown = set(table) - _ALL_FIELDS - _OPTIONAL_FIELDS
    missing = _ALL_FIELDS - set(table)
    if unknown or missing:
        raise TinyForgeError(
            f"{where} is malformed (missing: {sorted(missing)}, unknown: {sorted(unknown)})."
        )
    for key in _STR_FIELDS:
        if not isinstance(table[key], str) or not table[key]:
            raise TinyForgeError(f"{where}: '{key}' must be a non-empty string.")
    for key in _INT_FIELDS:
        value = table[key]
        # bool is an int subclass: reject it explicitly so `true` cannot pass as a size.
        if not isinstance(value, int) or isinstance(value, bool) or value < 0:
            raise TinyForgeError(f"{where}: '{key}' must be a non-negative integer.")
    for key in ("aliases", "text_aliases"):
        names = table.get(key, [])
        if not isinstance(names, list) or not all(isinstance(a, str) and a for a in names):
            raise TinyForgeError(f"{where}: '{key}' must be a list of non-empty strings.")
    if not isinstance(table.get("camera", False), bool):
        raise TinyForgeError(f"{where}: 'camera' must be true or false.")
    return Board(
        **{key: table[key] for key in _STR_FIELDS},
        **{key: table[key] for key in _INT_FIELDS},
        aliases=tuple(table["aliases"]),
    )


@dataclass(frozen=True)
class _Entry:
    board: Board
    text_aliases: tuple[str, ...]
    # Not a Board field: `tinyforge boards --json` prints Board's fields as they are.
    camera: bool


@cache
def _database() -> dict[str, Any]:
    text = resources.files(__name__).joinpath(_BOARDS_FILE).read_text(encoding="utf-8")
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:  # a packaging bug, but say so plainly
        raise TinyForgeError(f"{_BOARDS_FILE} is not valid TOML: {exc}") from exc


@cache
def _entries() -> tuple[_Entry, ...]:
    tables = _database().get("boards", [])
    entries = [
        _Entry(
            _board_from_table(t, i),
            tuple(t.get("text_aliases", [])),
            bool(t.get("camera", False)),
        )
        for i, t in enumerate(tables)
    ]
    seen: dict[str, str] = {}
    for entry in entries:
        board = entry.board
        names = (board.id, *board.aliases, *entry.text_aliases)
        for key in {normalize_board_name(n) for n in names}:
            owner = seen.setdefault(key, board.id)
            if owner != board.id:
                raise TinyForgeError(
                    f"{_BOARDS_FILE}: the name '{key}' is used by both {owner} and {board.id}."
                )
    return tuple(sorted(entries, key=lambda e: e.board.id))


def _load() -> tuple[Board, ...]:
    return tuple(entry.board for entry in _entries())


def all_boards() -> list[Board]:
    """Every supported board, sorted by id."""
    return list(_load())


def has_camera(board: Board) -> bool:
    """Whether the board carries a camera (`camera = true` in boards.toml)."""
    return any(entry.camera for entry in _entries() if entry.board.id == board.id)


@dataclass(frozen=True)
class BoardWords:
    """The words around board names in free text (boards.toml [words]); see the comments there."""

    # A vendor, family or chip name, with any "-suffix" parts: where a board's name starts.
    family: re.Pattern[str]
    vendors: frozenset[str]
    models: frozenset[str]
    variants: frozenset[str]
    vague: frozenset[str]


_WORD_LISTS = ("families", "vendors", "models", "variants", "vague")


@cache
def board_words() -> BoardWords:
    """The [words] table, checked: a packaging slip fails loudly, not as a misread request."""
    table = _database().get("words")
    if not isinstance(table, dict) or set(table) != set(_WORD_LISTS):
        raise TinyForgeError(f"{_BOARDS_FILE}: [words] must hold exactly {', '.join(_WORD_LISTS)}.")
    for key in _WORD_LISTS:
        listed = table[key]
        if not isinstance(listed, list) or not all(isinstance(w, str) and w for w in listed):
            raise TinyForgeError(f"{_BOARDS_FILE}: words.{key} must list non-empty strings.")
    families = "|".join(table["families"])
    try:
        family = re.compile(rf"\b(?:{families})(?:[-_][a-z0-9]+)*\b", re.IGNORECASE)
    except re.error as exc:
        raise TinyForgeError(f"{_BOARDS_FILE}: words.families is not a pattern: {exc}") from exc

    def words(key: str) -> frozenset[str]:
        return frozenset(w.lower() for w in table[key])

    return BoardWords(
        family=family,
        vendors=words("vendors"),
        models=words("models"),
        variants=words("variants"),
        vague=words("vague"),
    )


@cache
def _by_name() -> dict[str, Board]:
    index: dict[str, Board] = {}
    for board in _load():
        for name in (board.id, *board.aliases):
            index[normalize_board_name(name)] = board
    return index


def get_board(board_id: str) -> Board:
    """The board with this id or alias; UnknownBoardError (with suggestions) otherwise."""
    key = normalize_board_name(board_id)
    board = _by_name().get(key) if key else None
    if board is None:
        raise UnknownBoardError(board_id.strip(), suggest_boards(board_id))
    return board


@cache
def _suggestion_keys() -> tuple[tuple[str, Board], ...]:
    return tuple(
        (normalize_board_name(name), entry.board)
        for entry in _entries()
        for name in (entry.board.id, *entry.board.aliases, *entry.text_aliases)
    )


def suggest_boards(name: str, limit: int = 3) -> list[str]:
    """Ids of the boards whose id or alias is closest to `name`, best first."""
    query = normalize_board_name(name)
    if not query or limit <= 0:
        return []
    scores: dict[str, float] = {}
    for key, board in _suggestion_keys():
        score = difflib.SequenceMatcher(None, query, key).ratio()
        # A truncated name ("nano33", "teensy") is a strong hint even when the ratio is modest.
        if len(query) >= 3 and key.startswith(query):
            score = max(score, 0.8 + 0.2 * len(query) / len(key))
        if score > scores.get(board.id, 0.0):
            scores[board.id] = score
    ranked = sorted(scores.items(), key=lambda item: (-item[1], item[0]))
    return [board_id for board_id, score in ranked if score >= 0.5][:limit]


# Separators allowed between the letter and digit runs of a name in free text: "Nano33 BLE",
# "ESP32 CAM" and "esp32-cam" all name the same board. At most two characters, so that a name
# never stretches across unrelated words.
_GAP = r"[\s\-_.]{0,2}"


def _mention_pattern(name: str) -> re.Pattern[str] | None:
    atoms = re.findall(r"[a-z]+|[0-9]+", name.casefold())
    if not atoms:
        return None
    body = _GAP.join(re.escape(atom) for atom in atoms)
    # [^\W_] is "a letter or digit": the name must not be glued to more letters or digits.
    return re.compile(rf"(?<![^\W_]){body}(?![^\W_])", re.IGNORECASE)


# "ESP32-S2", "ESP32 C6", "Portenta X8" and "Pico 2" are other boards: a name followed by such a
# model suffix is not a mention of the shorter board. A lone digit after a space only counts at
# the end of the phrase ("on a Pico 2."), so "on a pico 3 times faster" still names the Pico.
_MODEL_SUFFIX = re.compile(
    r"[-_][a-z]{0,2}\d[a-z0-9]*(?![^\W_])"
    r"|\s[a-z]\d{1,2}[a-z]?(?![^\W_])"
    r"|\s\d(?=\s*(?:$|[,.;:!?)]|w\b|wh\b|board|dev|kit))",
    re.IGNORECASE,
)


def _names_another_model(text: str, end: int) -> bool:
    return _MODEL_SUFFIX.match(text, end) is not None


@cache
def _mention_patterns() -> tuple[tuple[re.Pattern[str], Board], ...]:
    patterns: dict[str, tuple[re.Pattern[str], Board]] = {}
    for entry in _entries():
        board = entry.board
        for name in (board.id, *board.aliases, *entry.text_aliases):
            pattern = _mention_pattern(name)
            if pattern is not None:
                patterns.setdefault(pattern.pattern, (pattern, board))
    return tuple(patterns.values())


def find_board_mentions(text: str) -> list[BoardMention]:
    """Every supported board named in `text`, by id or alias, sorted by position.

    Where names overlap the longest wins, so "Pico W" is the Pico W and not the Pico, and
    "XIAO ESP32S3" is the XIAO rather than the ESP32-S3 DevKit.
    """
    candidates: list[tuple[int, int, Board]] = []
    for pattern, board in _mention_patterns():
        for match in pattern.finditer(text):
            if not _names_another_model(text, match.end()):
                candidates.append((match.start(), match.end(), board))
    candidates.sort(key=lambda c: (-(c[1] - c[0]), c[0]))
    chosen: list[tuple[int, int, Board]] = []
    for start, end, board in candidates:
        if all(end <= s or start >= e for s, e, _ in chosen):
            chosen.append((start, end, board))
    chosen.sort(key=lambda c: c[0])
    return [BoardMention(board, start, end, text[start:end]) for start, end, board in chosen]
