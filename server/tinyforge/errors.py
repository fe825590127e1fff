"""User-facing errors: each carries one clear sentence, never a traceback."""

from __future__ import annotations


class TinyForgeError(Exception):
    """An error whose message is meant for the user as-is."""


class UnknownBoardError(TinyForgeError):
    def __init__(self, name: str, suggestions: list[str]) -> None:
        self.name = name
        self.suggestions = suggestions
        hint = f" Did you mean: {', '.join(suggestions)}?" if suggestions else ""
        super().__init__(
            f"Unknown board '{name}'.{hint} Run `tinyforge boards` to list supported boards."
        )


class PlanError(TinyForgeError):
    """The planner could not turn a request into a spec."""


class DatasetError(TinyForgeError):
    """The dataset is missing, unreadable or unusable."""


class ModelFileError(TinyForgeError):
    """A model file is missing, corrupt or of an unsupported kind."""


class StageError(TinyForgeError):
    """A pipeline stage (train, convert, measure, build) failed."""

    def __init__(self, stage: str, message: str, log_tail: str = "") -> None:
        self.stage = stage
        self.log_tail = log_tail
        super().__init__(message)
