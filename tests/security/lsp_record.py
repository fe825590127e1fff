"""What a test client saw from the real server: every publication in order, its trace lines,
and a liveness bound for waiting on them (speed goals live in bench/, not in tests)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from lsprotocol import types as lsp
from pytest_lsp import LanguageClient


def record_publications(client: LanguageClient) -> list[lsp.PublishDiagnosticsParams]:
    """Every publishDiagnostics from now on, in order (pytest-lsp keeps only the last)."""
    published: list[lsp.PublishDiagnosticsParams] = []
    features = client.protocol.fm.features
    keep = features[lsp.TEXT_DOCUMENT_PUBLISH_DIAGNOSTICS]

    def record(params: lsp.PublishDiagnosticsParams) -> None:
        published.append(params)
        keep(params)

    features[lsp.TEXT_DOCUMENT_PUBLISH_DIAGNOSTICS] = record
    return published


def record_traces(client: LanguageClient) -> list[str]:
    """The server's `$/logTrace` lines, with its trace turned on."""
    traces: list[str] = []
    client.feature(lsp.LOG_TRACE)(lambda params: traces.append(params.message))
    client.set_trace(lsp.SetTraceParams(value=lsp.TraceValue.Verbose))
    return traces


def versions_of(published: list[lsp.PublishDiagnosticsParams], uri: str) -> list[int | None]:
    return [p.version for p in published if p.uri == uri]


async def until(check: Callable[[], bool], timeout: float = 20.0) -> None:
    """Wait for `check`; past `timeout` the server is taken for stuck."""
    for _ in range(int(timeout / 0.05)):
        if check():
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"the server did not publish within {timeout:.0f} s")
