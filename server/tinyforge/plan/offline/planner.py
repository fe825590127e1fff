"""The offline planner: reads a one-sentence request with regular expressions, no network.

It looks for cues rather than whole example sentences, so new phrasings work as long as they use
the usual words: what the data is (images, accelerometer, keywords, anomalies), where it is (a CSV
file or a folder), the board, the class names or count, shapes, memory limits and quantization.
Every default it fills in is written to `ProjectSpec.assumptions` in plain English.

Positions matter (a path, a label column or a board name must not also be read as class names),
so the request is "masked" step by step: each span that has been understood is blanked out with
spaces of the same length, keeping offsets valid, before the next step looks at the text.
"""

from __future__ import annotations

import bisect
import csv
import io
import os
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from pydantic import ValidationError

from tinyforge.boards import (
    Board,
    BoardMention,
    find_board_mentions,
    get_board,
    suggest_boards,
)
from tinyforge.errors import DatasetError, PlanError, TinyForgeError, UnknownBoardError
from tinyforge.plan.units import SIZE_PATTERN, format_size, parse_size
from tinyforge.scaffold import DEFAULT_CSV, DEFAULT_DATA_DIR, NO_DATASET_NOTE
from tinyforge.spec import (
    Budget,
    Dataset,
    DatasetKind,
    ProjectSpec,
    Quantization,
    Task,
    describe_validation_error,
)

__all__ = ["DEFAULT_BOARD", "OfflinePlanner"]

DEFAULT_BOARD = "nano33ble"

EXAMPLE_REQUEST = "Recognize handwritten digits on an Arduino Nano 33 BLE Sense"

_I = re.IGNORECASE

NUMBER_WORDS: dict[str, int] = {
    "one": 1,
    "two": 2,
    "three": 3,
    "four": 4,
    "five": 5,
    "six": 6,
    "seven": 7,
    "eight": 8,
    "nine": 9,
    "ten": 10,
    "eleven": 11,
    "twelve": 12,
    "thirteen": 13,
    "fourteen": 14,
    "fifteen": 15,
    "sixteen": 16,
    "seventeen": 17,
    "eighteen": 18,
    "nineteen": 19,
    "twenty": 20,
    "a pair of": 2,
    "a couple of": 2,
    "a dozen": 12,
    "single": 1,
}
# Longest first so "a couple of" wins over shorter words; \d{1,6} keeps int() cheap and safe.
_NUM = r"(?:\d{1,6}|" + "|".join(sorted(map(re.escape, NUMBER_WORDS), key=len, reverse=True)) + ")"


def _to_int(text: str) -> int | None:
    word = " ".join(text.lower().split())
    if word in NUMBER_WORDS:
        return NUMBER_WORDS[word]
    try:
        return int(word)
    except ValueError:
        return None


def _to_float(text: str) -> float | None:
    value = _to_int(text)
    if value is not None:
        return float(value)
    try:
        return float(text)
    except ValueError:
        return None


def _mask(text: str, spans: Iterable[tuple[int, int]]) -> str:
    chars = list(text)
    for start, end in spans:
        chars[start:end] = " " * (end - start)
    return "".join(chars)


def _rx(pattern: str) -> re.Pattern[str]:
    return re.compile(pattern, _I)


# ---------------------------------------------------------------------------------------------
# Task cues: (pattern, weight). The highest total wins; anomaly words are decisive on purpose,
# since "unusual vibration" is an anomaly task even though vibration is a sensor cue.

_TASK_CUES: dict[Task, list[tuple[re.Pattern[str], int]]] = {
    Task.ANOMALY_DETECTION: [
        (
            _rx(
                r"\banomal(?:y|ies|ous)\b|\babnormal(?:ity|ities|ly)?\b|\boutliers?\b"
                r"|\bnovelty\s+detection\b"
            ),
            10,
        ),
        (
            _rx(
                r"\bfault\s+detection\b|\bdetect(?:s|ing)?\s+(?:\w+\s+)?faults?\b|\bfaulty\b"
                r"|\bpredictive\s+maintenance\b|\bunusual\b|\bmalfunction(?:s|ing)?\b"
                r"|\bweird\b|\bstrange\b|\birregular(?:ities)?\b"
                r"|\bout\s+of\s+the\s+ordinary\b|\bodd\s+behaviou?r\b"
            ),
            8,
        ),
    ],
    Task.KEYWORD_SPOTTING: [
        (
            _rx(
                r"\bwake[\s-]*(?:up[\s-]*)?words?\b|\bhot[\s-]*words?\b"
                r"|\bkeyword[\s-]*spotting\b"
            ),
            6,
        ),
        (
            _rx(
                r"\bkey[\s-]*words?\b|\bvoice\b|\bspeech\b|\bspoken\b|\butterances?\b|\bspeaks?\b"
                r"|\bspeaking\b|\bsays?\b|\bsaid\b|\bpronounced?\b|\bkws\b"
            ),
            4,
        ),
        (
            _rx(
                r"\baudio\b|\bsounds?\b|\bmicrophones?\b|\bmic\b|\bwav\b|\bclips?\b|\bhear\b"
                r"|\bacoustic\b|\bspectrograms?\b|\bmfccs?\b"
                # Sound events people name: "when someone claps twice", "a dog barking".
                r"|\bclap(?:s|ping)?\b|\bbark(?:s|ing)?\b|\bsirens?\b|\bcough(?:s|ing)?\b"
                r"|\bsnor(?:e|es|ing)\b|\bwhistl(?:e|es|ing)\b|\bdoorbells?\b|\bbeeps?\b"
            ),
            3,
        ),
        (_rx(r"\bcommands?\b|\byes\s*(?:/|or|and|vs\.?)\s*no\b|\bwords?\b"), 1),
    ],
    Task.IMAGE_CLASSIFICATION: [
        (
            _rx(
                r"\bimages?\b|\bphotos?\b|\bphotographs?\b|\bpictures?\b|\bpics\b|\bcameras?\b"
                r"|\bwebcam\b|\bhand[\s-]*written\b|\bhandwriting\b|\bmnist\b|\bvisual(?:ly)?\b"
                r"|\bperson\s+detection\b|\bov\d{4}\b|\bsnapshots?\b|\bjpe?gs?\b|\bpngs?\b"
                r"|\b(?:written|drawn)\s+by\s+hand\b|\bhand[\s-]*drawn\b"
            ),
            4,
        ),
        (
            _rx(
                r"\bdigits?\b|\bnumerals?\b|\bpixels?\b|\bgr[ae]y[\s-]*scale\b|\bmonochrome\b"
                r"|\bvision\b|\bfaces?\b|\bsee(?:s|ing)?\b|\bseen\b|\bthumbnails?\b"
                r"|\d+\s*(?:x|×|by)\s*\d+\s*(?:px|pixels?)?\b"
            ),
            2,
        ),
        (_rx(r"\bdetect(?:s|ing)?\s+(?:a\s+|the\s+)?(?:person|people|humans?|faces?)\b"), 3),
        (_rx(r"\brecogni[sz]e[sd]?\b|\brecognition\b|\bidentify\b|\blooks?\s+like\b"), 1),
    ],
    Task.SENSOR_CLASSIFICATION: [
        (
            _rx(
                r"\bcolou?r\s+sensors?\b|\brgb\s+sensors?\b|\bapds[\s-]?9960\b|\btcs\d{4,5}\b"
                r"|\blight\s+sensors?\b"
            ),
            6,
        ),
        (
            _rx(
                r"\baccelerometers?\b|\baccel\b|\bimu\b|\bgyro(?:scope)?s?\b|\bmagnetometers?\b"
                r"|\binertial\b|\bhar\b"
            ),
            5,
        ),
        (
            _rx(
                r"\bgestures?\b|\bmotions?\b|\bmovements?\b|\bwrist\b|\bactivit(?:y|ies)\b"
                r"|\bpostures?\b|\bvibrations?\b|\btemperatures?\b|\bhumidity\b|\bthermistors?\b"
                r"|\bbarometric\b|\bco2\b|\bemg\b|\becg\b|\bppg\b|\beeg\b"
            ),
            3,
        ),
        (
            _rx(
                r"\bsensors?\b|\breadings?\b|\bmeasurements?\b|\btime[\s-]*series\b|\bsignals?\b"
                r"|\btelemetry\b|\b\d+[\s-]*(?:axis|axes)\b|\bhz\b"
            ),
            2,
        ),
        (_rx(r"\bcsv\b|\bspreadsheet\b|\btabular\b|\bcolumns?\b|\brows\b"), 1),
    ],
}
# Tie-break order, most specific first.
_TASK_ORDER = [
    Task.ANOMALY_DETECTION,
    Task.KEYWORD_SPOTTING,
    Task.IMAGE_CLASSIFICATION,
    Task.SENSOR_CLASSIFICATION,
]

_DIGITS_CUE = _rx(
    r"\bhand[\s-]*written\b|\bhandwriting\b|\bmnist\b|\bdigits?\b|\bnumerals?\b"
    r"|\bnumbers?\s+(?:\w+\s+){0,2}by\s+hand\b"
    r"|\bnumbers?\s+(?:from\s+)?0\s*(?:-|to|through)\s*9\b"
)
_CAMERA_CUE = _rx(
    r"\bcameras?\b|\bcam\b|\bwebcam\b|\bperson\b|\bpeople\b|\bhumans?\b|\bfaces?\b"
    r"|\bov\d{4}\b|\bvision\b"
)

# ---------------------------------------------------------------------------------------------
# Paths

