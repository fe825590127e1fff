"""Verify on an emulated board from the editor, over stdio: the real cross-compiler, TFLM (the
shared kit) and QEMU; progress and the device section of report.json; measured figures over
the budget as diagnostics; the reason when the board cannot be emulated."""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
from collections.abc import Callable
from pathlib import Path

import psutil
import pytest_lsp
from lsprotocol import types as lsp
from pytest_lsp import ClientServerConfig, LanguageClient

from tests.conftest import REPO
from tests.lsp.conftest import SERVER, change_doc, open_doc, vscode_session

TFLM = REPO.parent / "shared" / "vendor" / "tflm-cortex-m"
HEADLINE = "measured on an emulated Cortex-M4F (mps2-an386)"


@pytest_lsp.fixture(
    config=ClientServerConfig(
        server_command=SERVER, server_env={**os.environ, "TINYFORGE_TFLM_DIR": str(TFLM)}
    )
)
async def client(lsp_client: LanguageClient, tmp_path: Path):
    await lsp_client.initialize_session(vscode_session(tmp_path))
    yield
    await lsp_client.shutdown_session()


def _copy(digits_project: Path, dest: Path) -> Path:
    """A copy of the built digits project without any device section (the build may add one)."""
    shutil.copytree(digits_project, dest)
    report = json.loads((dest / "report.json").read_text())
    report.pop("device", None)
    (dest / "report.json").write_text(json.dumps(report, indent=2))
    return dest


async def _execute(client: LanguageClient, command: str, *args: object) -> dict:
    return await client.workspace_execute_command_async(
        lsp.ExecuteCommandParams(command=command, arguments=list(args))
    )


async def _wait_for(
    client: LanguageClient, uri: str, check: Callable[[list[lsp.Diagnostic]], bool]
) -> list[lsp.Diagnostic]:
    async def poll() -> list[lsp.Diagnostic]:
        while True:
            found = list(client.diagnostics.get(uri, []))
            if uri in client.diagnostics and check(found):
                return found
            await client.wait_for_notification(lsp.TEXT_DOCUMENT_PUBLISH_DIAGNOSTICS)

    return await asyncio.wait_for(poll(), timeout=60)


def _device_codes(found: list[lsp.Diagnostic]) -> set[str]:
    return {str(d.code) for d in found if str(d.code).startswith("device-")}


async def test_verify_reports_progress_and_writes_the_device_section(
    client: LanguageClient, digits_project: Path, tmp_path: Path
) -> None:
    project = _copy(digits_project, tmp_path / "digits")
    spec = project / "tinyforge.toml"
    spec_uri = open_doc(client, spec, spec.read_text(), "toml")

    result = await _execute(client, "tinyforge.verify", str(project))

    assert result["ok"] is True, result
    assert result["headline"] == HEADLINE
    [reports] = client.progress_reports.values()
    assert isinstance(reports[0], lsp.WorkDoneProgressBegin) and reports[0].cancellable
    assert reports[0].title == "TinyForge: verifying on an emulated board"
    assert isinstance(reports[-1], lsp.WorkDoneProgressEnd) and reports[-1].message == "done"
    middle = [r for r in reports[1:-1] if isinstance(r, lsp.WorkDoneProgressReport)]
    assert len(middle) == len(reports) - 2
    percents = [r.percentage for r in middle]
    assert percents == sorted(percents) and percents[-1] == 100
    messages = [r.message or "" for r in middle]
    assert any("compiling TFLM for cortex-m4f (cmsis_nn kernels)" in m for m in messages)
    assert any(
        re.search(r"running \d+ test samples on an emulated Cortex-M4F", m) for m in messages
    )
    assert messages[-1].endswith(HEADLINE)

    # report.json: the device section merged into the build's report, measured figures.
    report = json.loads((project / "report.json").read_text())
    device = report["device"]
    assert device == result["device"]
    assert device["measured"] is True and device["board"] == "nano33ble"
    assert (device["emulated_core"], device["machine"]) == ("Cortex-M4F", "mps2-an386")
    assert device["kernels"] == "cmsis_nn" and device["tflm"]["path"] == str(TFLM)
    assert device["samples"] >= 32
    assert device["argmax_agreement_percent"] > 0
    assert 0 < device["arena_used_bytes"] <= device["arena_smallest_bytes"]
    assert device["arena_smallest_bytes"] <= device["arena_firmware_bytes"]
    assert device["flash"]["model"] == report["model_bytes"]
    assert device["instructions_per_inference"] > 0 and device["latency_ms_estimate"] > 0
    assert report["project"] and report["health"]  # the rest of the build's report is kept
    assert report["fits"] is True

    # It fits: no measured figure is over the budget, on the open spec.
    found = await _wait_for(client, spec_uri, lambda d: True)
    assert _device_codes(found) == set()

    # The editor's report carries the device section.
    inspect = await _execute(client, "tinyforge.inspect", str(project))
    assert inspect["ok"] is True and inspect["device"]["kernels"] == "cmsis_nn"


