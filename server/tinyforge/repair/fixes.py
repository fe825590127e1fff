"""A proposed fix: whole-file edits, shown as a unified diff, applied only when accepted."""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tinyforge.errors import TinyForgeError

# LSP's line breaks (\r\n, \r, \n): str.splitlines also breaks on \f, \v and more, which would
# shift every position after one.
_LINE = re.compile(r"[^\r\n]*(?:\r\n|\r|\n)|[^\r\n]+$")

Position = tuple[int, int]  # 0-based line, and character in UTF-16 code units (LSP's default)


def split_lines(text: str) -> list[str]:
    """The lines of `text` with their line breaks, as an editor counts them."""
    return _LINE.findall(text)


@dataclass
class FileEdit:
    path: str  # relative to the project folder, POSIX style
    before: str
    after: str

    def diff(self) -> str:
        lines = difflib.unified_diff(
            self.before.splitlines(keepends=True),
            self.after.splitlines(keepends=True),
            fromfile=f"a/{self.path}",
            tofile=f"b/{self.path}",
        )
        # A last line without a newline would run into the next hunk header.
        return "".join(line if line.endswith("\n") else line + "\n" for line in lines)

    def line_edits(self) -> list[tuple[Position, Position, str]]:
        """Minimal (start, end, new text) replacements: what an editor's TextEdits need (only
        the changed lines, so the undo is small). A line changed in place is replaced without
        its line break, so the edit stays on that line."""
        old, new = split_lines(self.before), split_lines(self.after)
        edits = []
        matcher = difflib.SequenceMatcher(a=old, b=new, autojunk=False)
        for tag, i1, i2, j1, j2 in matcher.get_opcodes():
            if tag == "replace" and i2 - i1 == j2 - j1:
                edits += _in_place(old, new, i1, j1, i2 - i1)
            elif tag != "equal":
                edits.append((_position(old, i1), _position(old, i2), "".join(new[j1:j2])))
        return edits


def _in_place(
    old: list[str], new: list[str], i: int, j: int, count: int
) -> list[tuple[Position, Position, str]]:
    edits = []
    for k in range(count):
        before, after = old[i + k], new[j + k]
        body, end = _body(before)
        new_body, new_end = _body(after)
        if end != new_end:  # the line break itself changed
            edits.append(((i + k, 0), _position(old, i + k + 1), after))
        elif body != new_body:
            edits.append(((i + k, 0), (i + k, _utf16(body)), new_body))
    return edits


def _body(line: str) -> tuple[str, str]:
    """A line's text and its line break."""
    text = line.rstrip("\r\n")
    return text, line[len(text) :]


def _utf16(text: str) -> int:
    return len(text.encode("utf-16-le")) // 2


def end_of(text: str) -> Position:
    """Where `text` ends, as an editor counts lines and characters."""
    lines = split_lines(text)
    return _position(lines, len(lines))


def _position(lines: list[str], index: int) -> Position:
    """Where line `index` starts; past the last line, the end of the text."""
    if index < len(lines):
        return index, 0
    if not lines:
        return 0, 0
    last = lines[-1]
    if last.endswith(("\n", "\r")):
        return len(lines), 0
    return len(lines) - 1, _utf16(last)


@dataclass
class Fix:
    rule: str  # the offline rule's id, or "claude"
    title: str
    explanation: str
    edits: list[FileEdit] = field(default_factory=list)

    @property
    def applicable(self) -> bool:
        """False for advice only: the rule found the cause but no edit can cure it."""
        return bool(self.edits)

    def diff(self) -> str:
        return "".join(edit.diff() for edit in self.edits)

    def to_dict(self) -> dict[str, Any]:
        return {
            "rule": self.rule,
            "title": self.title,
            "explanation": self.explanation,
            "diff": self.diff(),
            "files": [edit.path for edit in self.edits],
        }


def apply_fix(project_dir: Path, fix: Fix) -> list[str]:
    """Write the fix's files; refuses when a file changed since the fix was proposed."""
    from tinyforge.repair.failure import clear_failure

    project_dir = Path(project_dir)
    for edit in fix.edits:
        path = project_dir / edit.path
        current = path.read_text(encoding="utf-8") if path.is_file() else ""
        if current != edit.before:
            raise TinyForgeError(
                f"{edit.path} changed since the fix was proposed: run `tinyforge repair` again."
            )
    for edit in fix.edits:
        path = project_dir / edit.path
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(edit.after, encoding="utf-8")
    # The recorded failure describes the project before the fix; the next build says anew.
    clear_failure(project_dir)
    return [edit.path for edit in fix.edits]
