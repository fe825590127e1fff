"""Diagnostics: what each document's own checks find, and what the project's runs found in its
files, held in one store on the server and published from one place.

A document's checks are the features' (lsp/server.py's `Features.checks`), run by its analysis
in a worker thread (lsp/analyses.py). Other sources put their findings in the store too: a
PlatformIO build its compiler errors and overflows (per project, lsp/firmware.py), the
emulated board what it measured in src/main.cpp (lsp/device.py). A document's diagnostics are
the union of its sources, its own checks first.

Whatever goes wrong inside a check becomes a diagnostic, never a dead server.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from lsprotocol import types as lsp

from tinyforge.lsp.documents import line_range
from tinyforge.memory.keras_source import MAX_SOURCE_CHARS

if TYPE_CHECKING:
    from pygls.lsp.server import LanguageServer

    from tinyforge.lsp.analyses import DocumentAnalysis
    from tinyforge.lsp.server import TinyForgeServer

SOURCE = "tinyforge"
CHECKS = "checks"  # the source of a document's own checks


class DiagnosticsStore:
    """Diagnostics per (source, uri): set by each source, published as one list per document.

    Used on the event loop's thread only (analyses hand their results back to it).
    """

    def __init__(self, server: LanguageServer) -> None:
        self._server = server
        self._found: dict[str, dict[str, list[lsp.Diagnostic]]] = {}  # uri → source → found
        self._versions: dict[str, int | None] = {}  # the version the checks were made on

    def put(
        self, source: str, uri: str, found: list[lsp.Diagnostic], version: int | None = None
    ) -> None:
        """`source`'s diagnostics of `uri` (an empty list is kept: the source spoke)."""
        self._found.setdefault(uri, {})[source] = found
        if source == CHECKS:
            self._versions[uri] = version

    def drop(self, source: str, uri: str) -> None:
        self._found.get(uri, {}).pop(source, None)
        if source == CHECKS:
            self._versions.pop(uri, None)

    def uris(self, source: str) -> set[str]:
        """The documents `source` has set diagnostics on."""
        return {uri for uri, sources in self._found.items() if source in sources}

    def publish(self, uri: str) -> None:
        sources = self._found.get(uri, {})
        found = list(sources.get(CHECKS, []))
        for source, diagnostics in sources.items():
            if source != CHECKS:
                found += diagnostics
        self._server.text_document_publish_diagnostics(
            lsp.PublishDiagnosticsParams(
                uri=uri, diagnostics=found, version=self._versions.get(uri)
            )
        )


def run_checks(server: TinyForgeServer, analysis: DocumentAnalysis) -> list[lsp.Diagnostic]:
    """The document's own checks (in a worker thread, on one version of its text)."""
    if len(analysis.text) > MAX_SOURCE_CHARS:
        # One note instead of analyses that would hold every other request up.
        message = (
            f"TinyForge skips this file: {len(analysis.text):,} characters, over the "
            f"{MAX_SOURCE_CHARS:,} it analyses."
        )
        return [_note(message)]
    try:
        found = []
        for reads, check in server.features.checks:
            if reads(analysis.name):
                found += check(server, analysis)
        return found
    except Exception as exc:  # a bug in one check must not take the editor down with it
        message = f"tinyforge: {analysis.name}: {exc!r}"
        server.window_log_message(lsp.LogMessageParams(type=lsp.MessageType.Error, message=message))
        return [_note(f"TinyForge could not analyse this file: {exc}")]


def _note(message: str) -> lsp.Diagnostic:
    severity = lsp.DiagnosticSeverity.Information
    return lsp.Diagnostic(range=line_range(0), message=message, severity=severity, source=SOURCE)


def reanalyse(server: TinyForgeServer, uri: str | None = None) -> None:
    """Analyse `uri` (every open document when None) again now: what it depends on changed
    (a build's report, the settings …). A newer request for a document supersedes this one."""
    open_uris = [document.uri for document in server.workspace.text_documents.values()]
    for each in [uri] if uri is not None else open_uris:
        server.analyses.schedule(each, 0)