_QUOTED = _rx(r"(?<![\w])(['\"`‘“])([^'\"`‘’“”\n]{1,300}?)(['\"`’”])(?![\w])")
_CSV_BARE = _rx(r"(?<![\w/\\.~-])((?:[a-z]:[\\/])?[\w.~\-/\\]*[\w\-]\.csv)(?![\w])")
_PATH_BARE = _rx(
    r"(?<![\w/\\.~:-])((?:[a-z]:[\\/]|~[\\/]|\.{1,2}[\\/]|[\\/])?[\w.~\-]+(?:[\\/][\w.~\-]+)*[\\/]?)"
)
_FOLDER_CONTEXT = _rx(
    r"\b(?:in|from|folder|directory|dir|path|under|inside|located|stored|within)\s+"
    r"(?:the\s+|my\s+|a\s+|this\s+)?(?:(?:image|images|photo|photos|data|dataset|audio|sound)\s+)?"
    r"(?:folder\s+|directory\s+|dir\s+)?(?:called\s+|named\s+|at\s+)?$"
)
_FOLDER_NAMED = _rx(
    r"\b(?:folder|directory|dir)\s+(?:called\s+|named\s+)?([A-Za-z0-9_~.][\w.~\-]*[\\/]?)(?![\w/])"
)
_DATA_IN = _rx(
    r"\b(?:data|dataset|clips|images|photos|pictures|recordings|samples|files|audio|wavs?)\s+"
    r"(?:are\s+|is\s+|live\s+|lives\s+|sit\s+|sits\s+)?(?:in|under|inside|at)\s+"
    r"([A-Za-z_][\w.~\-]*)(?![\w/\\])"
)
_NOT_FOLDER_WORDS = {
    "with",
    "per",
    "of",
    "for",
    "that",
    "which",
    "where",
    "and",
    "or",
    "on",
    "in",
    "the",
    "a",
    "an",
    "is",
    "has",
    "containing",
    "structure",
    "layout",
    "tree",
    "name",
    "names",
    "path",
    "one",
    "each",
    "to",
    "at",
    "by",
    "from",
}
_IMAGE_EXT = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".pgm", ".ppm", ".tif", ".tiff"}
_AUDIO_EXT = {".wav", ".mp3", ".flac", ".ogg", ".m4a", ".aiff"}


@dataclass
class _PathRef:
    path: str
    start: int
    end: int
    is_csv: bool


def _clean_path(raw: str) -> str:
    path = raw.strip()
    # Sentence punctuation glued to a bare path is not part of it ("from data/pics.").
    while (
        path
        and path[-1] in ".,;:!?"
        and not path.endswith(("./", "../"))
        and path not in (".", "..")
    ):
        path = path[:-1]
    return path


_WORD_SLASHES = re.compile(r"[^\W\d_][\w'\-]*(?:\s*/\s*[^\W\d_][\w'\-]*)+")
_CLASS_NOUN_AFTER = _rx(
    r"^\s*(?:keywords?|words?|commands?|classes|labels|categories|gestures|motions|states)\b"
)


_EXPLICIT_PATH = _rx(r"(?:[a-z]:[\\/]|~[\\/]|\.{1,2}[\\/]|[\\/])")


def _accept_folder(path: str, text: str, start: int, end: int) -> bool:
    """Is a slash-bearing token a folder path rather than a list like "yes/no"?"""
    if _EXPLICIT_PATH.match(path) or path.endswith(("/", "\\")):
        return True
    if _existing(path) is not None:
        return True
    if _WORD_SLASHES.fullmatch(path) and _CLASS_NOUN_AFTER.search(text[end : end + 20]):
        return False
    return _FOLDER_CONTEXT.search(text[max(0, start - 60) : start]) is not None


def _quoted_is_path(inner: str, text: str, start: int, end: int) -> bool:
    if inner.lower().endswith(".csv"):
        return True
    if re.search(r"[\\/]", inner):
        return _accept_folder(inner, text, start, end)
    # A plain quoted name is a folder only when the request calls it one: the folder 'photos'.
    if not re.fullmatch(r"[\w.~\-]+", inner):
        return False
    before = text[max(0, start - 30) : start]
    after = text[end : end + 12]
    return bool(
        re.search(r"\b(?:folder|directory|dir)\s+(?:called\s+|named\s+)?$", before, _I)
        or re.match(r"\s*(?:folder|directory|dir)\b", after, _I)
    )


def _find_paths(text: str) -> list[_PathRef]:
    refs: list[_PathRef] = []
    taken: list[tuple[int, int]] = []

    def free(start: int, end: int) -> bool:
        return all(end <= s or start >= e for s, e in taken)

    def add(path: str, start: int, end: int) -> None:
        refs.append(_PathRef(path, start, end, path.lower().endswith(".csv")))
        taken.append((start, end))

    for m in _QUOTED.finditer(text):
        inner = m.group(2).strip()
        if not inner or re.match(r"https?:|www\.", inner, _I):
            continue
        if _quoted_is_path(inner, text, m.start(), m.end()):
            add(inner, m.start(), m.end())
    for m in _CSV_BARE.finditer(text):
        if free(m.start(1), m.end(1)):
            add(m.group(1), m.start(1), m.end(1))
    for m in _PATH_BARE.finditer(text):
        path = _clean_path(m.group(1))
        start, end = m.start(1), m.start(1) + len(path)
        if not path or not free(start, end) or not re.search(r"[\\/]", path):
            continue
        if "://" in text[start : end + 3] or re.match(r"www\.", path, _I):
            continue
        if _accept_folder(path, text, start, end):
            add(path, start, end)
    for m in _FOLDER_NAMED.finditer(text):
        name = _clean_path(m.group(1))
        start, end = m.start(1), m.start(1) + len(name)
        if name and name.lower() not in _NOT_FOLDER_WORDS and free(start, end):
            add(name, start, end)
    for m in _DATA_IN.finditer(text):
        # "data in speech_cmds": a folder name has the look of one (speech_cmds, set-2) or is
        # there; "images in colour" is not a folder.
        name = _clean_path(m.group(1))
        start, end = m.start(1), m.start(1) + len(name)
        looks = re.search(r"[_\-\d]", name) is not None or _existing(name) is not None
        if name and looks and name.lower() not in _NOT_FOLDER_WORDS and free(start, end):
            add(name, start, end)
    refs.sort(key=lambda r: r.start)
    return refs


def _existing(path: str) -> Path | None:
    try:
        candidate = Path(os.path.expanduser(path))
        return candidate if candidate.exists() else None
    except (OSError, ValueError):  # embedded NULs, over-long names: treat as "not there yet"
        return None


def _subfolders(folder: Path) -> list[str]:
    try:
        return sorted(p.name for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))
    except OSError:
        return []


def _folder_content_kind(folder: Path, limit: int = 300) -> str | None:
    """'image', 'audio' or 'csv' by the files in the folder, so a bare folder hints the task."""
    counts = {"image": 0, "audio": 0, "csv": 0}
    seen = 0
    try:
        for _root, _dirs, files in os.walk(folder):
            for name in files:
                ext = os.path.splitext(name)[1].lower()
                if ext in _IMAGE_EXT:
                    counts["image"] += 1
                elif ext in _AUDIO_EXT:
                    counts["audio"] += 1
                elif ext == ".csv":
                    counts["csv"] += 1
                seen += 1
                if seen >= limit:
                    break
            if seen >= limit:
                break
    except OSError:
        return None
    best = max(counts, key=lambda k: counts[k])
    return best if counts[best] else None


# ---------------------------------------------------------------------------------------------
# CSV header


@dataclass
class _CsvHead:
    header: list[str]
    rows: list[list[str]]


def _read_csv_head(path: Path, max_rows: int = 200) -> _CsvHead | None:
    """The header and first rows, or None when the file cannot be read as text CSV."""
    try:
        with path.open("r", encoding="utf-8-sig", newline="") as handle:
            sample = handle.read(64 * 1024)
            truncated = bool(handle.read(1))
    except (OSError, UnicodeDecodeError, ValueError):
        return None
    if not sample.strip() or "\x00" in sample:
        return None
    try:
        dialect: type[csv.Dialect] | csv.Dialect = csv.Sniffer().sniff(
            sample[:8192], delimiters=",;\t|"
        )
    except csv.Error:
        dialect = csv.excel
    try:
        rows = list(csv.reader(io.StringIO(sample), dialect))
    except csv.Error:
        return None
    if truncated and len(rows) > 1:
        rows = rows[:-1]  # the last line may be cut in half by the sample size
    rows = [r for r in rows if any(cell.strip() for cell in r)]
    if not rows:
        return None
    header = [cell.strip() for cell in rows[0]]
    if not any(header):
        return None
    return _CsvHead(header, rows[1 : max_rows + 1])


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


_LABEL_NAMES = ("label", "labels", "class", "classes", "target", "y", "category", "categories")


def _guess_label_column(head: _CsvHead) -> tuple[str, str]:
    """(column, why) for a CSV whose label column the request did not name."""
    lowered = [h.lower() for h in head.header]
    for name in _LABEL_NAMES:
        if name in lowered:
            column = head.header[lowered.index(name)]
            return column, f"its name says so ('{column}')"
    for index in range(len(head.header) - 1, -1, -1):
        values = [r[index].strip() for r in head.rows if index < len(r) and r[index].strip()]
        if values and not all(_is_number(v) for v in values):
            return head.header[index], "it is the last column holding text rather than numbers"
    return head.header[-1], "it is the last column"


# ---------------------------------------------------------------------------------------------
# Label column named in the request

_VAL = (
    r"(?:'(?P<q1>[^'\n]{1,80})'|\"(?P<q2>[^\"\n]{1,80})\"|`(?P<q3>[^`\n]{1,80})`"
    r"|‘(?P<q4>[^’\n]{1,80})’|“(?P<q5>[^”\n]{1,80})”|(?P<bare>[A-Za-z_][\w\-.]*))"
)
_LABEL_PATTERNS = [
    _rx(
        r"\b(?:label|labels|target|class|category|y|output)\s*[-_]?\s*"
        r"(?:column|col|field|variable)\s*(?:is\s+|=\s*|:\s*|named\s+|called\s+|of\s+)?"
        r"(?:named\s+|called\s+)?" + _VAL
    ),
    _rx(
        r"\b(?:labels?|targets?|classes|categories)\s+(?:are\s+|is\s+|come\s+|live\s+|sit\s+)?"
        r"(?:in|from)\s+(?:the\s+)?(?:column|col|field)\s*(?:named\s+|called\s+)?" + _VAL
    ),
    _rx(r"\b(?:label|target|y)\s*[=:]\s*" + _VAL),
    _rx(
        r"\b(?:column|col|field)\s+" + _VAL + r"\s+(?:is|as|holds|has|contains|gives|with)\s+"
        r"(?:the\s+)?(?:labels?|targets?|class(?:es)?|categor(?:y|ies))\b"
    ),
    _rx(
        r"\b(?:predict|predicting|classify\s+by|classified\s+by)\s+(?:the\s+)?"
        + _VAL
        + r"\s+(?:column|field)\b"
    ),
    _rx(
        r"\b(?:the\s+)?" + _VAL + r"\s+(?:column|field)\s+(?:as|is|holds|has|contains)\s+"
        r"(?:the\s+)?(?:labels?|targets?|class(?:es)?)\b"
    ),
    _rx(r"\blabell?ed\s+(?:by|in|with|from)\s+(?:the\s+)?(?:column\s+)?" + _VAL),
    _rx(
        r"\b(?:use|using|with)\s+(?:the\s+)?(?:column\s+)?" + _VAL + r"\s+as\s+(?:the\s+)?"
        r"(?:labels?|targets?|class)\b"
    ),
]
_LABEL_STOP = {
    "is",
    "the",
    "a",
    "an",
    "named",
    "called",
    "of",
    "in",
    "from",
    "column",
    "col",
    "field",
    "as",
    "and",
    "or",
    "with",
    "to",
    "for",
    "on",
    "by",
    "which",
    "that",
    "this",
    "it",
}


