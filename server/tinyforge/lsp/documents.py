"""What the features share about documents: paths, ranges, keys in TOML/INI text, and the
project a document belongs to.

A project's context (tinyforge.toml, else platformio.ini, else the board setting) was read
again on every request and every keystroke; `Projects` reads it again only when one of those
files changed (its modification time, size or inode: an atomic rewrite is a new inode).
"""

from __future__ import annotations

import os
import re
import threading
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import unquote

from lsprotocol import types as lsp
from pygls.uris import from_fs_path, to_fs_path

from tinyforge.generate import REPORT_FILE, TRAIN_SCRIPT
from tinyforge.project import PLATFORMIO_INI, ProjectContext, find_project_root, load_context
from tinyforge.spec import SPEC_FILENAME

if TYPE_CHECKING:
    from pygls.lsp.server import LanguageServer
    from pygls.workspace import TextDocument

# (mtime in ns, size, inode) of a file, None when it is not there.
FileStamp = tuple[int, int, int] | None
# A project's root and the stamps of the files its context and figures come from.
ProjectStamp = tuple[Path | None, tuple[FileStamp, ...]]
_CONTEXT_FILES = (SPEC_FILENAME, PLATFORMIO_INI)
# The build's figures a model script's diagnostics use (report.json, if newer than train.py).
_FIGURE_FILES = (REPORT_FILE, TRAIN_SCRIPT)


def doc_path(uri: str) -> Path | None:
    path = to_fs_path(uri)
    return Path(path) if path else None


def file_uri(path: Path) -> str:
    return from_fs_path(str(path)) or path.as_uri()


def open_document(server: LanguageServer, uri: str) -> TextDocument | None:
    """The document the editor has open at `uri`, else None. pygls keys them by the unquoted
    URI: a path with a space comes as %20 and would not be found as sent."""
    document: TextDocument | None = server.workspace.text_documents.get(unquote(uri))
    return document


def open_text(server: LanguageServer, path: Path) -> str | None:
    """The editor's buffer of `path` (unsaved edits included) when it is open."""
    document = open_document(server, file_uri(path))
    return document.source if document is not None else None


def text_of(server: LanguageServer, path: Path) -> str:
    """The editor's buffer of `path` when it is open, else the file ("" when there is none)."""
    text = open_text(server, path)
    if text is not None:
        return text
    try:
        return path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return ""


def line_range(line: int, text_line: str = "", start: int = 0, end: int | None = None) -> lsp.Range:
    stop = len(text_line.rstrip("\r\n")) if end is None else end
    return lsp.Range(
        start=lsp.Position(line=line, character=start), end=lsp.Position(line=line, character=stop)
    )


def find_key_line(lines: list[str], key: str, table: str | None = None) -> int | None:
    """Line of `key = …` (inside `[table]` when given) in TOML/INI-like text."""
    in_table = table is None
    pattern = re.compile(rf"^\s*{re.escape(key)}\s*=")
    for number, line in enumerate(lines):
        # The name holds no bracket: `[^\]]+?` could take the leading ones too, quadratically.
        header = re.match(r"^\s*\[+([^\[\]]+)\]", line)
        if header:
            in_table = table is None or header.group(1).strip() == table
            continue
        if in_table and pattern.match(line):
            return number
    return None


def file_stamp(path: Path) -> FileStamp:
    try:
        stat = os.stat(path)
    except OSError:
        return None
    return stat.st_mtime_ns, stat.st_size, stat.st_ino


class Projects:
    """The project context of each folder, kept while the files it was read from are unchanged.

    Used from the event loop and from the analyses' worker threads: one lock around the map.
    The contexts are shared, so callers treat them as read-only.
    """

    def __init__(self) -> None:
        self._contexts: dict[tuple[Path | None, str | None], tuple[ProjectStamp, ProjectContext]]
        self._contexts = {}
        self._lock = threading.Lock()

    def context(self, uri: str, board: str | None) -> ProjectContext:
        """The project `uri` is in; `board` (the editor's setting) for files outside one."""
        path = doc_path(uri)
        if path is None:  # not a file: only the setting can say which board
            return self.context_of(Path.cwd(), board) if board else ProjectContext()
        return self.context_of(path, board)

    def context_of(self, path: Path, board: str | None) -> ProjectContext:
        # Stamped before reading: a file changed while it is read is read again next time.
        stamp = self.stamp(path, _CONTEXT_FILES)
        key = (stamp[0], board)
        with self._lock:
            kept = self._contexts.get(key)
        if kept is not None and kept[0] == stamp:
            return kept[1]
        context = load_context(path, board)
        with self._lock:
            self._contexts[key] = (stamp, context)
        return context

    def stamp(
        self, path: Path, names: tuple[str, ...] = _CONTEXT_FILES + _FIGURE_FILES
    ) -> ProjectStamp:
        """The project root of `path` and the stamps of its files `names`: equal stamps, equal
        context (and build figures, with the default names)."""
        root = find_project_root(path)
        if root is None:
            return None, ()
        return root, tuple(file_stamp(root / name) for name in names)
