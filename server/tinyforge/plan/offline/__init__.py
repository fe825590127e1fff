"""The offline planner: reads a one-sentence request with regular expressions, no network.

It looks for cues rather than whole example sentences, so new phrasings work as long as they use
the usual words: what the data is (images, accelerometer, keywords, anomalies), where it is (a CSV
file or a folder), the board, the class names or count, shapes, memory limits and quantization.
Every default it fills in is written to `ProjectSpec.assumptions` in plain English.

The words are data (lexicon.toml; board names in boards/boards.toml), the grammar is code, one
module per part of the request:

- text.py: number words, masking (what has been understood is blanked before the next step);
- paths.py: file and folder paths, and what a folder holds;
- columns.py: a CSV's header and the label column;
- unknown_boards.py: board names the database does not know;
- tasks.py: which task, by weighted cues;
- inputs.py, classes.py: what the model reads, and what it tells apart;
- shapes.py: the input shape;
- budgets.py: the RAM and flash limits;
- planner.py: the steps in order, and `OfflinePlanner`.
"""

from __future__ import annotations

from tinyforge.plan.offline.planner import (
    DEFAULT_BOARD,
    EXAMPLE_REQUEST,
    MAX_NUMBER_DIGITS,
    MAX_REQUEST_CHARS,
    OfflinePlanner,
    _Plan,
    check_request,
)

__all__ = [
    "DEFAULT_BOARD",
    "EXAMPLE_REQUEST",
    "MAX_NUMBER_DIGITS",
    "MAX_REQUEST_CHARS",
    "OfflinePlanner",
    "_Plan",
    "check_request",
]
