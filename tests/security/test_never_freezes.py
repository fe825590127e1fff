"""The language server answers while a pathological document is open (measured over stdio)."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest
from lsprotocol import types as lsp
from pytest_lsp import LanguageClient

from tests.lsp.conftest import diagnostics_for, open_doc
from tinyforge.errors import PlanError
from tinyforge.memory.keras_source import MAX_SOURCE_CHARS, Unknown, find_models
from tinyforge.plan.offline import OfflinePlanner

pytestmark = pytest.mark.security

MODEL = (
    "import keras\nmodel = keras.Sequential([keras.Input(shape=(4,)), keras.layers.Dense(UNITS)])\n"
)
# Each line squares the last: 26 of them made a number of 3**(2**26) (15 s, tripling per line).
SQUARES = "UNITS = 3\n" + "UNITS = UNITS * UNITS\n" * 26 + MODEL
DOUBLES = "T = (1,)\n" + "T = T + T\n" * 64 + "UNITS = len(T)\n" + MODEL
REQUEST_TIMEOUT = 1.0


def test_static_evaluation_has_a_budget() -> None:
    for source in (SQUARES, DOUBLES):
        start = time.perf_counter()
        (model,) = find_models(source)
        assert time.perf_counter() - start < 0.5
        assert isinstance(model.layers[0].config["units"], Unknown)
    (small,) = find_models("UNITS = 3\nUNITS = UNITS * UNITS\n" + MODEL)
    assert small.layers[0].config["units"] == 9  # below the budget: still evaluated


def test_oversized_source_is_not_analysed() -> None:
    with pytest.raises(ValueError, match="over the"):
        find_models("x = 1\n" * (MAX_SOURCE_CHARS // 6 + 1))


@pytest.mark.parametrize(
    "request_text", ["1" * 20_000, "digits on a pico " + "9" * 20_000, "9" * 1_500]
)
def test_offline_planner_refuses_pathological_text_quickly(request_text: str) -> None:
    start = time.perf_counter()
    with pytest.raises(PlanError):
        OfflinePlanner().plan(request_text)
    assert time.perf_counter() - start < 0.2


async def _timed(coro: object) -> float:
    start = time.perf_counter()
    await asyncio.wait_for(coro, timeout=30)  # type: ignore[arg-type]
    return time.perf_counter() - start


async def _requests(client: LanguageClient, uri: str, line: int) -> list[float]:
    doc = lsp.TextDocumentIdentifier(uri=uri)
    position = lsp.Position(line=line, character=2)
    return [
        await _timed(
            client.text_document_hover_async(lsp.HoverParams(text_document=doc, position=position))
        ),
        await _timed(client.text_document_code_lens_async(lsp.CodeLensParams(text_document=doc))),
        await _timed(
            client.text_document_code_action_async(
                lsp.CodeActionParams(
                    text_document=doc,
                    range=lsp.Range(start=position, end=position),
                    context=lsp.CodeActionContext(diagnostics=[]),
                )
            )
        ),
    ]


async def _warm_up(client: LanguageClient, tmp_path: Path) -> None:
    uri = open_doc(client, tmp_path / "warm.py", "UNITS = 4\n" + MODEL)
    await diagnostics_for(client, uri)
    await _requests(client, uri, 2)


async def test_requests_answered_while_squares_are_open(
    client: LanguageClient, tmp_path: Path
) -> None:
    await _warm_up(client, tmp_path)
    for name, source in (("squares.py", SQUARES), ("doubles.py", DOUBLES)):
        uri = open_doc(client, tmp_path / name, source)
        times = await _requests(client, uri, source.count("\n") - 1)
        assert max(times) < REQUEST_TIMEOUT, (name, times)


@pytest.mark.parametrize("name", ["big.py", "platformio.ini", "tinyforge.toml"])
async def test_oversized_file_gets_one_note(
    client: LanguageClient, tmp_path: Path, name: str
) -> None:
    await _warm_up(client, tmp_path)
    big = "x = 1\n" * (MAX_SOURCE_CHARS // 6 + 1) + MODEL
    uri = open_doc(client, tmp_path / name, big)
    (note,) = await diagnostics_for(client, uri)
    assert note.severity == lsp.DiagnosticSeverity.Information
    assert "TinyForge skips this file" in note.message
    times = await _requests(client, uri, 2)
    assert max(times) < REQUEST_TIMEOUT, times


async def test_huge_number_selection_is_answered(client: LanguageClient, tmp_path: Path) -> None:
    await _warm_up(client, tmp_path)
    digits = "9" * 20_000
    uri = open_doc(client, tmp_path / "notes.py", f"# {digits}\n")
    selection = lsp.Range(
        start=lsp.Position(line=0, character=2), end=lsp.Position(line=0, character=20_002)
    )
    elapsed = await _timed(
        client.text_document_code_action_async(
            lsp.CodeActionParams(
                text_document=lsp.TextDocumentIdentifier(uri=uri),
                range=selection,
                context=lsp.CodeActionContext(diagnostics=[]),
            )
        )
    )
    assert elapsed < REQUEST_TIMEOUT
