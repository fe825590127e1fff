"""Per-document analyses: one per version, debounced, run off the event loop, superseded.

An editor sends a change per keystroke, and asks for code actions and lenses after each.
Analysing each change on the event loop held every request and every other document's
diagnostics up behind work whose result was already out of date; and every request analysed
the document again (a code-action request twice).

Here each version of a document has one `DocumentAnalysis`, whose parts (the model script's
figures, …) are computed once, on first use, by whichever thread asks first: the debounced
analysis that publishes the diagnostics, or a hover, lens or code action that came before it.
It stays the document's analysis while its version and what else it read (the editor's
settings, the project's files) are unchanged.

The diagnostics are computed in a worker thread, with at most one analysis per document at a
time: a change to an idle document at once (a lone edit gets its diagnostics in milliseconds),
changes that come while one is pending or running a short delay after the last of them (a burst
of keystrokes is analysed once or twice, not per key). A newer version supersedes the pending or
running one, whose result is dropped, never published over the newer version's.

With the client's trace on (`$/setTrace`, or `trace` at initialize: VS Code's
`tinyforge.trace.server`), `$/logTrace` says "new analysis of <uri> v<n>" when a version gets
its analysis, and "analysing <uri> v<n>", then "published" or "superseded", for its
diagnostics. That is how one sees (and the tests count) analyses.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable, Hashable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any, TypeVar

from lsprotocol import types as lsp
from pygls.lsp.server import LanguageServer

from tinyforge.lsp.documents import Projects, doc_path, open_document
from tinyforge.lsp.settings import Settings
from tinyforge.project import ProjectContext

# Long enough to skip the versions of a word being typed, short enough to feel immediate.
DEBOUNCE_SECONDS = 0.2
# A change to an idle document waits this long only: enough for the changes already on their
# way (a burst arrives as messages read back to back) to find it pending and join the
# debounce, far below what anyone notices.
LEADING_SECONDS = 0.001
# Documents analysed at once: enough that one slow document delays no other; more would only
# share the same cores (and the GIL).
WORKERS = 4

T = TypeVar("T")


class DocumentAnalysis:
    """One version of one document, and what has been found about it so far."""

    def __init__(
        self, uri: str, version: int | None, text: str, settings: Settings, stamp: Hashable
    ) -> None:
        self.uri = uri
        self.version = version
        self.text = text
        self.path: Path | None = doc_path(uri)
        self.name = PurePosixPath(uri).name
        self.settings = settings  # the editor's settings when the analysis began (a copy)
        # What the parts depend on besides the text (settings, the project's files): equal
        # stamps, equal parts.
        self.stamp = stamp
        self._parts: dict[str, Any] = {}
        self._locks: dict[str, threading.Lock] = {}
        self._guard = threading.Lock()

    def part(self, name: str, compute: Callable[[], T]) -> T:
        """The part `name`, computed by `compute` the first time it is asked for. A second
        thread asking meanwhile waits for that result rather than computing it again."""
        with self._guard:
            lock = self._locks.setdefault(name, threading.Lock())
        with lock:
            if name not in self._parts:
                self._parts[name] = compute()
            value: T = self._parts[name]
            return value

    def lines(self) -> list[str]:
        return self.part("lines", lambda: self.text.splitlines() or [""])

    def context(self, projects: Projects) -> ProjectContext:
        """The project the document is in, with the board setting of the analysis."""
        return self.part("context", lambda: projects.context(self.uri, self.settings.board))


# uri → the settings and what else its analysis depends on besides its text
def _on_event_loop() -> bool:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True


Stamp = Callable[[str], tuple[Settings, Hashable]]
Analyse = Callable[[DocumentAnalysis], list[lsp.Diagnostic]]  # in a worker thread
Publish = Callable[[DocumentAnalysis, list[lsp.Diagnostic]], None]


@dataclass
class _Slot:
    """One document's state: each request bumps `generation`; only the newest is published."""

    generation: int = 0
    timer: asyncio.TimerHandle | None = None
    running: bool = False
    rerun: bool = False  # a newer request came due while one was running
    analysis: DocumentAnalysis | None = field(default=None, repr=False)