def _find_label_column(text: str) -> tuple[str, tuple[int, int]] | None:
    best: tuple[str, tuple[int, int]] | None = None
    for pattern in _LABEL_PATTERNS:
        for m in pattern.finditer(text):
            quoted = next((m.group(g) for g in ("q1", "q2", "q3", "q4", "q5") if m.group(g)), None)
            value = quoted.strip() if quoted else (m.group("bare") or "").rstrip(".")
            if not value or (not quoted and value.lower() in _LABEL_STOP):
                continue
            if best is None or m.start() < best[1][0]:
                best = (value, (m.start(), m.end()))
            break
    return best


# ---------------------------------------------------------------------------------------------
# Unknown boards: a board-like name the database does not know must not silently become the
# default board. Only phrases anchored on a vendor, board family or chip name count, so everyday
# words ("on the table", "for my thesis") never trigger it.

# Common English or class-like words ("feather", "raspberry", "blue pill", "particle") only count
# with a model designator next to them, so "classify raspberry and apple images" is not a board.
_BOARD_ANCHOR = _rx(
    r"\b(?:arduino|genuino|esp\d{1,4}[a-z0-9]*|esp-?eye|stm32[a-z0-9]*|nucleo|teensy"
    r"|raspberry\s+pi|rpi|rp2\d{3}|pico\d?|nrf5\d+[a-z0-9]*|nrf91\d*|xiao|seeed|wio\s+terminal"
    r"|feather\s+(?:nrf\w*|m0|m4|esp\w*|rp\w*|huzzah\w*|sense|s2|s3)|adafruit|itsybitsy"
    r"|qt\s?py|sparkfun|m5stack|m5stick[a-z0-9]*|m5atom|microbit|micro:bit|bluepill|blackpill"
    r"|portenta|nicla|giga\s+r1|uno|mega\d{3,4}|mkr[a-z0-9]*|samd\d+[a-z0-9]*"
    r"|atmega\d+[a-z0-9]*|attiny\d+[a-z0-9]*|lilygo|ttgo|heltec|wemos|lolin|nodemcu|pyboard"
    r"|openmv|maixduino|k210|sipeed|apollo\d|i\.?mx\s?rt\d*|mimxrt\d+|gd32[a-z0-9]*"
    r"|ch32[a-z0-9]*|bl[67]02|max7800\d|himax|beaglebone|jetson|msp430[a-z0-9]*"
    r"|cc13\d\d|cc26\d\d|efr32[a-z0-9]*|psoc\d|xmc\d+|sam[de]\d+[a-z0-9]*"
    r"|nano\s+(?:every|rp2040|esp32|iot|matter|r4)|nano)(?:[-_][a-z0-9]+)*\b"
)
_VENDOR_ONLY = {
    "arduino",
    "genuino",
    "seeed",
    "adafruit",
    "sparkfun",
    "raspberry",
    "raspberry pi",
    "rpi",
    "espressif",
    "lilygo",
    "ttgo",
    "heltec",
    "wemos",
    "lolin",
    "m5stack",
}
_MODEL_WORDS = {
    "uno",
    "nano",
    "mega",
    "mini",
    "micro",
    "pro",
    "zero",
    "due",
    "leonardo",
    "every",
    "connect",
    "iot",
    "sense",
    "ble",
    "lite",
    "plus",
    "eye",
    "cam",
    "pill",
    "blue",
    "black",
    "bluepill",
    "blackpill",
    "discovery",
    "disco",
    "nucleo",
    "feather",
    "express",
    "thing",
    "wifi",
    "minima",
    "pi",
    "pico",
    "s2",
    "s3",
    "c3",
    "c6",
    "h2",
    "p4",
    "wroom",
    "wrover",
    "devkit",
    "devkitc",
    "devkitm",
    "rev2",
    "rp2040",
    "matter",
    "r4",
    "giga",
    "m4",
    "m7",
    "q",
    "vision",
    "edge",
    "studio",
    "xiao",
    "esp32",
    "esp8266",
    "w",
    "h7",
    "x8",
}
# Words that turn a known board name into a different board: "Nano 33 IoT", "Nano Every".
_VARIANT_WORDS = {
    "iot",
    "every",
    "connect",
    "matter",
    "rp2040",
    "esp32",
    "r4",
    "minima",
    "zero",
    "mini",
    "lite",
    "pro",
}
# Vague names that most likely mean the default board, TinyML's usual Arduino.
_MEANS_DEFAULT_BOARD = {"arduino", "genuino", "nano", "arduino nano"}
_BOARD_TAIL = {"board", "boards", "dev", "devboard", "kit", "module", "microcontroller", "mcu"}
_PHRASE_STOP = {
    "on",
    "for",
    "to",
    "with",
    "using",
    "and",
    "or",
    "from",
    "in",
    "at",
    "by",
    "that",
    "which",
    "keep",
    "under",
    "so",
    "where",
    "while",
    "into",
    "the",
    "a",
    "an",
    "my",
    "our",
    "is",
    "as",
    "of",
    "it",
    "please",
    "then",
    "but",
    "if",
    "than",
    "running",
    "via",
}
_GENERIC_BOARD_WORDS = {
    "camera",
    "sensor",
    "development",
    "new",
    "old",
    "custom",
    "main",
    "own",
    "breakout",
    "eval",
    "evaluation",
    "test",
    "target",
    "small",
    "tiny",
    "little",
    "cheap",
    "microcontroller",
    "mcu",
    "embedded",
    "arm",
    "cortex",
    "wireless",
    "bluetooth",
    "wifi",
    "usb",
    "prototype",
    "the",
}
_PREP_BOARD = _rx(
    r"\b(?:on|for|to|onto|using|with|into)\s+(?:my|an?|the|our|this|that|your)\s+"
    r"((?:[\w\-.]+\s+){1,3}?)(?:dev(?:elopment)?\s*)?(?:board|devkit|microcontroller|mcu)\b"
)


def _unknown_board_phrase(text: str) -> str | None:
    """A board-like name in `text` (already stripped of known boards), or None."""
    tokens = list(re.finditer(r"[^\W_][\w\-.:]*", text))
    for anchor in _BOARD_ANCHOR.finditer(text):
        start, end = anchor.start(), anchor.end()
        before = [t for t in tokens if t.end() <= start]
        after = [t for t in tokens if t.start() >= end]
        # Pull in a vendor word just before ("Arduino" + "Uno").
        if before and before[-1].group().lower() in _VENDOR_ONLY | {"pi", "studio", "st"}:
            gap = text[before[-1].end() : start]
            if not gap.strip():
                start = before[-1].start()
                if len(before) > 1 and before[-2].group().lower() in _VENDOR_ONLY:
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


# ---------------------------------------------------------------------------------------------
# Class names

