"""How pipeline stages report progress, whoever is listening (terminal, editor, tests)."""

from __future__ import annotations

import re
from typing import Protocol


class Progress(Protocol):
    def stage(self, name: str, index: int, total: int) -> None:
        """A new stage begins (index counts from 1)."""

    def update(self, fraction: float | None, message: str) -> None:
        """Within the current stage; fraction in 0..1 when known."""

    def log(self, line: str) -> None:
        """A raw line of output from a child process."""


class NullProgress:
    def stage(self, name: str, index: int, total: int) -> None:
        pass

    def update(self, fraction: float | None, message: str) -> None:
        pass

    def log(self, line: str) -> None:
        pass


# What libraries print in a child process (Python warnings and the source line under them,
# absl/glog lines, TensorFlow's SavedModel summary, converter internals): for the log and -v,
# never for the one-line progress status, where it would hide the stage's own message.
_LIBRARY_NOISE = re.compile(
    r"^\s"  # continuation lines: "  warnings.warn(", "  args_0 (...)", tracebacks
    r"|^\S+\.py:\d+: \w*Warning\b"
    r"|^[IWEF]\d{4} \d\d:\d\d:\d\d"
    r"|^(?:WARNING|INFO|ERROR|DEBUG)(?::|\s+-)"
    r"|^(?:Saved artifact at|Output Type:|Captures:|\* Endpoint)"
    r"|^fully_quantize:"
    r"|^\w*Warning: "
)


def is_library_noise(line: str) -> bool:
    """Is `line` a library's chatter rather than the stage's own progress message?"""
    return not line.strip() or _LIBRARY_NOISE.search(line) is not None
