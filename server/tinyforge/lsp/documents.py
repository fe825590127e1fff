"""Small helpers shared by the features: paths, ranges, the project a document belongs to."""

from __future__ import annotations

import re
from pathlib import Path

from lsprotocol import types as lsp
from pygls.uris import to_fs_path

from tinyforge.project import ProjectContext, load_context


def doc_path(uri: str) -> Path | None:
    path = to_fs_path(uri)
    return Path(path) if path else None


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


def context_for(server_board: str | None, uri: str) -> ProjectContext:
    path = doc_path(uri)
    if path is None:
        return load_context(Path.cwd(), server_board) if server_board else ProjectContext()
    return load_context(path, server_board)
