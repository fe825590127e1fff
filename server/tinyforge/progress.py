"""How pipeline stages report progress, whoever is listening (terminal, editor, tests)."""

from __future__ import annotations

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
