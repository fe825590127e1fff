"""A document's analyses are debounced and superseded per document, over stdio: a burst of
changes is analysed once or twice, a stale version's diagnostics never replace a newer one's,
and one document's slow analysis holds no other document's diagnostics up."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from pytest_lsp import LanguageClient

from tests.lsp.conftest import change_doc, diagnostics_for, open_doc
from tests.security.lsp_record import record_publications, record_traces, until, versions_of

pytestmark = pytest.mark.security

# A script whose analysis takes a second or more (parsing ~1 MB, still under the size limit).
SLOW = "UNITS = 4\n" + "a = [1, 2, 3, (4, 5), {'k': 6}]\n" * 30_000


def ini(board: str) -> str:
    return f"[env:main]\nplatform = nordicnrf52\nboard = {board}\n"


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
