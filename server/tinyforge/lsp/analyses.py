"""Per-document analyses: debounced, run off the event loop, superseded by newer versions.

An editor sends a change per keystroke. Analysing each one on the event loop held every request
and every other document's diagnostics up behind work whose result was already out of date.
Here a document is analysed a short delay after its last change, in a worker thread, with at
most one analysis per document at a time; a newer version supersedes the pending or running
one, whose result is dropped, never published over the newer version's.

With the client's trace on (`$/setTrace`, or `trace` at initialize: VS Code's
`tinyforge.trace.server`), each analysis is traced with `$/logTrace`: "analysing <uri> v<n>",
then "published" or "superseded". That is how one sees (and the tests count) analyses.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from lsprotocol import types as lsp
from pygls.lsp.server import LanguageServer

# Long enough to skip the versions of a word being typed, short enough to feel immediate.
DEBOUNCE_SECONDS = 0.2
# Documents analysed at once: enough that one slow document delays no other; more would only
# share the same cores (and the GIL).
WORKERS = 4

Analyse = Callable[[str, str], list[lsp.Diagnostic]]  # (uri, text), in a worker thread
Publish = Callable[[str, int | None, list[lsp.Diagnostic]], None]  # (uri, version, found)


@dataclass
class _Slot:
    """One document's state: each request bumps `generation`; only the newest is published."""

    generation: int = 0
    timer: asyncio.TimerHandle | None = None
    running: bool = False
    rerun: bool = False  # a newer request came due while one was running


class Analyses:
    """Schedules `analyse` per document and hands the newest result to `publish`.

    Every method runs on the event loop's thread (LSP handlers do), so the slots need no lock;
    only `analyse` runs in a worker thread, on a snapshot of the document's text.
    """

    def __init__(
        self,
        server: LanguageServer,
        analyse: Analyse,
        publish: Publish,
        delay: float = DEBOUNCE_SECONDS,
    ) -> None:
        self._server = server
        self._analyse = analyse
        self._publish = publish
        self.delay = delay
        self._slots: dict[str, _Slot] = {}
        self._pool = ThreadPoolExecutor(WORKERS, thread_name_prefix="tinyforge-analysis")

    def schedule(self, uri: str, delay: float | None = None) -> None:
        """Analyse `uri` after `delay` (the debounce when None), superseding earlier requests."""
        slot = self._slots.setdefault(uri, _Slot())
        slot.generation += 1
        if slot.timer is not None:
            slot.timer.cancel()
        wait = self.delay if delay is None else delay
        slot.timer = asyncio.get_running_loop().call_later(wait, self._start, uri, slot)

    def forget(self, uri: str) -> None:
        """A closed document: nothing pending runs, and a running analysis is not published."""
        slot = self._slots.pop(uri, None)
        if slot is not None and slot.timer is not None:
            slot.timer.cancel()

    def _start(self, uri: str, slot: _Slot) -> None:
        slot.timer = None
        if self._slots.get(uri) is not slot:
            return
        if slot.running:
            slot.rerun = True  # the running one is stale already: start when it ends
            return
        document = self._server.workspace.text_documents.get(uri)
        if document is None:
            self._slots.pop(uri, None)
            return
        slot.running = True
        generation, version = slot.generation, document.version
        self._trace(f"analysing {uri} v{version}")
        started = time.perf_counter()
        loop = asyncio.get_running_loop()
        future = loop.run_in_executor(self._pool, self._analyse, uri, document.source)
        future.add_done_callback(
            lambda done: self._finished(uri, slot, generation, version, started, done)
        )

    def _finished(
        self,
        uri: str,
        slot: _Slot,
        generation: int,
        version: int | None,
        started: float,
        done: asyncio.Future[list[lsp.Diagnostic]],
    ) -> None:
        slot.running = False
        took = f"{1000 * (time.perf_counter() - started):.0f} ms"
        newest = self._slots.get(uri) is slot and slot.generation == generation
        if done.cancelled():
            return  # the pool is gone: the server is shutting down
        if done.exception() is not None:
            # `analyse` turns a check's failure into a diagnostic: this is a bug in it.
            logging.getLogger(__name__).error("analysing %s failed", uri, exc_info=done.exception())
        elif newest:
            self._publish(uri, version, done.result())
            self._trace(f"analysed {uri} v{version} in {took}: published")
        else:
            self._trace(f"analysed {uri} v{version} in {took}: superseded, not published")
        if slot.rerun and self._slots.get(uri) is slot:
            slot.rerun = False
            self._start(uri, slot)

    def _trace(self, message: str) -> None:
        if self._server.protocol.trace != lsp.TraceValue.Off:
            self._server.log_trace(lsp.LogTraceParams(message=message))
