"""Values rendered for C++ source: string literals and comments that no value can break out of.

Labels come from CSV values, folder names and requests. In a string literal every byte that is
not printable ASCII is written as a three-digit octal escape of its UTF-8 byte (octal escapes
end after three digits, unlike `\\x`, which would swallow a following hex digit), so `🍎`,
`naïve`, quotes and backslashes compile with any compiler and print as the user wrote them.
A comment gets the value as a quoted literal on one line: a newline or a trailing backslash
(which would continue a `//` comment onto the next line) cannot end it.
"""

from __future__ import annotations

_SIMPLE = {'"': '\\"', "\\": "\\\\", "\n": "\\n", "\t": "\\t", "\r": "\\r"}


def cpp_string(value: object) -> str:
    """A C++ string literal holding `value`'s UTF-8 bytes exactly."""
    out = []
    for byte in str(value).encode("utf-8"):
        char = chr(byte)
        if char in _SIMPLE:
            out.append(_SIMPLE[char])
        elif 0x20 <= byte < 0x7F and char != "?":  # "?" too: no trigraphs ("??/")
            out.append(char)
        else:
            out.append(f"\\{byte:03o}")
    return '"' + "".join(out) + '"'


def cpp_comment(value: object) -> str:
    """`value` for the inside of a `//` comment: one line, quoted, readable."""
    text = str(value)
    escaped = text.replace("\\", "\\\\").replace('"', '\\"')
    escaped = "".join(c if c.isprintable() else f"\\u{ord(c):04x}" for c in escaped)
    return f'"{escaped}"'
