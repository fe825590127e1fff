"""What a CSV file holds: its header and first rows, and which column is the label.

The label column is what the request names ("label column state", "predict the 'mood'
column"), else a guess from the file's header, said in an assumption.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from pathlib import Path

from tinyforge.plan.offline.lexicon import lexicon
from tinyforge.plan.offline.text import rx

_LEX = lexicon()


@dataclass
class CsvHead:
    header: list[str]
    rows: list[list[str]]


def read_csv_head(path: Path, max_rows: int = 200) -> CsvHead | None:
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
    return CsvHead(header, rows[1 : max_rows + 1])


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


# CSV column names that hold the label, in order of preference.
LABEL_NAMES = _LEX.ordered("labels.column_names")


def guess_label_column(head: CsvHead) -> tuple[str, str]:
    """(column, why) for a CSV whose label column the request did not name."""
    lowered = [h.lower() for h in head.header]
    for name in LABEL_NAMES:
        if name in lowered:
            column = head.header[lowered.index(name)]
            return column, f"its name says so ('{column}')"
    for index in range(len(head.header) - 1, -1, -1):
        values = [r[index].strip() for r in head.rows if index < len(r) and r[index].strip()]
        if values and not all(_is_number(v) for v in values):
            return head.header[index], "it is the last column holding text rather than numbers"
    return head.header[-1], "it is the last column"


# Label column named in the request

_VAL = (
    r"(?:'(?P<q1>[^'\n]{1,80})'|\"(?P<q2>[^\"\n]{1,80})\"|`(?P<q3>[^`\n]{1,80})`"
    r"|‘(?P<q4>[^’\n]{1,80})’|“(?P<q5>[^”\n]{1,80})”|(?P<bare>[A-Za-z_][\w\-.]*))"
)
_LABEL_PATTERNS = [
    rx(
        r"\b(?:label|labels|target|class|category|y|output)\s*[-_]?\s*"
        r"(?:column|col|field|variable)\s*(?:is\s+|=\s*|:\s*|named\s+|called\s+|of\s+)?"
        r"(?:named\s+|called\s+)?" + _VAL
    ),
    rx(
        r"\b(?:labels?|targets?|classes|categories)\s+(?:are\s+|is\s+|come\s+|live\s+|sit\s+)?"
        r"(?:in|from)\s+(?:the\s+)?(?:column|col|field)\s*(?:named\s+|called\s+)?" + _VAL
    ),
    rx(r"\b(?:label|target|y)\s*[=:]\s*" + _VAL),
    rx(
        r"\b(?:column|col|field)\s+" + _VAL + r"\s+(?:is|as|holds|has|contains|gives|with)\s+"
        r"(?:the\s+)?(?:labels?|targets?|class(?:es)?|categor(?:y|ies))\b"
    ),
    rx(
        r"\b(?:predict|predicting|classify\s+by|classified\s+by)\s+(?:the\s+)?"
        + _VAL
        + r"\s+(?:column|field)\b"
    ),
    rx(
        r"\b(?:the\s+)?" + _VAL + r"\s+(?:column|field)\s+(?:as|is|holds|has|contains)\s+"
        r"(?:the\s+)?(?:labels?|targets?|class(?:es)?)\b"
    ),
    rx(r"\blabell?ed\s+(?:by|in|with|from)\s+(?:the\s+)?(?:column\s+)?" + _VAL),
    rx(
        r"\b(?:use|using|with)\s+(?:the\s+)?(?:column\s+)?" + _VAL + r"\s+as\s+(?:the\s+)?"
        r"(?:labels?|targets?|class)\b"
    ),
]
_LABEL_STOP = _LEX.words("labels.stop")


def find_label_column(text: str) -> tuple[str, tuple[int, int]] | None:
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
