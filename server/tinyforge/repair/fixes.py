"""A proposed fix: whole-file edits, shown as a unified diff, applied only when accepted."""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tinyforge.errors import TinyForgeError


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

    def line_edits(self) -> list[tuple[tuple[int, int], tuple[int, int], str]]:
        """Minimal (start, end, new text) replacements, 0-based (line, character) positions:
        what an editor's TextEdits need (only the changed lines, so the undo is small)."""
        old = self.before.splitlines(keepends=True)
        new = self.after.splitlines(keepends=True)
        edits = []
        matcher = difflib.SequenceMatcher(a=old, b=new, autojunk=False)
        for tag, i1, i2, j1, j2 in matcher.get_opcodes():
            if tag == "equal":
                continue
            edits.append((_position(old, i1), _position(old, i2), "".join(new[j1:j2])))
        return edits


def _position(lines: list[str], index: int) -> tuple[int, int]:
    """Where line `index` starts; past the last line, the end of the text."""
    if index < len(lines):
        return index, 0
    if not lines:
        return 0, 0
    last = lines[-1]
    if last.endswith(("\n", "\r")):
        return len(lines), 0
    return len(lines) - 1, len(last)


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