async def test_measured_figures_over_the_budget_become_diagnostics(
    client: LanguageClient, digits_project: Path, tmp_path: Path
) -> None:
    from tinyforge.lsp.device import main_device_diagnostics

    project = _copy(digits_project, tmp_path / "digits")
    result = await _execute(client, "tinyforge.verify", str(project), {"kernels": "reference"})
    assert result["ok"] is True, result
    device = json.loads((project / "report.json").read_text())["device"]
    assert device["kernels"] == "reference"
    assert device["outputs_identical_percent"] == 100

    spec = project / "tinyforge.toml"
    text = spec.read_text()
    uri = open_doc(client, spec, text, "toml")
    assert _device_codes(await _wait_for(client, uri, lambda d: True)) == set()

    # A 16 KB RAM budget: the measured arena, runtime and application plus the Arduino core's
    # baseline no longer fit; the diagnostic sits on the budget's ram_bytes line.
    lines = text.splitlines()
    at = next(i for i, ln in enumerate(lines) if ln.startswith("ram_bytes ="))
    lines[at] = "ram_bytes = 16384"
    change_doc(client, uri, "\n".join(lines) + "\n", 2)
    found = await _wait_for(client, uri, lambda d: "device-over-budget-ram" in _device_codes(d))
    [over] = [d for d in found if d.code == "device-over-budget-ram"]
    assert over.range.start.line == at
    assert over.severity == lsp.DiagnosticSeverity.Error
    assert HEADLINE in over.message and "exceeds the 16.0 KB budget" in over.message
    assert "tensor arena" in over.message and "nano33ble Arduino core (estimate)" in over.message
    assert "device-over-budget-flash" not in _device_codes(found)

    # Back to the board's budget: the diagnostic goes.
    change_doc(client, uri, text, 3)
    await _wait_for(client, uri, lambda d: not _device_codes(d))

    # A firmware arena smaller than the smallest that ran lands on main.cpp's kTensorArenaSize.
    main = (project / "src" / "main.cpp").read_text()
    short = {**device, "arena_firmware_bytes": device["arena_smallest_bytes"] - 16}
    report = json.loads((project / "report.json").read_text())
    (project / "report.json").write_text(json.dumps({**report, "device": short}))
    [arena] = main_device_diagnostics(project, main)
    assert arena.code == "device-arena-too-small" and HEADLINE in arena.message
    assert "constexpr size_t kTensorArenaSize" in main.splitlines()[arena.range.start.line]


async def test_a_board_that_cannot_be_emulated_says_why(
    client: LanguageClient, digits_project: Path, tmp_path: Path
) -> None:
    project = _copy(digits_project, tmp_path / "digits")
    spec = project / "tinyforge.toml"
    spec.write_text(re.sub(r'(?m)^board = ".*"$', 'board = "esp32dev"', spec.read_text()))

    result = await _execute(client, "tinyforge.verify", str(project / "train.py"))

    assert result["ok"] is False and "cancelled" not in result
    assert "Traceback" not in result["error"] and result["error"].count("\n") == 0
    assert "ESP32" in result["error"] or "Xtensa" in result["error"]
    device = json.loads((project / "report.json").read_text())["device"]
    assert device == {"measured": False, "reason": result["error"]}
    [reports] = client.progress_reports.values()
    assert isinstance(reports[-1], lsp.WorkDoneProgressEnd)
    assert reports[-1].message == f"failed: {result['error']}"


async def test_cancel_stops_the_compiler_and_leaves_the_report(
    client: LanguageClient, digits_project: Path, tmp_path: Path
) -> None:
    project = _copy(digits_project, tmp_path / "digits")
    before = (project / "report.json").read_text()
    task = asyncio.ensure_future(_execute(client, "tinyforge.verify", str(project)))
    token = None
    for _ in range(300):  # until the firmware is being compiled
        await asyncio.sleep(0.05)
        for tok, reports in client.progress_reports.items():
            if any("compiling TFLM" in (getattr(r, "message", "") or "") for r in reports):
                token = tok
        if token:
            break
    assert token is not None, "verify never reported compiling"
    client.window_work_done_progress_cancel(lsp.WorkDoneProgressCancelParams(token=token))
    result = await asyncio.wait_for(task, timeout=60)
    assert result["ok"] is False and result["cancelled"] is True
    assert client.progress_reports[token][-1].message == "cancelled"
    assert psutil.Process(client._server.pid).children(recursive=True) == []
    assert (project / "report.json").read_text() == before
