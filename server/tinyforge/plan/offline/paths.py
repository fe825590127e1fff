"""Where the data is: file and folder paths in the request, and what a named folder holds.

Paths are found before anything else reads the request, and masked, so "./data/cats" never
becomes a class name. A path is taken when it is quoted, ends in .csv, has the look of a path
(./x, C:\\x, ~/x, x/) or a folder word names it ("the folder photos", "data in speech_cmds").
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

from tinyforge.datasets import IMAGE_SUFFIXES
from tinyforge.plan.offline.lexicon import lexicon
from tinyforge.plan.offline.text import IGNORECASE, rx

_LEX = lexicon()

_QUOTED = rx(r"(?<![\w])(['\"`‘“])([^'\"`‘’“”\n]{1,300}?)(['\"`’”])(?![\w])")
_CSV_BARE = rx(r"(?<![\w/\\.~-])((?:[a-z]:[\\/])?[\w.~\-/\\]*[\w\-]\.csv)(?![\w])")
_PATH_BARE = rx(
    r"(?<![\w/\\.~:-])((?:[a-z]:[\\/]|~[\\/]|\.{1,2}[\\/]|[\\/])?[\w.~\-]+(?:[\\/][\w.~\-]+)*[\\/]?)"
)
_FOLDER_CONTEXT = rx(
    r"\b(?:in|from|folder|directory|dir|path|under|inside|located|stored|within)\s+"
    r"(?:the\s+|my\s+|a\s+|this\s+)?(?:(?:image|images|photo|photos|data|dataset|audio|sound)\s+)?"
    r"(?:folder\s+|directory\s+|dir\s+)?(?:called\s+|named\s+|at\s+)?$"
)
_FOLDER_NAMED = rx(
    r"\b(?:folder|directory|dir)\s+(?:called\s+|named\s+)?([A-Za-z0-9_~.][\w.~\-]*[\\/]?)(?![\w/])"
)
_DATA_IN = rx(
    r"\b(?:data|dataset|clips|images|photos|pictures|recordings|samples|files|audio|wavs?)\s+"
    r"(?:are\s+|is\s+|live\s+|lives\s+|sit\s+|sits\s+)?(?:in|under|inside|at)\s+"
    r"([A-Za-z_][\w.~\-]*)(?![\w/\\])"
)
_NOT_FOLDER_WORDS = _LEX.words("paths.not_folder")
# Images: the files a folder dataset is read from (datasets.py). Audio: any sound file hints
# keyword spotting, though only WAV clips are read.
AUDIO_EXTENSIONS = _LEX.words("paths.audio_extensions")


@dataclass
class PathRef:
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
_CLASS_NOUN_AFTER = rx(
    r"^\s*(?:keywords?|words?|commands?|classes|labels|categories|gestures|motions|states)\b"
)


_EXPLICIT_PATH = rx(r"(?:[a-z]:[\\/]|~[\\/]|\.{1,2}[\\/]|[\\/])")


def _accept_folder(path: str, text: str, start: int, end: int) -> bool:
    """Is a slash-bearing token a folder path rather than a list like "yes/no"?"""
    if _EXPLICIT_PATH.match(path) or path.endswith(("/", "\\")):
        return True
    if existing_path(path) is not None:
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
        re.search(r"\b(?:folder|directory|dir)\s+(?:called\s+|named\s+)?$", before, IGNORECASE)
        or re.match(r"\s*(?:folder|directory|dir)\b", after, IGNORECASE)
    )


def find_paths(text: str) -> list[PathRef]:
    refs: list[PathRef] = []
    taken: list[tuple[int, int]] = []

    def free(start: int, end: int) -> bool:
        return all(end <= s or start >= e for s, e in taken)

    def add(path: str, start: int, end: int) -> None:
        refs.append(PathRef(path, start, end, path.lower().endswith(".csv")))
        taken.append((start, end))

    for m in _QUOTED.finditer(text):
        inner = m.group(2).strip()
        if not inner or re.match(r"https?:|www\.", inner, IGNORECASE):
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
        if "://" in text[start : end + 3] or re.match(r"www\.", path, IGNORECASE):
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
        looks = re.search(r"[_\-\d]", name) is not None or existing_path(name) is not None
        if name and looks and name.lower() not in _NOT_FOLDER_WORDS and free(start, end):
            add(name, start, end)
    refs.sort(key=lambda r: r.start)
    return refs


def existing_path(path: str) -> Path | None:
    try:
        candidate = Path(os.path.expanduser(path))
        return candidate if candidate.exists() else None
    except (OSError, ValueError):  # embedded NULs, over-long names: treat as "not there yet"
        return None


def subfolders(folder: Path) -> list[str]:
    try:
        return sorted(p.name for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))
    except OSError:
        return []


def folder_content_kind(folder: Path, limit: int = 300) -> str | None:
    """'image', 'audio' or 'csv' by the files in the folder, so a bare folder hints the task."""
    counts = {"image": 0, "audio": 0, "csv": 0}
    seen = 0
    try:
        for _root, _dirs, files in os.walk(folder):
            for name in files:
                ext = os.path.splitext(name)[1].lower()
                if ext in IMAGE_SUFFIXES:
                    counts["image"] += 1
                elif ext in AUDIO_EXTENSIONS:
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