_TOKEN = re.compile(
    r"'[^'\n]{1,40}'|\"[^\"\n]{1,40}\"|`[^`\n]{1,40}`|‘[^’\n]{1,40}’|“[^”\n]{1,40}”"
    r"|[^\W_][\w'\-]*|[,/&;:.()!?]|\S"
)
_LIST_SEPARATOR_WORDS = {"and", "or", "vs", "vs.", "versus", "&", "nor"}
_LIST_STOP = {
    "on",
    "for",
    "from",
    "in",
    "into",
    "with",
    "using",
    "at",
    "to",
    "by",
    "keep",
    "under",
    "that",
    "which",
    "when",
    "where",
    "so",
    "then",
    "the",
    "a",
    "an",
    "my",
    "our",
    "your",
    "their",
    "its",
    "this",
    "these",
    "those",
    "is",
    "are",
    "be",
    "use",
    "via",
    "based",
    "apart",
    "only",
    "please",
    "deploy",
    "of",
    "each",
    "per",
    "every",
    "within",
    "below",
    "above",
    "over",
    "if",
    "while",
    "than",
    "should",
    "must",
    "can",
    "could",
    "would",
    "will",
    "also",
    "plus",
    "i",
    "we",
    "you",
    "it",
    "they",
    "as",
    "between",
    "among",
    "either",
    "not",
    "but",
    "like",
    "such",
    "e.g.",
    "eg",
    "i.e.",
    "ie",
    "etc",
    "etc.",
    "classes",
    "class",
    "labels",
    "label",
    "categories",
    "category",
    "inside",
    "out",
    "up?",
    "about",
    "after",
    "before",
    "make",
    "build",
    "train",
    "want",
    "need",
    "how",
    "what",
    "do",
    "does",
    "did",
    "has",
    "have",
    "quantized",
    "quantised",
    "float32",
    "int8",
    "budget",
    "ram",
    "flash",
    "memory",
    "stored",
    "located",
    "saved",
    "kept",
    "taken",
    "recorded",
    "captured",
    "collected",
    "found",
    "placed",
    "given",
    "listed",
    "shown",
    "held",
    "living",
    "available",
    "here",
    "there",
}
_GENERIC_NOUNS = {
    "image",
    "images",
    "photo",
    "photos",
    "picture",
    "pictures",
    "pics",
    "data",
    "dataset",
    "readings",
    "reading",
    "samples",
    "sample",
    "sound",
    "sounds",
    "audio",
    "clip",
    "clips",
    "gesture",
    "gestures",
    "motion",
    "motions",
    "movement",
    "movements",
    "class",
    "classes",
    "category",
    "categories",
    "thing",
    "things",
    "object",
    "objects",
    "item",
    "items",
    "stuff",
    "word",
    "words",
    "keyword",
    "keywords",
    "command",
    "commands",
    "digit",
    "digits",
    "number",
    "numbers",
    "file",
    "files",
    "csv",
    "sensor",
    "sensors",
    "values",
    "value",
    "frames",
    "signals",
    "signal",
    "activity",
    "activities",
    "types",
    "kinds",
    "labels",
    "label",
    "model",
    "models",
    "board",
    "boards",
    "camera",
    "accelerometer",
    "imu",
    "states",
    "measurements",
    "recordings",
    "recording",
    "events",
    "rows",
    "columns",
    "features",
    "feature",
    "inputs",
    "handwritten",
    "spoken",
    "voice",
    "speech",
    "anomalies",
    "anomaly",
    "faults",
    "vibration",
    "vibrations",
    "time",
    "series",
    "text",
    "one",
    "two",
    "three",
    "them",
    "others",
    "other",
    # What the model is, not what it tells apart: "walking / running / standing classifier".
    "classifier",
    "classification",
    "detector",
    "detection",
    "recognition",
    "recognizer",
    "recogniser",
}
_LIST_CUE = _rx(
    r"\b(?:into|as|between|among|classes|labels|categories|types|kinds|words|keywords|commands"
    r"|(?:class|label|category)\s+names|either|namely)\b\s*(?:(?::|=|are|is|of|being)\s*)?"
)
_VERB_CUE = _rx(
    r"\b(?:classify|classifies|classifying|recogni[sz]e|recogni[sz]es|recogni[sz]ing|detect"
    r"|detects|detecting|distinguish|distinguishes|identify|identifies|tell\s+apart|tell"
    r"|differentiate|discriminate|sort|separate|spot|hear|spotting|categori[sz]e"
    r"|predict|predicts|predicting)\b"
    r"(?:\s+(?:between|among|the\s+difference\s+between))?\s*"
)
_COUNT_NOUNS = (
    r"classes|categories|gestures|motions|movements|activities|keywords|words|commands|labels"
    r"|types|kinds|species|objects|fruits|animals|sounds|states|conditions|postures|poses"
    r"|letters|shapes|colou?rs|faces|signs|actions|digits|items|products|defects|modes|outcomes"
    r"|groups|varieties|emotions|people|persons|users|vehicles|foods|plants|flowers|tools"
    r"|materials|surfaces|patterns|notes|phrases|events|behaviou?rs|exercises|moves|strokes"
)
_COUNT = _rx(
    rf"(?<![\w.\-])({_NUM})\s+(?:different\s+|distinct\s+|separate\s+|possible\s+|unique\s+)?"
    rf"(?:(?:kinds|types|sorts|classes)\s+of\s+)?"
    r"(?:(?!(?:seconds?|samples?|hz|ms|axis|axes|kb|mb|bytes?|pixels?|px|features?|frames?"
    r"|windows?|per|of|in|on|from|with|and|or)\b)[a-z][\w\-]*\s+){0,2}?"
    rf"(?:{_COUNT_NOUNS})\b"
)
_SLASH_LIST = _rx(r"(?<![\w/\\.])([^\W\d_][\w'\-]*(?:\s*/\s*[^\W\d_][\w'\-]*)+)(?![\w/\\])")
_SLASH_CUE_AFTER = _rx(
    r"^\s*(?:keywords?|words?|commands?|classes|labels|categories|states|classification"
    r"|detection|spotting|voice|spoken)\b"
)
_SLASH_CUE_BEFORE = _rx(
    r"(?:\binto|\bas|\bbetween|\bclassify|\bdetect|\brecogni[sz]e|\bspot|\bhear|\bwords?"
    r"|\bkeywords?|\bcommands?|\bclasses|\blabels|:)\s*(?:the\s+)?$"
)


def _unquote(token: str) -> str | None:
    if len(token) >= 2 and token[0] in "'\"`‘“" and token[-1] in "'\"`’”":
        return token[1:-1].strip()
    return None


_WORD = re.compile(r"[^\W_][\w'\-]*")
_VERB_WORDS = {
    "classify",
    "recognise",
    "recognize",
    "detect",
    "distinguish",
    "identify",
    "tell",
    "spot",
    "sort",
    "separate",
    "differentiate",
    "hear",
}
_MAX_CLASSES = 100
_VERB_BEFORE_PLACE = {"running", "run", "runs", "deployed", "working", "works", "living"}
_LIST_LEAD_IN = {
    "the",
    "either",
    "one",
    "of",
    "like",
    "such",
    "as",
    "e.g.",
    "eg",
    "namely",
    "i.e.",
    "ie",
    "between",
    "whether",
    ":",
    ".",
}


_FROM_PAIR = _rx(
    r"\b(?:tell|distinguish|separate|differentiate|discriminate)\s+(?:the\s+)?"
    r"([^\W\d_][\w'\-]*(?:\s+[^\W\d_][\w'\-]*)?)\s+from\s+(?:the\s+)?"
    r"([^\W\d_][\w'\-]*(?:\s+[^\W\d_][\w'\-]*)?)\b"
)
_IS_PAIR = _rx(
    r"\b(?:is|are|looks?|seems?)\s+(?:either\s+)?([^\W\d_][\w'\-]*)\s+or\s+"
    r"(?!not\b)([^\W\d_][\w'\-]*)\b"
    # "is the parking spot free or taken?": a short subject, the pair ending the clause.
    r"|\b(?:is|are)\s+(?:the|my|a|an|this|that|our)\s+(?:[^\W\d_][\w'\-]*\s+){1,3}?"
    r"([^\W\d_][\w'\-]*)\s+or\s+(?!not\b)([^\W\d_][\w'\-]*)(?=\s*(?:[?.,;:!]|$))"
)


# Words that cannot be a class in "tell X from Y" / "is X or Y" (a participle like "taken" can).
_PAIR_STOP = {
    "the",
    "a",
    "an",
    "not",
    "apart",
    "it",
    "this",
    "that",
    "them",
    "there",
    "here",
    "on",
    "in",
    "of",
    "to",
    "from",
    "with",
    "and",
    "or",
    "by",
    "at",
    "for",
    "is",
    "are",
    "be",
    "one",
    "each",
}


def _until_stop(words: list[str]) -> list[str]:
    kept: list[str] = []
    for word in words:
        if word.lower() in _LIST_STOP:
            break
        kept.append(word)
    return kept


def _parse_list(
    tokens: list[re.Match[str]], i: int, text: str, numbers: bool = False
) -> list[str] | None:
    """Class names starting at tokens[i]: "a, b and c", "'x' or 'y'", "a/b", "a vs b".

    `numbers`: number words are names here ("the spoken words one, two and three").
    """
    generic = _GENERIC_NOUNS - set(NUMBER_WORDS) if numbers else _GENERIC_NOUNS
    items: list[str] = []
    current: list[str] = []
    expect_item = True
    conjunction = False  # an and/or/vs was seen: the next comma after an item ends the list
    last_end = tokens[i].start() if i < len(tokens) else 0
    while i < len(tokens):
        tok = tokens[i]
        raw = tok.group()
        lower = raw.lower()
        if "\n" in text[last_end : tok.start()]:
            break
        quoted = _unquote(raw)
        if len(items) > _MAX_CLASSES:
            return None  # not a class list; also keeps huge inputs linear
        if quoted is not None:
            if not expect_item or current or not quoted:
                break
            items.append(quoted)
            expect_item = False
        elif raw in {",", "/", "&"} or lower in _LIST_SEPARATOR_WORDS:
            if raw == "," and conjunction and not expect_item:
                break  # "brewing or idle, clips in ./coffee": the "or" item ended the list
            conjunction = conjunction or raw == "&" or lower in _LIST_SEPARATOR_WORDS
            if current:
                items.append(" ".join(current))
                current = []
            if not items:
                break
            expect_item = True
        elif lower in {"the", "a", "an"} and expect_item and not current and items:
            pass  # "the apple, the pear and the plum"
        elif (
            lower in _VERB_BEFORE_PLACE
            and i + 1 < len(tokens)
            and (tokens[i + 1].group().lower() in {"on", "in", "at", "with", "inside"})
        ):
            break  # "running on a Pico" ends the list; "walking, running" does not
        elif _WORD.fullmatch(raw) and lower not in _LIST_STOP:
            if not expect_item and not current:
                break
            current.append(raw)
            if len(current) > 3:
                return None
            expect_item = False
        else:
            break
        last_end = tok.end()
        i += 1
    if current:
        items.append(" ".join(current))
    cleaned: list[str] = []
    for item in items:
        words = item.split()
        # "dog images" names the class "dog"; a bare "images" is not a class at all.
        while len(words) > 1 and words[-1].lower() in generic:
            words.pop()
        name = " ".join(words).strip(" '\"`.,")
        if not name or (len(words) == 1 and name.lower() in generic):
            return None
        cleaned.append(name)
    # "ripe vs unripe tomatoes": one-word classes and a last one carrying the shared plural
    # noun of them all.
    last = cleaned[-1].split() if cleaned else []
    if (
        len(cleaned) >= 2
        and len(last) == 2
        and all(len(c.split()) == 1 and not c.lower().endswith("s") for c in cleaned[:-1])
        and last[1].lower().endswith("s")
        and not last[0].lower().endswith("s")
    ):
        cleaned[-1] = last[0]
    deduped: list[str] = []
    seen: set[str] = set()
    for name in cleaned:
        if name.lower() not in seen:
            seen.add(name.lower())
            deduped.append(name)
    return deduped if len(deduped) >= 2 else None


