"""Regenerated sections inside files the user also edits (src/main.cpp).

A section runs from a `// >>> tinyforge:begin NAME` line to its `// <<< tinyforge:end NAME`
line. TinyForge rewrites what is between the markers on every build and keeps everything else
as the user left it, so the model's figures (arena size, labels, operators) stay right while the
user's own code around them survives.
"""

from __future__ import annotations

import re

BEGIN = "// >>> tinyforge:begin {name}"
END = "// <<< tinyforge:end {name}"
_MARKER_RE = re.compile(
    r"^[ \t]*// (?P<kind>>>> tinyforge:begin|<<< tinyforge:end) (?P<name>[\w-]+)"
)


class SectionError(ValueError):
    """The markers are missing, repeated, nested or out of order."""


def find_sections(text: str) -> dict[str, tuple[int, int]]:
    """Section name → (index of its begin line, index of its end line), in line numbers."""
    lines = text.splitlines()
    sections: dict[str, tuple[int, int]] = {}
    open_name: str | None = None
    open_at = -1
    for number, line in enumerate(lines):
        m = _MARKER_RE.match(line)
        if not m:
            continue
        name = m["name"]
        if m["kind"].endswith("begin"):
            if open_name is not None or name in sections:
                raise SectionError(f"section {name} begins twice or inside {open_name}")
            open_name, open_at = name, number
        else:
            if open_name != name:
                raise SectionError(f"section {name} ends without its begin marker")
            sections[name] = (open_at, number)
            open_name = None
    if open_name is not None:
        raise SectionError(f"section {open_name} has no end marker")
    return sections


def extract(text: str, name: str) -> str:
    """The lines of one section, markers included (for compiling or inspecting it alone)."""
    start, end = find_sections(text)[name]
    return "\n".join(text.splitlines()[start : end + 1]) + "\n"


def merge(user_text: str, generated: str) -> str | None:
    """The user's file with every section replaced by the generated one.

    None when the two files do not have the same sections (the user removed or renamed a
    marker): then TinyForge cannot tell its lines from the user's and must not guess.
    """
    try:
        mine = find_sections(user_text)
        new = find_sections(generated)
    except SectionError:
        return None
    if not new or set(mine) != set(new):
        return None
    user_lines = user_text.splitlines()
    new_lines = generated.splitlines()
    out: list[str] = []
    cursor = 0
    for name, (start, end) in sorted(mine.items(), key=lambda item: item[1][0]):
        out += user_lines[cursor:start]
        g_start, g_end = new[name]
        out += new_lines[g_start : g_end + 1]
        cursor = end + 1
    out += user_lines[cursor:]
    trailing = "\n" if user_text.endswith("\n") or not user_text else ""
    return "\n".join(out) + trailing