class Analyses:
    """The open documents' analyses: `current` for requests, `schedule` for diagnostics.

    Every method runs on the event loop's thread (LSP handlers do), so the slots need no lock;
    `analyse` runs in a worker thread, on an analysis of one version (and `current` may be
    asked from one, which then keeps nothing).
    """

    def __init__(
        self,
        server: LanguageServer,
        analyse: Analyse,
        publish: Publish,
        stamp: Stamp,
        delay: float = DEBOUNCE_SECONDS,
    ) -> None:
        self._server = server
        self._analyse = analyse
        self._publish = publish
        self._stamp = stamp
        self.delay = delay
        self._slots: dict[str, _Slot] = {}
        self._pool = ThreadPoolExecutor(WORKERS, thread_name_prefix="tinyforge-analysis")

    def current(self, uri: str, *, open_only: bool = True) -> DocumentAnalysis | None:
        """The analysis of the open document's current version. A document not open: None,
        or with `open_only` False an analysis of the file on disk, kept nowhere."""
        document = open_document(self._server, uri)
        if document is None:
            if open_only:
                return None
            on_disk = self._server.workspace.get_text_document(uri)  # "" when there is none
            return DocumentAnalysis(uri, None, on_disk.source, *self._stamp(uri))
        slot = self._slots.get(uri)
        settings, stamp = self._stamp(uri)
        kept = slot.analysis if slot is not None else None
        if (
            kept is None
            or kept.version != document.version
            or kept.stamp != stamp
            or kept.text != document.source
        ):
            kept = DocumentAnalysis(uri, document.version, document.source, settings, stamp)
            if _on_event_loop():  # a worker thread (the inspect command) only reads the slots
                self._slots.setdefault(uri, _Slot()).analysis = kept
                self._trace(f"new analysis of {uri} v{document.version}")
        return kept

    def schedule(self, uri: str, delay: float | None = None) -> None:
        """Analyse `uri` after `delay`, superseding earlier requests. A change (`delay` None)
        to a document with no analysis pending or running is analysed at once; one that
        comes while another waits or runs waits for a pause in the changes (the debounce)."""
        slot = self._slots.setdefault(uri, _Slot())
        slot.generation += 1
        busy = slot.timer is not None or slot.running
        if slot.timer is not None:
            slot.timer.cancel()
        wait = (self.delay if busy else LEADING_SECONDS) if delay is None else delay
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
        analysis = self.current(uri)
        if analysis is None:
            self._slots.pop(uri, None)
            return
        slot.running = True
        generation = slot.generation
        self._trace(f"analysing {uri} v{analysis.version}")
        started = time.perf_counter()
        loop = asyncio.get_running_loop()
        future = loop.run_in_executor(self._pool, self._analyse, analysis)
        future.add_done_callback(
            lambda done: self._finished(slot, generation, analysis, started, done)
        )

    def _finished(
        self,
        slot: _Slot,
        generation: int,
        analysis: DocumentAnalysis,
        started: float,
        done: asyncio.Future[list[lsp.Diagnostic]],
    ) -> None:
        slot.running = False
        uri, version = analysis.uri, analysis.version
        took = f"{1000 * (time.perf_counter() - started):.0f} ms"
        newest = self._slots.get(uri) is slot and slot.generation == generation
        if done.cancelled():
            return  # the pool is gone: the server is shutting down
        if done.exception() is not None:
            # `analyse` turns a check's failure into a diagnostic: this is a bug in it.
            logging.getLogger(__name__).error("analysing %s failed", uri, exc_info=done.exception())
        elif newest:
            self._publish(analysis, done.result())
            self._trace(f"analysed {uri} v{version} in {took}: published")
        else:
            self._trace(f"analysed {uri} v{version} in {took}: superseded, not published")
        if slot.rerun and self._slots.get(uri) is slot:
            slot.rerun = False
            self._start(uri, slot)

    def _trace(self, message: str) -> None:
        if self._server.protocol.trace != lsp.TraceValue.Off:
            self._server.log_trace(lsp.LogTraceParams(message=message))