def _find_classes(text: str) -> list[str] | None:
    tokens = list(_TOKEN.finditer(text))
    if not tokens:
        return None

    starts = [t.start() for t in tokens]

    def index_at(pos: int) -> int | None:
        n = bisect.bisect_left(starts, pos)
        return n if n < len(tokens) else None

    def skip_lead_in(n: int) -> int:
        while n < len(tokens) and tokens[n].group().lower() in _LIST_LEAD_IN:
            following = tokens[n + 1].group().lower() if n + 1 < len(tokens) else ""
            if tokens[n].group().lower() == "one" and following in {",", "and", "or", "/"}:
                break  # "the words one, two and three": "one" is the first name, not "one of"
            n += 1
        return n

    candidates: list[tuple[int, int, list[str]]] = []  # (priority, position, names)

    # 0: a run of quoted names anywhere: 'up', 'down', 'left' or 'right'.
    for n, tok in enumerate(tokens):
        if _unquote(tok.group()) is None or (n > 0 and _unquote(tokens[n - 1].group()) is not None):
            continue
        names = _parse_list(tokens, n, text)
        quoted = 0
        for t in tokens[n:]:
            if _unquote(t.group()) is not None:
                quoted += 1
            elif t.group() not in {",", "/", "&"} and (
                t.group().lower() not in _LIST_SEPARATOR_WORDS
            ):
                break
        if names and quoted >= 2:
            candidates.append((0, tok.start(), names))
    # 1: a parenthesised list: (apple, banana, orange).
    for n, tok in enumerate(tokens):
        if tok.group() == "(":
            names = _parse_list(tokens, skip_lead_in(n + 1), text)
            if names:
                candidates.append((1, tok.start(), names))
    # 2: after an explicit cue: into a/b, as 'x' or 'y', classes: a, b, the words yes and no.
    for m in _LIST_CUE.finditer(text):
        n = index_at(m.end())
        if n is not None:
            spoken = re.match(r"(?:key)?words|commands", m.group(), _I) is not None
            names = _parse_list(tokens, skip_lead_in(n), text, numbers=spoken)
            if names:
                candidates.append((2, m.start(), names))
    # 2: tell cats from dogs; 3: the door is open or closed.
    for pattern, priority in ((_FROM_PAIR, 2), (_IS_PAIR, 3)):
        for m in pattern.finditer(text):
            found = [g for g in m.groups() if g]
            # A second word that is not part of the name ends it: "dogs in ./pets".
            pair = [
                " ".join(w for w in _until_stop(g.split()) if w.lower() not in _GENERIC_NOUNS)
                or g.split()[0]
                for g in found[:2]
            ]
            if (
                all(w.lower() not in _GENERIC_NOUNS | _PAIR_STOP for w in pair)
                and pair[0].lower() != pair[1].lower()
            ):
                candidates.append((priority, m.start(), pair))
    for n, tok in enumerate(tokens):
        if tok.group() == ":":
            names = _parse_list(tokens, skip_lead_in(n + 1), text)
            if names:
                candidates.append((2, tok.start(), names))
    # 2: a/b/c next to a cue: yes/no keywords, into empty/occupied.
    for m in _SLASH_LIST.finditer(text):
        before = text[max(0, m.start() - 40) : m.start()]
        after = text[m.end() : m.end() + 30]
        if _SLASH_CUE_AFTER.search(after) or _SLASH_CUE_BEFORE.search(before):
            parts = [p.strip() for p in m.group(1).split("/")]
            names = [p for p in parts if p and p.lower() not in _GENERIC_NOUNS]
            if len(names) == len(parts) and len({p.lower() for p in names}) == len(names):
                candidates.append((2, m.start(), names))
    # 2: cat vs dog, cats versus dogs.
    for n, tok in enumerate(tokens):
        if tok.group().lower() in {"vs", "vs.", "versus"} and n > 0:
            start = n - 1
            while (
                start > 0
                and n - start < 3
                and _WORD.fullmatch(tokens[start - 1].group())
                and tokens[start - 1].group().lower() not in _LIST_STOP | _VERB_WORDS
            ):
                start -= 1
            names = _parse_list(tokens, start, text)
            if names:
                candidates.append((2, tokens[start].start(), names))
    # 4: a list opening the request ("cats and dogs from data/pets") or any longer comma list.
    names = _parse_list(tokens, skip_lead_in(0), text)
    if names:
        candidates.append((4, 0, names))
    for n, tok in enumerate(tokens[:400]):
        if (n and tokens[n - 1].group() in {",", "/"}) or not _WORD.fullmatch(tok.group()):
            continue
        names = _parse_list(tokens, n, text)
        if names and len(names) >= 3:
            candidates.append((4, tok.start(), names))
    # 3: straight after a verb: recognise cats and dogs.
    for m in _VERB_CUE.finditer(text):
        n = index_at(m.end())
        if n is not None:
            names = _parse_list(tokens, skip_lead_in(n), text)
            if names:
                candidates.append((3, m.start(), names))
    if not candidates:
        return None
    candidates.sort(key=lambda c: (c[0], c[1]))
    return candidates[0][2]


def _find_class_count(text: str) -> int | None:
    for m in _COUNT.finditer(text):
        number = _to_int(m.group(1))
        if number is not None and 2 <= number <= 1000:
            return number
    return None


# ---------------------------------------------------------------------------------------------
# Shapes

_RESOLUTION = _rx(
    r"(?<![\w.])(\d{1,4})\s*(?:x|×|\*|by)\s*(\d{1,4})(?:\s*(?:x|×|\*|by)\s*(\d{1,2}))?"
    r"(?:\s*(?:px|pixels?))?(?![\w.]|\s*(?:x|×|by)\s*\d)"
)
_SQUARE = _rx(r"(?<![\w.])(\d{1,4})\s*(?:px|pixels?)\b(?!\s*(?:x|×|by)\b)")
_GRAY = _rx(
    r"\bgr[ae]y[\s-]*scale\b|\bgr[ae]y\b|\bmonochrome\b|\bmono\b|\bblack[\s-]*(?:and|&)[\s-]*white\b"
    r"|\bb\s*&\s*w\b|\b(?:1|one|single)[\s-]*channel\b|\bluminance\b"
    # A thermal or depth camera gives one value per pixel: a temperature or a distance.
    r"|\bthermal\b|\bthermographic\b|\binfra[\s-]*red\b|\bdepth\b|\bheat[\s-]*maps?\b"
    r"|\btime[\s-]*of[\s-]*flight\b|\btof\b"
)
_COLOUR = _rx(
    r"\brgb\b|\bcolou?r(?:ed|ful|s)?\b|\b(?:3|three)[\s-]*channels?\b|\bfull[\s-]*colou?r\b"
)
_AXES = _rx(rf"(?<![\w.])({_NUM})[\s-]*(?:axis|axes|dof|d\.o\.f\.?|degrees?\s+of\s+freedom)\b")
_XYZ = _rx(r"\bx\s*[,/]?\s*y\s*(?:,|/|and)?\s*z\b|\bxyz\b|\btri-?axial\b")
_WINDOWS_OF = _rx(rf"\bwindows?\s+(?:of|with|length(?:\s+of)?|size(?:\s+of)?)\s+({_NUM})\b")
_SAMPLES = _rx(
    rf"(?<![\w.])({_NUM})[\s-]*(?:samples?|readings?|time[\s-]*steps?|timesteps?|points?|frames?)\b"
)
_WINDOW_CONTEXT = _rx(
    r"\bwindows?\b|\bsequences?\b|\bsegments?\b|\bchunks?\b|\bper\s+(?:gesture|motion|movement"
    r"|example|sequence|event|recording|reading|sample|instance)\b|\beach\b|\blong\b"
)
_RATE = _rx(
    r"(?<![\w.])(\d{1,6}(?:\.\d+)?)\s*(k)?(?:hz|hertz|samples?\s*(?:/|per)\s*(?:s|sec|second))\b"
)
_DURATION = _rx(
    rf"(?<![\w.])(\d{{1,4}}(?:\.\d+)?|{_NUM}|half\s+a)[\s-]*(ms|milliseconds?|s|secs?|seconds?)\b"
    r"(?!\s*/)"
)
_FEATURES = _rx(
    rf"(?<![\w.])({_NUM})\s+(?:numeric\s+|numerical\s+|input\s+|sensor\s+)?(?:features?|inputs?"
    r"|values|columns|variables|channels|measurements|sensors|readings\s+per\s+row)\b"
)
_COLOUR_SENSOR = _rx(
    r"\bcolou?r\s+sensors?\b|\brgb\s+sensors?\b|\bapds[\s-]?9960\b|\btcs\d{4,5}\b|\brgb\b"
    r"|\bcolou?rs?\b"
)
_RGBC = _rx(r"\brgbc\b|\bclear\s+channel\b")
_QUANTITIES = {
    "temperature": r"\btemperatures?\b",
    "humidity": r"\bhumidity\b",
    "pressure": r"\bpressure\b",
    "light": r"\blight\s+(?:level|intensity|sensor)s?\b|\bambient\s+light\b|\blux\b",
    "gas": r"\bgas\b|\bvoc\b",
    "co2": r"\bco2\b",
    "voltage": r"\bvoltages?\b",
    "current": r"\bcurrent\s+(?:draw|readings?|sensor)\b|\bamps?\b",
    "moisture": r"\bmoisture\b",
    "distance": r"\bdistances?\b",
    "sound level": r"\bsound\s+levels?\b|\bnoise\s+levels?\b",
}
_MOTION_CUE = _rx(
    r"\baccelerometers?\b|\baccel\b|\bimu\b|\bgyro(?:scope)?s?\b|\bmagnetometers?\b|\bgestures?\b"
    r"|\bmotions?\b|\bmovements?\b|\bwrist\b|\bactivit(?:y|ies)\b|\bvibrations?\b|\bpostures?\b"
    r"|\binertial\b|\bshak(?:e|es|ing)\b|\b(?:axis|axes)\b"
)
_GYRO = _rx(r"\bgyro(?:scope)?s?\b|\bimu\b|\binertial\b")
_MAGNETO = _rx(r"\bmagnetometers?\b|\b9[\s-]*(?:axis|dof)\b")
_MEL_BINS = _rx(
    rf"(?<![\w.])({_NUM})\s*(?:mel|mfccs?|mel[\s-]*bins|filter[\s-]*banks?"
    r"|frequency\s+bins|bins)\b"
)
_AUDIO_FRAMES = _rx(rf"(?<![\w.])({_NUM})\s*(?:time\s+)?frames\b")

# ---------------------------------------------------------------------------------------------
# Inputs: quantities named as what the model reads ("from soil moisture, temperature and light
# readings", "using the RGB values") are input columns, never classes.

