"""A document's analyses are debounced and superseded per document, over stdio: a burst of
changes is analysed once or twice, a stale version's diagnostics never replace a newer one's,
and one document's slow analysis holds no other document's diagnostics up."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

import pytest
from lsprotocol import types as lsp
from pytest_lsp import LanguageClient

from tests.lsp.conftest import change_doc, diagnostics_for, open_doc

pytestmark = pytest.mark.security

# A script whose analysis takes a second or more (parsing ~1 MB, still under the size limit).
SLOW = "UNITS = 4\n" + "a = [1, 2, 3, (4, 5), {'k': 6}]\n" * 30_000


def ini(board: str) -> str:
    return f"[env:main]\nplatform = nordicnrf52\nboard = {board}\n"


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


async def until(check: Callable[[], bool], timeout: float = 20.0) -> None:
    """A liveness bound, not a speed goal (bench/lsp_fuzz.py measures speed)."""
    for _ in range(int(timeout / 0.05)):
        if check():
            return
        await asyncio.sleep(0.05)
    raise AssertionError("the server did not publish in time")


def versions_of(published: list[lsp.PublishDiagnosticsParams], uri: str) -> list[int | None]:
    return [p.version for p in published if p.uri == uri]


async def test_a_burst_of_changes_is_analysed_for_its_last_version(
    client: LanguageClient, tmp_path: Path
) -> None:
    traces = record_traces(client)
    uri = open_doc(client, tmp_path / "platformio.ini", ini("nosuchboard1"), "ini")
    await diagnostics_for(client, uri)
    published = record_publications(client)
    traces.clear()
    for version in range(2, 52):
        change_doc(client, uri, ini(f"nosuchboard{version}"), version)
    await until(lambda: 51 in versions_of(published, uri))
    await asyncio.sleep(0.5)  # anything still on its way
    versions = versions_of(published, uri)
    assert versions[-1] == 51 and versions == sorted(versions), versions
    assert len(versions) <= 5, f"{len(versions)} publications for 50 changes: {versions}"
    assert "nosuchboard51" in published[-1].diagnostics[0].message
    analysed = [t for t in traces if t.startswith(f"analysing {uri}")]
    assert 1 <= len(analysed) <= 5, traces


async def test_a_running_analysis_of_an_old_version_is_never_published(
    client: LanguageClient, tmp_path: Path
) -> None:
    published = record_publications(client)
    traces = record_traces(client)
    uri = open_doc(client, tmp_path / "model.py", SLOW)
    await asyncio.sleep(0.3)  # its analysis has started, and runs for a second or more
    change_doc(client, uri, "UNITS = 4\n", 2)
    await until(lambda: 2 in versions_of(published, uri))
    # The old analysis ends either dropped (traced) or published (the bug).
    await until(lambda: any("superseded" in t for t in traces) or 1 in versions_of(published, uri))
    assert versions_of(published, uri) == [2]


async def test_a_slow_document_holds_no_other_document_up(
    client: LanguageClient, tmp_path: Path
) -> None:
    published = record_publications(client)
    slow = open_doc(client, tmp_path / "slow.py", SLOW)
    quick = open_doc(client, tmp_path / "platformio.ini", ini("nosuchboard"), "ini")
    await until(lambda: {slow, quick} <= {p.uri for p in published})
    assert [p.uri for p in published][:2] == [quick, slow]
