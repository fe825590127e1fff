"""Long work from the editor: a worker thread drives child processes (TensorFlow never loads
in the server), reports `$/progress`, streams its log as window/logMessage, and stops when the
user cancels the progress: the child process tree is killed and the project is restored.
"""

from __future__ import annotations

import asyncio
import threading
import uuid
from collections.abc import Callable
from typing import Any, TypeVar

from lsprotocol import types as lsp

from tinyforge import jobs
from tinyforge.lsp.server import TinyForgeServer

T = TypeVar("T")
# The job: (progress, cancel flag) → its result's fields, in a worker thread.
Work = Callable[["LspProgress", threading.Event], dict[str, Any]]


class LspProgress:
    """The pipeline's Progress, forwarded from the worker thread to the client."""

    def __init__(
        self,
        server: TinyForgeServer,
        token: str,
        loop: asyncio.AbstractEventLoop,
        *,
        enabled: bool = True,
    ) -> None:
        self._server = server
        self._token = token
        self._loop = loop
        # False when the client cannot show $/progress: reports go to its log instead.
        self._enabled = enabled
        self._stage = ""
        self._index = 0
        self._total = 1
        self._last_percent = -1

    def _call(self, fn: Callable[..., None], *args: Any) -> None:
        self._loop.call_soon_threadsafe(fn, *args)

    def _report(self, fraction: float | None, message: str) -> None:
        within = 0.0 if fraction is None else min(max(fraction, 0.0), 1.0)
        percent = int(100 * ((self._index - 1) + within) / max(self._total, 1))
        percent = max(percent, self._last_percent)  # never move the bar backwards
        self._last_percent = percent
        if not self._enabled:
            self.log(f"{self._stage}: {message} ({percent}%)")
            return
        value = lsp.WorkDoneProgressReport(message=f"{self._stage}: {message}", percentage=percent)
        self._call(self._server.work_done_progress.report, self._token, value)

    def stage(self, name: str, index: int, total: int) -> None:
        self._stage, self._index, self._total = name, index, total
        self._report(0.0, f"stage {index}/{total}")

    def update(self, fraction: float | None, message: str) -> None:
        self._report(fraction, message)

    def log(self, line: str) -> None:
        params = lsp.LogMessageParams(type=lsp.MessageType.Log, message=line)
        self._call(self._server.window_log_message, params)


async def run_with_progress(
    server: TinyForgeServer, title: str, work: Callable[[LspProgress, threading.Event], T]
) -> T:
    token = f"tinyforge-{uuid.uuid4()}"
    loop = asyncio.get_running_loop()
    # A client without the capability never answers window/workDoneProgress/create: the job
    # then runs without a progress bar (its reports go to the log; $/cancelRequest still works).
    enabled = client_shows_progress(server)
    if enabled:
        await server.work_done_progress.create_async(token)
        server.work_done_progress.begin(
            token, lsp.WorkDoneProgressBegin(title=title, cancellable=True, percentage=0)
        )
    cancel = threading.Event()
    server.jobs[token] = cancel
    # pygls cancels this future when the client sends window/workDoneProgress/cancel.
    future = server.work_done_progress.tokens.get(token)
    if future is not None:
        future.add_done_callback(lambda f: cancel.set() if f.cancelled() else None)
    progress = LspProgress(server, token, loop, enabled=enabled)
    message = "done"
    try:
        return await asyncio.to_thread(work, progress, cancel)
    except jobs.Cancelled:
        message = "cancelled"
        raise
    except asyncio.CancelledError:
        cancel.set()  # $/cancelRequest: stop the worker too
        message = "cancelled"
        raise
    except Exception as exc:
        message = f"failed: {exc}"
        raise
    finally:
        server.jobs.pop(token, None)
        if enabled:
            server.work_done_progress.end(token, lsp.WorkDoneProgressEnd(message=message))
        else:
            progress.log(f"{title}: {message}")


def client_shows_progress(server: TinyForgeServer) -> bool:
    """Whether the client declared window.workDoneProgress (it may then get create requests)."""
    window = getattr(server.client_capabilities, "window", None)
    return bool(getattr(window, "work_done_progress", False))


async def long_job(server: TinyForgeServer, title: str, work: Work) -> dict[str, Any]:
    """`work` with progress and cancel; then every open document and src/main.cpp analysed
    again (a build rewrites report.json and main.cpp). A cancel is a reply, not an error."""
    from tinyforge.lsp import device
    from tinyforge.lsp.diagnostics import reanalyse

    try:
        result = await run_with_progress(server, title, work)
    except jobs.Cancelled:
        return {"ok": False, "cancelled": True, "error": "cancelled; the project is as before"}
    reanalyse(server)
    device.republish(server)
    return {"ok": True, **result}