_INPUT_PREP = r"(?:from|using|with|based\s+on|given|reading|reads|measuring|via|off)"
_INPUT_NOUN = (
    r"(?:sensor\s+)?(?:readings?|values?|measurements?|data|inputs?|features?|levels?"
    r"|signals?|channels?|columns?|sensors?|probes?)"
)
_INPUT_START = _rx(
    rf"\b{_INPUT_PREP}\s+(?:the\s+|my\s+|its\s+|their\s+|a\s+|an\s+|our\s+)?(?=[^\W\d_])"
)
_INPUT_END = _rx(rf"\s+{_INPUT_NOUN}\b")
# The same without the noun, when every item is a quantity a sensor measures.
# The same without the noun, when every item is a quantity a sensor measures: the list runs
# from the preposition to the end of its clause ("using temperature, humidity and CO2 in x.csv").
_INPUT_BARE_START = _rx(r"\b(?:using|from|based\s+on|given|measuring)\s+(?:the\s+)?(?=[^\W\d_])")
_CLAUSE_END = _rx(
    r"[.;:!?()]|\s(?:in|from|on|at|to|for|with|into|as|label|labels|column|under|within|using)\b"
)
_QUANTITY_WORDS = _rx(
    r"^(?:(?:soil|air|water|ambient|surface|room|outside|indoor|outdoor)\s+)?"
    r"(?:temperatures?|temp|humidity|moisture|pressure|light|lux|brightness|co2|gas|voltage"
    r"|current|distance|sound|noise|ph|conductivity|flow|speed|rpm|weight|altitude|oxygen"
    r"|dust|pm2\.?5|uv|tvoc|voc|heart\s+rate|power|energy|level|vibration)$"
)
_INPUT_SPLIT = re.compile(r"\s*(?:,|/|&|\band\b|\bplus\b)\s*", re.I)
_INPUT_ARTICLES = re.compile(r"^(?:the|a|an|its|their|my|our)\s+", re.I)
_MOTION_INPUT = _rx(
    r"\baccel|\bgyro|\bimu\b|\bmagnet|\bemg\b|\becg\b|\beeg\b|\bppg\b|^[xyz]$|\baxis|\baxes"
)


def _input_items(text: str) -> list[str] | None:
    """The items of an input list, or None when it does not look like one."""
    text = re.sub(r"\s+", " ", text.replace("’", "'")).strip()
    if re.search(r"\brgbc?\b", text, _I):
        # A colour sensor's channels: the CSV calls them R, G, B (or red, green, blue).
        rgb = ["red", "green", "blue"]
        return [*rgb, "clear"] if re.search(r"\brgbc\b", text, _I) else rgb
    items = [_INPUT_ARTICLES.sub("", i).strip(" '") for i in _INPUT_SPLIT.split(text)]
    items = [i for i in items if i]
    if any(re.search(r"[^\w\s'\-.]", i) for i in items):
        return None  # "colour sensor: unripe, ripe, overripe —" is a class list, not inputs
    if len(items) < 2 or any(len(i.split()) > 3 for i in items):
        return None
    if any(w.lower() in _LIST_STOP - {"light"} for i in items for w in i.split()):
        return None
    return items


def _find_inputs(masked: str) -> tuple[list[str], tuple[int, int]] | None:
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


# ---------------------------------------------------------------------------------------------
# Budget

_SIZE = re.compile(SIZE_PATTERN, _I)
_FLASH_WORD = _rx(
    r"\bflash\b|\brom\b|\bprogram\s+(?:memory|space|storage)\b|\bstorage\b|\bfirmware\s+size\b"
    r"|\bcode\s+size\b|\bbinary\s+size\b"
)
_RAM_WORD = _rx(r"\bs?ram\b|\bheap\b|\b(?:tensor\s+)?arena\b|\bworking\s+memory\b")
_MEMORY_WORD = _rx(r"\bmemory\b")
_MODEL_WORD = _rx(r"\bmodels?(?:'s)?\b|\bweights\b|\bnetwork\b|\bnet\b")
_BUDGET_VERB = _rx(
    r"\bunder\b|\bbelow\b|\bat\s+most\b|\bmax(?:imum)?\b|\bwithin\b|\bfits?\b|\bless\s+than\b"
    r"|\bno\s+(?:more|bigger|larger)\s+than\b|\blimit(?:ed)?\b|\bbudget\b|\bup\s+to\b|\bcap(?:ped)?\b"
    r"|\bsmaller\s+than\b|\bnot\s+exceed(?:ing)?\b|\b<=?\b|\buse\s+(?:only|at\s+most)\b|\bkeep\b"
)
_FREE = _rx(
    r"\bfree\b|\bspare\b|\bunused\b|\bheadroom\b|\breserved?\b|\bleft\s+over\b"
    r"|\bavailable\s+for\s+(?:other|my|the\s+rest)\b"
)
_LEAVE = _rx(r"\bleave\b|\bleaving\b|\bkeep\b|\breserve\b|\bkeeping\b")
# Clauses end at punctuation (but not inside "1,024" or "0.5") and at conjunctions, so that in
# "RAM under 100 KB, flash under 1 MB" each size stays with its own memory word.
_CLAUSE_SPLIT = _rx(r"[;\n!?]|[.,](?!\d)|(?<!\d)[.,]|\b(?:and|but|while|whereas|plus|also|then)\b")

# ---------------------------------------------------------------------------------------------
# Quantization

_FLOAT = _rx(
    r"\bfloat(?:32|ing[\s-]*point)?\b|\bfp32\b|\bf32\b|\bno\s+quanti[sz]ation\b"
    r"|\bwithout\s+(?:any\s+)?quanti[sz](?:ation|ing)\b|\bun[\s-]*quanti[sz]ed\b"
    r"|\bnon[\s-]*quanti[sz]ed\b|\bdo(?:n'?t|\s+not)\s+quanti[sz]e\b|\bfull[\s-]*precision\b"
    r"|\bskip\s+(?:the\s+)?quanti[sz]ation\b|\bnot\s+quanti[sz]ed\b"
)
_INT8 = _rx(r"\bu?int[\s-]?8\b|\b8[\s-]*bits?\b|\bquanti[sz](?:ed|e|ation)\b|\binteger\b")
_INT8_EXPLICIT = _rx(r"\bu?int[\s-]?8\b|\b8[\s-]*bits?\b")

_TASK_SHORT = {
    Task.IMAGE_CLASSIFICATION: "images",
    Task.SENSOR_CLASSIFICATION: "sensor",
    Task.KEYWORD_SPOTTING: "keywords",
    Task.ANOMALY_DETECTION: "anomaly",
}


