"""Every error is one sentence: CLI exit 2 without a traceback, a short server error reply."""

from __future__ import annotations

from pathlib import Path

import pytest
from lsprotocol import types as lsp
from pygls.exceptions import JsonRpcException
from pytest_lsp import LanguageClient

from tests.lsp.conftest import open_doc
from tinyforge import cli
from tinyforge.lsp.server import REQUEST_FAILED, one_sentence_errors
from tinyforge.project import load_context

pytestmark = pytest.mark.security

MODEL = "import keras\nmodel = keras.Sequential([keras.Input(shape=(4,)), keras.layers.Dense(2)])\n"


def _run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    code = cli.main(argv)
    out = capsys.readouterr()
    return code, out.out + out.err


def _one_sentence(text: str) -> None:
    assert "Traceback" not in text and 'File "' not in text
    assert len([line for line in text.splitlines() if line.strip()]) == 1, text


def test_negative_board_upload_limit(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "platformio.ini").write_text(
        "[env:pico]\nplatform = raspberrypi\nboard = pico\nframework = arduino\n"
        "board_upload.maximum_ram_size = -1\n"
    )
    (tmp_path / "m.py").write_text(MODEL)
    code, text = _run(
        ["inspect", "--project", str(tmp_path), "--static", str(tmp_path / "m.py")], capsys
    )
    assert code == 2
    _one_sentence(text)
    assert "board_upload.maximum_ram_size = -1 is not a positive number" in text
    ctx = load_context(tmp_path / "m.py")  # the editor's path: a problem, not an exception
    assert ctx.problems and "maximum_ram_size" in ctx.problems[0]


def test_non_utf8_spec(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "tinyforge.toml").write_bytes(b'request = "caf\xe9"\n')
    code, text = _run(["build", str(tmp_path)], capsys)
    assert code == 2
    _one_sentence(text)
    assert "is not UTF-8 text" in text
    assert "is not UTF-8" in load_context(tmp_path).problems[0]


def test_markup_in_a_board_name(capsys: pytest.CaptureFixture[str]) -> None:
    code, text = _run(["plan", "--board", "[/red]", "digits"], capsys)
    assert code == 2
    _one_sentence(text)
    assert "Unknown board '[/red]'" in text


async def test_stale_code_action_range(client: LanguageClient, tmp_path: Path) -> None:
    uri = open_doc(client, tmp_path / "m.py", MODEL)
    stale = lsp.Range(
        start=lsp.Position(line=40, character=3), end=lsp.Position(line=42, character=1)
    )
    result = await client.text_document_code_action_async(
        lsp.CodeActionParams(
            text_document=lsp.TextDocumentIdentifier(uri=uri),
            range=stale,
            context=lsp.CodeActionContext(diagnostics=[]),
        )
    )
    assert result is not None and all(isinstance(a, lsp.CodeAction) for a in result)


async def test_code_lens_on_a_file_that_is_not_open(client: LanguageClient, tmp_path: Path) -> None:
    result = await client.text_document_code_lens_async(
        lsp.CodeLensParams(
            text_document=lsp.TextDocumentIdentifier(uri=(tmp_path / "gone.py").as_uri())
        )
    )
    assert result is not None and list(result) == []


def _broken(ls: object, params: object) -> None:
    raise IndexError("list index out of range")


async def _broken_async(ls: object, params: object) -> None:
    raise FileNotFoundError(2, "No such file or directory")


def test_an_unexpected_error_is_one_sentence() -> None:
    answer = one_sentence_errors("textDocument/codeAction", _broken)
    with pytest.raises(JsonRpcException) as failed:
        answer(None, None)
    assert failed.value.code == REQUEST_FAILED != -32603 and failed.value.data is None
    assert str(failed.value.message) == (
        "TinyForge could not answer textDocument/codeAction: list index out of range."
    )


async def test_an_unexpected_error_in_a_command_is_one_sentence() -> None:
    answer = one_sentence_errors("tinyforge.build", _broken_async)
    with pytest.raises(JsonRpcException) as failed:
        await answer(None, None)
    assert failed.value.code == REQUEST_FAILED and "\n" not in str(failed.value.message)
    assert "No such file or directory" in str(failed.value.message)
