"""Values rendered for generated Python files (train.py) and PlatformIO's INI: nothing breaks out.

A request, a label, a dataset path or a column name reaches train.py as data, never as code:
- `py_literal` writes a Python literal (strings, numbers, lists, tuples, None): quotes,
  backslashes and control characters escaped, "🍎" kept as one character (never a surrogate
  pair, as `json.dumps` would write it).
- `py_docstring` writes text for the inside of a triple-quoted docstring on one line: quotes,
  backslashes and control characters become escapes, so the docstring holds the text as written
  and cannot end early (`C:\\Users\\nick` stays a path, not a `\\U` escape).
- `py_comment` writes text for a `#` comment on one line.
- `ini_value` refuses a value that would start a new line or a comment in platformio.ini.
"""

from __future__ import annotations

import math

from tinyforge.errors import TinyForgeError

_LITERAL_TYPES = (str, int, float, bool, type(None))


def py_literal(value: object) -> str:
    """A Python literal that evaluates to `value` (str, int, float, bool, None, list, tuple);
    strings in double quotes, as the rest of train.py writes them."""
    if isinstance(value, list):
        return "[" + ", ".join(py_literal(v) for v in value) + "]"
    if isinstance(value, tuple):
        items = [py_literal(v) for v in value]
        return "(" + ", ".join(items) + ("," if len(items) == 1 else "") + ")"
    if isinstance(value, str):
        return '"' + py_docstring(value) + '"'
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError(f"{value!r} has no Python literal")
    if not isinstance(value, _LITERAL_TYPES):
        raise TypeError(f"{type(value).__name__} is not rendered as a Python literal")
    return repr(value)


def _escape_char(char: str) -> str:
    if char == "\\":
        return "\\\\"
    if char == '"':
        return '\\"'
    if char.isprintable() or char == " ":
        return char
    code = ord(char)
    if code <= 0xFF:
        return f"\\x{code:02x}"
    if code <= 0xFFFF:
        return f"\\u{code:04x}"
    return f"\\U{code:08x}"


def py_docstring(value: object) -> str:
    """`value` for the inside of a `\"\"\"` docstring: one line, and the docstring holds it."""
    return "".join(_escape_char(c) for c in str(value))


def py_comment(value: object) -> str:
    """`value` for the inside of a `#` comment: one line, control characters escaped."""
    return "".join(c if c.isprintable() or c == " " else f"\\u{ord(c):04x}" for c in str(value))


def ini_value(value: object) -> str:
    """`value` for platformio.ini: one line that no `;`/`#` turns into a comment."""
    text = str(value)
    if any(c in text for c in "\r\n;#") or not text.isprintable():
        raise TinyForgeError(f"The value {text!r} cannot be written to platformio.ini.")
    return text