@dataclass
class _Plan:
    """Working state of one planning run."""

    request: str
    board_arg: str | None
    text: str = ""
    assumptions: list[str] = field(default_factory=list)
    inputs: list[str] = field(default_factory=list)

    def assume(self, sentence: str) -> None:
        if sentence not in self.assumptions:
            self.assumptions.append(sentence)

    # -- entry point -------------------------------------------------------------------------

    def run(self) -> ProjectSpec:
        self.text = self.request.replace("\r", " ").replace("\t", " ")
        if not re.search(r"[^\W_]", self.text):
            raise _nothing_usable(self.request)

        paths = _find_paths(self.text)
        masked = _mask(self.text, [(p.start, p.end) for p in paths])
        csv_ref = next((p for p in paths if p.is_csv), None)
        folder_ref = next((p for p in paths if not p.is_csv), None)

        label: tuple[str, tuple[int, int]] | None = None
        if csv_ref is not None:
            label = _find_label_column(masked)
            if label is not None:
                masked = _mask(masked, [label[1]])

        board, masked = self._board(masked)
        task = self._task(masked, csv_ref, folder_ref)
        dataset, head = self._dataset(task, masked, csv_ref, folder_ref, label)
        inputs = _find_inputs(masked) if task is not Task.IMAGE_CLASSIFICATION else None
        if inputs is not None:
            self.inputs = inputs[0]
            if dataset.kind is DatasetKind.CSV:
                dataset = dataset.model_copy(update={"features": inputs[0]})
        # What the model reads is not what it tells apart: inputs never become classes.
        class_text = _mask(masked, [inputs[1]]) if inputs is not None else masked
        classes, num_classes = self._classes(task, class_text, dataset)
        input_shape = self._input_shape(task, masked, dataset, head, board)
        budget = self._budget(masked, board)
        quantization = self._quantization(masked)
        name = self._name(task, classes, dataset, board)
        try:
            return ProjectSpec(
                name=name,
                request=self.request,
                task=task,
                board=board.id,
                input_shape=input_shape,
                classes=classes,
                num_classes=num_classes,
                dataset=dataset,
                budget=budget,
                quantization=quantization,
                assumptions=self.assumptions,
            )
        except ValidationError as exc:
            raise PlanError(
                f"The request led to an invalid spec ({describe_validation_error(exc)}); "
                "rephrase it or edit tinyforge.toml by hand."
            ) from exc

    # -- board -------------------------------------------------------------------------------

    def _board(self, masked: str) -> tuple[Board, str]:
        mentions = find_board_mentions(masked)
        without_known = _mask(masked, [(m.start, m.end) for m in mentions])
        if self.board_arg is not None:
            board = get_board(self.board_arg)
            named = {m.board.id for m in mentions}
            if named and named != {board.id}:
                self.assume(
                    f"The board option ({board.id}) overrides the board named in the request "
                    f"({', '.join(sorted(named))})."
                )
            return board, without_known
        if mentions:
            adjacent = self._unknown_next_to(masked, mentions)
            if adjacent is not None:
                raise UnknownBoardError(adjacent, suggest_boards(adjacent))
            board = mentions[0].board
            others = sorted({m.board.id for m in mentions} - {board.id})
            if others:
                self.assume(
                    f"Several boards are named: using the first, {board.name} ({board.id}), "
                    f"not {', '.join(others)}."
                )
            return board, without_known
        phrase = _unknown_board_phrase(without_known)
        if phrase is not None:
            if phrase.lower() in _MEANS_DEFAULT_BOARD:
                board = get_board(DEFAULT_BOARD)
                self.assume(
                    f"'{phrase}' does not say which board exactly: assumed {board.name} "
                    f"({board.id})."
                )
                return board, without_known
            raise UnknownBoardError(phrase, suggest_boards(phrase))
        board = get_board(DEFAULT_BOARD)
        self.assume(f"No board named: assumed {board.name} ({board.id}).")
        return board, without_known

    @staticmethod
    def _unknown_next_to(masked: str, mentions: list[BoardMention]) -> str | None:
        """'Arduino Nano ESP32', 'Nano 33 IoT': a known name glued to more board words names
        another board, which must not silently become the known one."""
        for m in mentions:
            right = re.match(r"[ \t\-]+([^\W_][\w\-]*)", masked[m.end : m.end + 20])
            if right is not None and right.group(1).lower() in _VARIANT_WORDS:
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
                if lower in _VENDOR_ONLY or lower in _MODEL_WORDS or _BOARD_ANCHOR.fullmatch(word):
                    run.insert(0, word)
                else:
                    break
            # Words from the board's own names ("STM32" before "Nucleo-H743ZI2") are fine.
            own = {
                w.lower()
                for n in (m.board.name, m.board.vendor, *m.board.aliases)
                for w in re.findall(r"[^\W_]+", n)
            }
            if any(w.lower() not in _VENDOR_ONLY | own | {"pi", "studio"} for w in run):
                return " ".join([*run, m.text])
        return None

    # -- task --------------------------------------------------------------------------------

    def _task(self, masked: str, csv_ref: _PathRef | None, folder_ref: _PathRef | None) -> Task:
        scores = {task: 0 for task in _TASK_ORDER}
        for task, cues in _TASK_CUES.items():
            for pattern, weight in cues:
                scores[task] += weight * len(pattern.findall(masked))
        best = max(_TASK_ORDER, key=lambda t: (scores[t], -_TASK_ORDER.index(t)))
        if scores[best] > 0:
            # A CSV holds tabular data: weak image cues ("recognise") must not make it images.
            if csv_ref is not None and best is Task.IMAGE_CLASSIFICATION and scores[best] < 4:
                best = Task.SENSOR_CLASSIFICATION
                self.assume("The data is a CSV file, so this is read as sensor classification.")
            return best
        if csv_ref is not None:
            self.assume("Only a CSV file is named: read as sensor classification of its rows.")
            return Task.SENSOR_CLASSIFICATION
        if folder_ref is not None:
            existing = _existing(folder_ref.path)
            kind = _folder_content_kind(existing) if existing and existing.is_dir() else None
            if kind == "audio":
                self.assume("The folder holds audio clips: read as keyword spotting.")
                return Task.KEYWORD_SPOTTING
            if kind == "csv":
                self.assume("The folder holds CSV files: read as sensor classification.")
                return Task.SENSOR_CLASSIFICATION
            self.assume(
                "Only a folder is named: read as image classification (one sub-folder per class)."
            )
            return Task.IMAGE_CLASSIFICATION
        raise _nothing_usable(self.request)

    # -- dataset -----------------------------------------------------------------------------

    def _dataset(
        self,
        task: Task,
        masked: str,
        csv_ref: _PathRef | None,
        folder_ref: _PathRef | None,
        label: tuple[str, tuple[int, int]] | None,
    ) -> tuple[Dataset, _CsvHead | None]:
        image_like = task is Task.IMAGE_CLASSIFICATION
        wants_digits = image_like and _DIGITS_CUE.search(masked) is not None
        if csv_ref is not None and not (image_like and folder_ref is not None):
            return self._csv_dataset(csv_ref, label, task)
        if folder_ref is not None:
            return Dataset(kind=DatasetKind.FOLDER, path=folder_ref.path), None
        if wants_digits:
            self.assume(
                "No dataset named: using the built-in 8x8 handwritten digits dataset "
                "(scikit-learn's load_digits)."
            )
            return Dataset(kind=DatasetKind.DIGITS), None
        return self._default_dataset(task, masked), None

    def _default_dataset(self, task: Task, masked: str) -> Dataset:
        """No data yet: the project's own data folder, to be filled (see scaffold)."""
        images = task is Task.IMAGE_CLASSIFICATION or (
            task is Task.ANOMALY_DETECTION
            and sum(len(p.findall(masked)) * w for p, w in _TASK_CUES[Task.IMAGE_CLASSIFICATION])
            > 0
        )
        if images or task is Task.KEYWORD_SPOTTING:
            what = "WAV clips" if task is Task.KEYWORD_SPOTTING else "images"
            self.assume(
                f"{NO_DATASET_NOTE} the project gets its own {DEFAULT_DATA_DIR}/ folder, one "
                f"sub-folder of {what} per class ({DEFAULT_DATA_DIR}/README.md says what to "
                "record)."
            )
            return Dataset(kind=DatasetKind.FOLDER, path=DEFAULT_DATA_DIR)
        label = None if task is Task.ANOMALY_DETECTION else "label"
        self.assume(
            f"{NO_DATASET_NOTE} readings go into {DEFAULT_CSV} in the project, one column per "
            "input"
            + (f" and the class in column '{label}'" if label else "")
            + f" ({DEFAULT_DATA_DIR}/README.md says what to record)."
        )
        return Dataset(kind=DatasetKind.CSV, path=DEFAULT_CSV, label_column=label)

    def _csv_dataset(
        self, ref: _PathRef, label: tuple[str, tuple[int, int]] | None, task: Task | None = None
    ) -> tuple[Dataset, _CsvHead | None]:
        existing = _existing(ref.path)
        head = _read_csv_head(existing) if existing is not None and existing.is_file() else None
        if existing is not None and existing.is_file() and head is None:
            self.assume(
                f"{ref.path} could not be read as CSV text at plan time; "
                "`tinyforge build` will check it again."
            )
        column: str
        if label is not None:
            column = label[0]
            if head is not None:
                lowered = {h.lower(): h for h in head.header}
                if column.lower() not in lowered:
                    raise DatasetError(
                        f"Column '{column}' is not in {ref.path}: its columns are "
                        f"{', '.join(h for h in head.header if h)}."
                    )
                column = lowered[column.lower()]
        elif task is Task.ANOMALY_DETECTION and (
            head is None or not {h.lower() for h in head.header} & set(_LABEL_NAMES)
        ):
            # An anomaly detector learns from normal rows: a guessed label would lose a feature.
            self.assume(
                "No label column named: every row is treated as normal reading for training; "
                "name one (e.g. 'label column state') to check detection on known anomalies."
            )
            return Dataset(kind=DatasetKind.CSV, path=ref.path, label_column=None), head
        elif head is not None:
            column, why = _guess_label_column(head)
            self.assume(f"No label column named: using '{column}' because {why}.")
        else:
            column = "label"
            self.assume("No label column named: assumed a column called 'label'.")
        return Dataset(kind=DatasetKind.CSV, path=ref.path, label_column=column), head

    # -- classes -----------------------------------------------------------------------------

    def _classes(
        self, task: Task, masked: str, dataset: Dataset
    ) -> tuple[list[str] | None, int | None]:
        if dataset.kind is DatasetKind.DIGITS:
            return [str(d) for d in range(10)], None
        classes = _find_classes(masked)
        count = _find_class_count(masked)
        if classes is None and dataset.kind is DatasetKind.FOLDER and dataset.path:
            folder = _existing(dataset.path)
            names = _subfolders(folder) if folder is not None and folder.is_dir() else []
            if len(names) >= 2:
                if count is not None and count != len(names):
                    self.assume(
                        f"The request says {count} classes but {dataset.path} has "
                        f"{len(names)} sub-folders: using the sub-folders."
                    )
                return names, None
        if classes is not None:
            if count is not None and count != len(classes):
                self.assume(
                    f"The request says {count} classes but names {len(classes)}: "
                    f"using the named ones ({', '.join(classes)})."
                )
            if task is Task.KEYWORD_SPOTTING and any(
                a.startswith(NO_DATASET_NOTE) for a in self.assumptions
            ):
                extra = [c for c in ("silence", "unknown") if c not in {n.lower() for n in classes}]
                if extra:
                    classes = [*classes, *extra]
                    self.assume(
                        "Keyword spotting also has to know when none of the words is said: "
                        f"added the usual {' and '.join(repr(c) for c in extra)} class"
                        f"{'es' if len(extra) > 1 else ''} (background noise, other words)."
                    )
            return classes, None
        if task is Task.ANOMALY_DETECTION:
            return None, None
        return None, count

    # -- input shape -------------------------------------------------------------------------

    def _input_shape(
        self, task: Task, masked: str, dataset: Dataset, head: _CsvHead | None, board: Board
    ) -> list[int]:
        if dataset.kind is DatasetKind.DIGITS:
            stated = _RESOLUTION.search(masked)
            if stated and (stated.group(1), stated.group(2)) != ("8", "8"):
                self.assume(
                    "The built-in digits dataset is 8x8 grayscale, so the stated image "
                    "size is not used."
                )
            return [8, 8, 1]
        if task is Task.IMAGE_CLASSIFICATION:
            return self._image_shape(masked, board)
        if task is Task.KEYWORD_SPOTTING:
            return self._audio_shape(masked)
        if task is Task.ANOMALY_DETECTION and dataset.kind is DatasetKind.FOLDER:
            image_score = sum(
                len(p.findall(masked)) * w for p, w in _TASK_CUES[Task.IMAGE_CLASSIFICATION]
            )
            if image_score > 0:
                return self._image_shape(masked, board)
        return self._sensor_shape(masked, dataset, head)

    def _image_shape(self, masked: str, board: Board) -> list[int]:
        camera = _CAMERA_CUE.search(masked) is not None or board.id in {"esp32cam", "nicla_vision"}
        channels: int | None = None
        size: tuple[int, int] | None = None
        res = _RESOLUTION.search(masked)
        if res is not None:
            height, width = int(res.group(1)), int(res.group(2))
            if height > 0 and width > 0:
                size = (height, width)
                if res.group(3) and int(res.group(3)) in (1, 3):
                    channels = int(res.group(3))
        if size is None:
            square = _SQUARE.search(masked)
            if square is not None and int(square.group(1)) > 0:
                side = int(square.group(1))
                size = (side, side)
        if channels is None:
            gray, colour = _GRAY.search(masked), _COLOUR.search(masked)
            if gray and (not colour or gray.start() <= colour.start()):
                channels = 1
            elif colour:
                channels = 3
        if size is None:
            side = 96 if camera else 32
            size = (side, side)
            why = "a camera model" if camera else "small images"
            self.assume(
                f"No image size given: assumed {side}x{side} pixels, a usual size for "
                f"{why} on a microcontroller."
            )
        if channels is None:
            channels = 1 if camera else 3
            kind = "grayscale" if channels == 1 else "RGB colour"
            self.assume(
                f"No colour mode given: assumed {kind} ({channels} channel"
                f"{'s' if channels > 1 else ''})."
            )
        return [size[0], size[1], channels]

    def _audio_shape(self, masked: str) -> list[int]:
        frames, bins = 49, 40
        stated_bins = _MEL_BINS.search(masked)
        stated_frames = _AUDIO_FRAMES.search(masked)
        if stated_bins and (value := _to_int(stated_bins.group(1))):
            bins = value
        if stated_frames and (value := _to_int(stated_frames.group(1))):
            frames = value
        if not stated_bins or not stated_frames:
            self.assume(
                f"Audio input assumed to be a {frames}x{bins} spectrogram: 1 s clips at "
                f"16 kHz in 30 ms frames every 20 ms, {bins} mel bins (the TFLM "
                "micro_speech layout)."
            )
        return [frames, bins, 1]

    def _sensor_shape(self, masked: str, dataset: Dataset, head: _CsvHead | None) -> list[int]:
        window = self._window(masked)
        axes = self._axes(masked)
        features = None
        if (m := _FEATURES.search(masked)) is not None:
            features = _to_int(m.group(1))
        if head is not None:
            label = (dataset.label_column or "").lower()
            count = sum(1 for h in head.header if h.lower() != label)
            if count > 0:
                if window and axes and window * axes == count:
                    return [window, axes]
                if features is not None and features != count:
                    self.assume(
                        f"The request says {features} features but {dataset.path} has "
                        f"{count} feature columns: using {count}."
                    )
                return [count]
        if window is not None or (axes is not None and dataset.kind is not DatasetKind.CSV):
            return [window or self._default_window(), axes or self._default_axes(masked)]
        if features is not None and features > 0:
            return [features]
        if axes is not None:
            return [axes]
        if _COLOUR_SENSOR.search(masked):
            channels = 4 if _RGBC.search(masked) else 3
            self.assume(
                f"Colour sensor input assumed to be {channels} values per reading "
                f"({'R, G, B, clear' if channels == 4 else 'R, G, B'})."
            )
            return [channels]
        if self.inputs:
            self.assume(
                f"Inputs: {', '.join(self.inputs)}, one value each; the CSV's columns of the "
                "same names are used when the build reads it."
            )
            return [len(self.inputs)]
        quantities = [q for q, rx in _QUANTITIES.items() if re.search(rx, masked, _I)]
        if quantities and not _MOTION_CUE.search(masked):
            self.assume(
                f"Input assumed to be one value per quantity named ({', '.join(quantities)})."
            )
            return [len(quantities)]
        if dataset.kind is not DatasetKind.CSV and _MOTION_CUE.search(masked):
            return [self._default_window(), self._default_axes(masked)]
        self.assume(
            "The number of input features is unknown until the CSV file can be read: "
            "input_shape is a placeholder [1]; set it to the number of feature columns "
            "in tinyforge.toml if the build does not."
        )
        return [1]

    def _window(self, masked: str) -> int | None:
        if (m := _WINDOWS_OF.search(masked)) is not None:
            value = _to_int(m.group(1))
            if value and value > 1:
                return value
        for m in _SAMPLES.finditer(masked):
            around = masked[max(0, m.start() - 40) : m.end() + 40]
            value = _to_int(m.group(1))
            if value and value > 1 and _WINDOW_CONTEXT.search(around):
                return value
        rate = _RATE.search(masked)
        duration = _DURATION.search(masked)
        if rate is not None and duration is not None:
            hz = _to_float(rate.group(1))
            amount = duration.group(1).lower()
            seconds = 0.5 if amount.startswith("half") else _to_float(amount)
            if hz is not None and seconds is not None:
                if rate.group(2):
                    hz *= 1000
                if duration.group(2).lower().startswith("m"):
                    seconds /= 1000
                samples = round(hz * seconds)
                if 1 < samples <= 1_000_000:
                    return samples
        return None

    def _default_window(self) -> int:
        self.assume(
            "No window length given: assumed 128 samples per window (about 1 s of motion "
            "at ~100 Hz)."
        )
        return 128

    def _axes(self, masked: str) -> int | None:
        if (m := _AXES.search(masked)) is not None:
            value = _to_int(m.group(1))
            if value and value > 0:
                return value
        if _XYZ.search(masked):
            return 3
        return None

    def _default_axes(self, masked: str) -> int:
        if _MAGNETO.search(masked):
            self.assume("Assumed 9 channels: accelerometer, gyroscope and magnetometer x, y, z.")
            return 9
        if _GYRO.search(masked):
            self.assume("Assumed 6 channels: accelerometer and gyroscope x, y, z.")
            return 6
        self.assume("Assumed 3 channels: accelerometer x, y, z.")
        return 3

    # -- budget ------------------------------------------------------------------------------

    def _budget(self, masked: str, board: Board) -> Budget:
        ram: int | None = None
        flash: int | None = None
        for kind, value in self._stated_limits(masked, board):
            if kind == "ram":
                ram = value if ram is None else min(ram, value)
            else:
                flash = value if flash is None else min(flash, value)
        ram = self._cap("RAM", ram, board.ram_bytes, board)
        flash = self._cap("flash", flash, board.flash_bytes, board)
        return Budget(ram_bytes=ram, flash_bytes=flash)

    def _cap(self, what: str, stated: int | None, limit: int, board: Board) -> int:
        if stated is None:
            return limit
        if stated <= 0:
            self.assume(f"Ignored a {what} limit of zero: using the board's {format_size(limit)}.")
            return limit
        if stated > limit:
            self.assume(
                f"The requested {what} limit ({format_size(stated)}) is more than "
                f"{board.id} has: capped at {format_size(limit)} ({limit} bytes)."
            )
            return limit
        return stated

    def _stated_limits(self, masked: str, board: Board) -> list[tuple[str, int]]:
        limits: list[tuple[str, int]] = []
        bounds = [0, *(m.end() for m in _CLAUSE_SPLIT.finditer(masked)), len(masked)]
        sizes = list(_SIZE.finditer(masked))
        for size in sizes:
            clause_start = max(b for b in bounds if b <= size.start())
            clause_end = min((b for b in bounds if b >= size.end()), default=len(masked))
            clause = masked[clause_start:clause_end]
            offset = size.start() - clause_start
            kind, note = self._resource(clause, offset, offset + len(size.group()))
            relative = re.search(r"%|percent|per\s*cent|half|quarter|third", size.group(), _I)
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
                self.assume("'Memory' in the request is read as RAM.")
            elif note == "model":
                self.assume(
                    f"'{' '.join(clause.split())}' is read as a flash limit on the model "
                    "and firmware."
                )
            limits.append((kind, value))
        return limits

    @staticmethod
    def _resource(clause: str, start: int, end: int) -> tuple[str | None, str | None]:
        """Which memory a size in `clause` refers to: the nearest resource word, if any."""
        flash_words = list(_FLASH_WORD.finditer(clause))
        # "program memory" is flash: blank it before looking for RAM words.
        ram_clause = _mask(clause, [(m.start(), m.end()) for m in flash_words])
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

    def _quantization(self, masked: str) -> Quantization:
        if _FLOAT.search(masked) and not _INT8_EXPLICIT.search(masked):
            return Quantization.FLOAT32
        if _INT8.search(masked):
            return Quantization.INT8
        self.assume(
            "No number format given: int8 quantization, the usual choice on "
            "microcontrollers (4x smaller than float32)."
        )
        return Quantization.INT8

    @staticmethod
    def _name(task: Task, classes: list[str] | None, dataset: Dataset, board: Board) -> str:
        if dataset.kind is DatasetKind.DIGITS:
            subject = "digits"
        elif classes:
            subject = "_".join(classes[:3])
        elif dataset.path:
            subject = Path(dataset.path.replace("\\", "/").rstrip("/")).stem
        else:
            subject = _TASK_SHORT[task]
        slug = _slug(subject)
        if not slug:
            slug = _TASK_SHORT[task]
        return f"{slug[:40]}_{_slug(board.id)}"


