"""PlatformIO from the editor, over stdio: the real `pio` on the local Cortex-M platform, its
overflow and compiler errors as diagnostics with quick fixes, upload/monitor without a board."""

from __future__ import annotations

import asyncio
import json
import shutil
from collections.abc import Callable
from pathlib import Path

from lsprotocol import types as lsp
from pytest_lsp import LanguageClient

from tests.firmware_fixtures import BOARD_ID, LocalPio, board_json
from tests.lsp.conftest import open_doc


async def _wait_for(
    client: LanguageClient, uri: str, check: Callable[[list[lsp.Diagnostic]], bool]
) -> list[lsp.Diagnostic]:
    async def poll() -> list[lsp.Diagnostic]:
        while True:
            found = list(client.diagnostics.get(uri, []))
            if check(found):
                return found
            await client.wait_for_notification(lsp.TEXT_DOCUMENT_PUBLISH_DIAGNOSTICS)

    return await asyncio.wait_for(poll(), timeout=60)


def _codes(found: list[lsp.Diagnostic]) -> set[str]:
    return {str(d.code) for d in found}


async def _execute(client: LanguageClient, command: str, *args: object) -> dict:
    return await client.workspace_execute_command_async(
        lsp.ExecuteCommandParams(command=command, arguments=list(args))
    )


async def test_overflow_and_compile_errors_become_diagnostics_with_fixes(
    client: LanguageClient, digits_project: Path, local_pio: LocalPio, tmp_path: Path
) -> None:
    report = json.loads((digits_project / "report.json").read_text())
    ram = report["arena_bytes_firmware"] - 2000
    project = local_pio.project(tmp_path / "small", digits_project, ram=ram)
    ini = project / "platformio.ini"
    ini_uri = open_doc(client, ini, ini.read_text(), "ini")

    result = await _execute(client, "tinyforge.pio", str(project), "build")
    assert result["ok"] is False and "RAM overflows by" in result["error"]
    found = await _wait_for(client, ini_uri, lambda d: "ram-overflow" in _codes(d))
    [overflow] = [d for d in found if d.code == "ram-overflow"]
    board_line = ini.read_text().splitlines().index(f"board = {BOARD_ID}")
    assert overflow.range.start.line == board_line
    assert overflow.severity == lsp.DiagnosticSeverity.Error
    assert isinstance(overflow.data, dict) and 2000 <= overflow.data["overflow_bytes"] <= 2064
    assert f"{report['arena_bytes_firmware']:,} bytes" in overflow.message

    actions = await client.text_document_code_action_async(
        lsp.CodeActionParams(
            text_document=lsp.TextDocumentIdentifier(uri=ini_uri),
            range=overflow.range,
            context=lsp.CodeActionContext(diagnostics=[overflow]),
        )
    )
    assert actions
    titles = [a.title for a in actions if isinstance(a, lsp.CodeAction)]
    pick = [a for a in actions if isinstance(a, lsp.CodeAction) and "more RAM" in a.title]
    assert pick, titles
    assert pick[0].edit is not None and pick[0].edit.changes is not None
    edits = pick[0].edit.changes[ini_uri]
    assert any(e.new_text.startswith("board = ") for e in edits)

    # Enough RAM: the next build clears the overflow and reports PlatformIO's figures.
    roomy = board_json(256 * 1024, 1 << 20)
    (project / "boards" / f"{BOARD_ID}.json").write_text(json.dumps(roomy))
    fixed = await _execute(client, "tinyforge.pio", str(project), "build")
    assert fixed["ok"] is True, fixed
    assert fixed["firmware"]["ram"]["used"] >= report["arena_bytes_firmware"]
    await _wait_for(client, ini_uri, lambda d: "ram-overflow" not in _codes(d))

    # A compiler error lands on its own file and line, open or not.
    main = project / "src" / "main.cpp"
    lines = main.read_text().splitlines()
    at = next(i for i, ln in enumerate(lines) if "sink = sink + g_model_data[i];" in ln)
    lines[at] = lines[at].replace("g_model_data", "g_model_dta")
    main.write_text("\n".join(lines) + "\n")
    broken = await _execute(client, "tinyforge.pio", str(project), "build")
    assert broken["ok"] is False and "g_model_dta" in broken["error"]
    errors = await _wait_for(client, main.as_uri(), lambda d: "compile-error" in _codes(d))
    assert errors[0].range.start.line == at and "g_model_dta" in errors[0].message


async def test_upload_and_monitor_without_a_board_say_so(
    client: LanguageClient, digits_project: Path, local_pio: LocalPio, tmp_path: Path
) -> None:
    project = local_pio.project(tmp_path / "upload", digits_project, ram=256 * 1024)
    port = "/dev/ttyTINYFORGE9"
    upload = await _execute(client, "tinyforge.upload", str(project), {"port": port})
    assert upload["ok"] is False and upload["error"].startswith(f"No board on {port}")
    monitor = await _execute(client, "tinyforge.monitor", str(project), {"port": port})
    assert monitor["ok"] is False and f"No board on {port}" in monitor["error"]


async def test_build_with_firmware_reports_the_missing_platform(
    client: LanguageClient, digits_project: Path, tmp_path: Path
) -> None:
    """The whole editor build: pipeline, then `pio run` for the real board (offline here)."""
    project = tmp_path / "digits"
    shutil.copytree(digits_project, project)
    result = await _execute(client, "tinyforge.build", str(project), {"firmware": True})
    assert result["ok"] is True and result["report"]["fits"] is True
    pio = result["pio"]
    assert pio["ok"] is False and pio["kind"] == "platform-missing"
    assert "`pio pkg install -g -p nordicnrf52`" in pio["error"]


async def test_esp32_ini_without_lib_deps_is_right(client: LanguageClient, tmp_path: Path) -> None:
    """ESP32 boards get esp-tflite-micro from their core: no missing-library warning."""
    from tests.lsp.conftest import diagnostics_for
    from tinyforge import generate
    from tinyforge.boards import get_board
    from tinyforge.project import read_platformio_ini
    from tinyforge.spec import ProjectSpec

    board = get_board("esp32dev")
    spec = ProjectSpec.from_dict(
        {
            "task": "image_classification",
            "board": board.id,
            "input_shape": [8, 8, 1],
            "dataset": {"kind": "digits"},
            "budget": {"ram_bytes": board.ram_bytes, "flash_bytes": board.flash_bytes},
            "num_classes": 10,
        }
    )
    (tmp_path / "tinyforge.toml").write_text(spec.to_toml())
    ini = generate.render_platformio_ini(spec, board)
    env = read_platformio_ini(tmp_path / "platformio.ini", ini).env()
    assert env is not None and "lib_deps" not in env.options
    uri = open_doc(client, tmp_path / "platformio.ini", ini, "ini")
    assert await diagnostics_for(client, uri) == []
