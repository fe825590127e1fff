"""Diagnostics on tinyforge.toml and platformio.ini, over stdio."""

from __future__ import annotations

from pathlib import Path

from lsprotocol import types as lsp
from pytest_lsp import LanguageClient

from tests.lsp.conftest import change_doc, diagnostics_for, open_doc

GOOD_SPEC = """\
task = "image_classification"
board = "nano33ble"
input_shape = [8, 8, 1]

[dataset]
kind = "digits"

[budget]
ram_bytes = 262144
flash_bytes = 983040
"""


async def test_valid_spec_has_no_diagnostics(client: LanguageClient, tmp_path: Path) -> None:
    uri = open_doc(client, tmp_path / "tinyforge.toml", GOOD_SPEC, "toml")
    assert await diagnostics_for(client, uri) == []


async def test_spec_schema_error_points_at_its_line(client: LanguageClient, tmp_path: Path) -> None:
    uri = open_doc(client, tmp_path / "tinyforge.toml", GOOD_SPEC, "toml")
    await diagnostics_for(client, uri)
    change_doc(client, uri, GOOD_SPEC.replace('kind = "digits"', 'kind = "photos"'), 2)
    found = await diagnostics_for(client, uri)
    assert len(found) == 1
    assert found[0].range.start.line == 5  # the `kind =` line
    assert "dataset.kind" in found[0].message
    assert found[0].severity == lsp.DiagnosticSeverity.Error


async def test_spec_toml_syntax_error(client: LanguageClient, tmp_path: Path) -> None:
    uri = open_doc(client, tmp_path / "tinyforge.toml", GOOD_SPEC + "\nbroken = [1, 2\n", "toml")
    found = await diagnostics_for(client, uri)
    assert len(found) == 1 and "Invalid TOML" in found[0].message


async def test_spec_unknown_board(client: LanguageClient, tmp_path: Path) -> None:
    uri = open_doc(
        client, tmp_path / "tinyforge.toml", GOOD_SPEC.replace("nano33ble", "nano34ble"), "toml"
    )
    found = await diagnostics_for(client, uri)
    assert found[0].range.start.line == 1
    assert "nano33ble" in found[0].message  # the closest known board is suggested


INI = """\
[platformio]
default_envs = main

[env:main]
platform = nordicnrf52
board = {board}
framework = arduino
lib_deps =
    {lib}
"""


async def test_ini_unknown_board(client: LanguageClient, tmp_path: Path) -> None:
    text = INI.format(board="esp32devkit", lib="tanakamasayuki/TensorFlowLite_ESP32")
    uri = open_doc(client, tmp_path / "platformio.ini", text, "ini")
    found = await diagnostics_for(client, uri)
    assert len(found) == 1
    assert found[0].range.start.line == 5
    assert "Unknown board 'esp32devkit'" in found[0].message and "esp32dev" in found[0].message


async def test_ini_board_differs_from_spec_and_lacks_tflm(
    client: LanguageClient, tmp_path: Path
) -> None:
    (tmp_path / "tinyforge.toml").write_text(GOOD_SPEC)
    uri = open_doc(
        client,
        tmp_path / "platformio.ini",
        INI.format(board="pico", lib="bblanchon/ArduinoJson"),
        "ini",
    )
    found = await diagnostics_for(client, uri)
    codes = sorted(str(d.code) for d in found)
    assert codes == ["board-mismatch", "missing-tflm-library"]
    mismatch = next(d for d in found if d.code == "board-mismatch")
    assert "nano33ble" in mismatch.message and mismatch.range.start.line == 5


async def test_ini_good(client: LanguageClient, tmp_path: Path) -> None:
    (tmp_path / "tinyforge.toml").write_text(GOOD_SPEC)
    text = INI.format(board="nano33ble", lib="spaziochirale/Chirale_TensorFLowLite@^2.0.0")
    uri = open_doc(client, tmp_path / "platformio.ini", text, "ini")
    assert await diagnostics_for(client, uri) == []


async def test_garbage_documents_do_not_crash(client: LanguageClient, tmp_path: Path) -> None:
    for name, lang in (
        ("tinyforge.toml", "toml"),
        ("platformio.ini", "ini"),
        ("model.py", "python"),
    ):
        uri = open_doc(client, tmp_path / name, "\x00\xff[[[=== \n\t'''\"\"\" def (", lang)
        await diagnostics_for(client, uri)
    result = await client.workspace_execute_command_async(
        lsp.ExecuteCommandParams(command="tinyforge.boards", arguments=[])
    )
    assert any(b["id"] == "nano33ble" for b in result)
