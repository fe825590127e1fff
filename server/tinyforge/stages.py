"""The stage runner every long command shares: build, ONNX conversion, fit and deploy.

A command is a fixed list of stages. Each stage is announced to whoever listens ("[2/6]
convert"), checked for a cancel before it starts (a cancel between two stages starts no new
one), timed (report.json's `stage_seconds`), and a stage that runs out of its time ends in one
sentence naming the stage and where its limit is set. A command that writes a project runs its
stages inside the project's transaction (transaction.py): all or nothing.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import TypeVar

from tinyforge import jobs
from tinyforge.errors import StageError
from tinyforge.progress import NullProgress, Progress
from tinyforge.train import timeout_sentence
from tinyforge.transaction import BUILD_OUTPUTS, all_or_nothing

T = TypeVar("T")


class Stages:
    """The stages of one run of a command, in order; `seconds` holds how long each took."""

    def __init__(
        self,
        names: Sequence[str],
        *,
        progress: Progress | None = None,
        cancel: threading.Event | None = None,
        limits: Mapping[str, float | None] | None = None,
    ) -> None:
        """`limits`: the stages' timeouts in seconds (the spec's [timeouts], --STAGE-timeout).
        Given, a TimeoutError out of any stage becomes that stage's one sentence; without it,
        the command's stages say so themselves."""
        self.names = tuple(names)
        self.progress: Progress = progress or NullProgress()
        self.cancel = cancel
        self.limits = limits
        self.seconds: dict[str, float] = {}

    @contextmanager
    def stage(self, name: str) -> Iterator[None]:
        """Run the body as stage `name` (one of `names`)."""
        self.progress.stage(name, self.names.index(name) + 1, len(self.names))
        if self.cancel is not None and self.cancel.is_set():
            raise jobs.Cancelled(f"cancelled before {name}")
        start = time.monotonic()
        try:
            yield
        except TimeoutError:  # a child process outlived the stage's limit and was stopped
            if self.limits is None:
                raise
            raise StageError(name, timeout_sentence(name, self.limits.get(name))) from None
        finally:
            self.seconds[name] = round(time.monotonic() - start, 2)

    def run(self, name: str, work: Callable[[], T]) -> T:
        """`work()` as stage `name`; its result."""
        with self.stage(name):
            return work()

    def transaction(
        self, project_dir: Path, outputs: tuple[str, ...] | None = None, *, command: str
    ) -> AbstractContextManager[None]:
        """The project's lock and transaction around the stages: a failure or a cancel leaves
        `outputs` (default: a build's) as they were before (transaction.all_or_nothing)."""
        return all_or_nothing(project_dir, outputs or BUILD_OUTPUTS, command=command)