def _distance(match: re.Match[str], start: int, end: int) -> int:
    if match.end() <= start:
        return start - match.end()
    if match.start() >= end:
        return match.start() - end
    return 0


def _slug(text: str) -> str:
    ascii_only = text.encode("ascii", "ignore").decode()
    slug = re.sub(r"[^A-Za-z0-9_\-]+", "_", ascii_only).strip("_-").lower()
    return re.sub(r"_{2,}", "_", slug)


def _nothing_usable(request: str) -> PlanError:
    shown = " ".join(request.split())
    shown = shown if len(shown) <= 60 else shown[:57] + "..."
    what = f"'{shown}'" if shown else "an empty request"
    return PlanError(
        f"Nothing to build from {what}: say what to recognise, from which data and on which "
        f'board, e.g. "{EXAMPLE_REQUEST}" or "classify 3 gestures from gestures.csv on a '
        'Pi Pico".'
    )


# The planner's regexes are not all linear on pathological text (a 20,000-digit number took
# 11 s): a request is a sentence or a short paragraph, so longer text is refused up front.
MAX_REQUEST_CHARS = 2_000
MAX_NUMBER_DIGITS = 40
_LONG_NUMBER = re.compile(rf"\d{{{MAX_NUMBER_DIGITS + 1}}}")


def check_request(request: str) -> None:
    """PlanError for text too long (or numbers too large) to be a request, read or not."""
    if len(request) > MAX_REQUEST_CHARS:
        raise PlanError(
            f"The request has {len(request):,} characters; the offline planner reads up to "
            f"{MAX_REQUEST_CHARS:,}: say in a sentence or two what to recognise, from which data "
            "and on which board."
        )
    if _LONG_NUMBER.search(request):
        raise PlanError(
            f"The request holds a number of more than {MAX_NUMBER_DIGITS} digits, which no "
            "size, count or budget needs: rephrase it with the figures you mean."
        )


class OfflinePlanner:
    """Deterministic, rule-based planner; works without a network or an API key."""

    name = "offline"

    def plan(self, request: str, *, board: str | None = None) -> ProjectSpec:
        if not isinstance(request, str):
            raise PlanError("The request must be text.")
        check_request(request)
        try:
            return _Plan(request, board).run()
        except TinyForgeError:
            raise
        except (
            ValueError,
            TypeError,
            IndexError,
            KeyError,
            AttributeError,
            OverflowError,
            RecursionError,
            re.error,
        ) as exc:
            # Callers promise users one clear sentence, never a traceback: a parsing slip on
            # odd input must surface as a PlanError like any other unreadable request.
            raise PlanError(
                f"The offline planner could not read this request ({type(exc).__name__}); "
                f'rephrase it, e.g. "{EXAMPLE_REQUEST}".'
            ) from exc
