"""Commands over stdio: ordered progress, cancel kills the child tree, actions create files."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import psutil
from lsprotocol import types as lsp
from pytest_lsp import LanguageClient

from tests.conftest import run_cli, set_epochs
from tests.lsp.conftest import open_doc


def _server_pid(client: LanguageClient) -> int:
    return client._server.pid  # pytest-lsp keeps the server's process here


def _snapshot(folder: Path) -> dict[str, float]:
    return {str(p.relative_to(folder)): p.stat().st_mtime for p in sorted(folder.rglob("*"))}


async def test_plan_and_boards(client: LanguageClient) -> None:
    result = await client.workspace_execute_command_async(
        lsp.ExecuteCommandParams(
            command="tinyforge.plan",
            arguments=["classify cat vs dog photos in ./pets on an ESP32-CAM"],
        )
    )
    assert result["ok"], result
    assert result["spec"]["board"] == "esp32cam"
    assert result["spec"]["classes"] == ["cat", "dog"]
    bad = await client.workspace_execute_command_async(
        lsp.ExecuteCommandParams(command="tinyforge.selectBoard", arguments=["no-such-board"])
    )
    assert not bad["ok"] and "Unknown board" in bad["error"]
    good = await client.workspace_execute_command_async(
        lsp.ExecuteCommandParams(command="tinyforge.selectBoard", arguments=["pico"])
    )
    assert good == {"ok": True, "board": "pico"}


async def test_train_reports_progress_in_order(client: LanguageClient, tmp_path: Path) -> None:
    project = tmp_path / "digits"
    assert run_cli("new", "handwritten digits on a Pi Pico", "--out", str(project)).returncode == 0
    set_epochs(project, 3)
    result = await client.workspace_execute_command_async(
        lsp.ExecuteCommandParams(command="tinyforge.train", arguments=[str(project)])
    )
    assert result["ok"], result
    assert result["metrics"]["epochs_run"] == 3
    assert len(client.progress_reports) == 1
    reports = next(iter(client.progress_reports.values()))
    assert isinstance(reports[0], lsp.WorkDoneProgressBegin) and reports[0].cancellable
    assert isinstance(reports[-1], lsp.WorkDoneProgressEnd) and reports[-1].message == "done"
    middle = reports[1:-1]
    assert all(isinstance(r, lsp.WorkDoneProgressReport) for r in middle)
    percents = [r.percentage for r in middle]
    assert percents == sorted(percents) and percents[-1] == 100
    epochs = [r.message for r in middle if r.message and "epoch" in r.message]
    assert [m.split()[2] for m in epochs] == ["1/3", "2/3", "3/3"]
    assert any("epoch 1/3" in m.message for m in client.log_messages)


async def test_cancel_kills_the_child_and_restores_the_project(
    client: LanguageClient, tmp_path: Path
) -> None:
    project = tmp_path / "digits"
    assert run_cli("new", "handwritten digits on a Pi Pico", "--out", str(project)).returncode == 0
    set_epochs(project, 500)
    before = _snapshot(project)
    task = asyncio.ensure_future(
        client.workspace_execute_command_async(
            lsp.ExecuteCommandParams(command="tinyforge.build", arguments=[str(project)])
        )
    )
    server = psutil.Process(_server_pid(client))
    token = None
    for _ in range(600):  # wait until training really runs (an epoch was reported)
        await asyncio.sleep(0.1)
        for tok, reports in client.progress_reports.items():
            if any(getattr(r, "message", "") and "epoch" in r.message for r in reports):
                token = tok
        if token:
            break
    assert token is not None, "training never reported an epoch"
    assert server.children(recursive=True), "training should run in a child process"
    # While training runs, the server still answers.
    boards = await client.workspace_execute_command_async(
        lsp.ExecuteCommandParams(command="tinyforge.boards", arguments=[])
    )
    assert boards
    client.window_work_done_progress_cancel(lsp.WorkDoneProgressCancelParams(token=token))
    result = await asyncio.wait_for(task, timeout=30)
    assert result["ok"] is False and result["cancelled"] is True
    assert server.children(recursive=True) == []
    assert _snapshot(project) == before
    assert client.progress_reports[token][-1].message == "cancelled"


async def test_create_project_code_action(client: LanguageClient, tmp_path: Path) -> None:
    text = "import numpy\n# tinyml: detect 5 wrist gestures from accel.csv on a Teensy 4.1\nx = 1\n"
    uri = open_doc(client, tmp_path / "notes.py", text)
    actions = await client.text_document_code_action_async(
        lsp.CodeActionParams(
            text_document=lsp.TextDocumentIdentifier(uri=uri),
            range=lsp.Range(
                start=lsp.Position(line=1, character=3), end=lsp.Position(line=1, character=3)
            ),
            context=lsp.CodeActionContext(diagnostics=[]),
        )
    )
    create = [a for a in actions or [] if a.title.startswith("Create TinyML project")]
    assert len(create) == 1 and create[0].edit is not None
    changes = create[0].edit.document_changes or []
    created = [c.uri for c in changes if isinstance(c, lsp.CreateFile)]
    names = sorted(Path(u).name for u in created)
    assert names == [".gitignore", "platformio.ini", "tinyforge.toml", "train.py"]
    assert all(
        isinstance(c, lsp.CreateFile) and c.options and not c.options.overwrite
        for c in changes
        if isinstance(c, lsp.CreateFile)
    )
    # The server wrote nothing itself: the edit is for the user to preview and apply.
    assert sorted(p.name for p in tmp_path.iterdir()) == []
    edits = {
        c.text_document.uri: c.edits[0].new_text
        for c in changes
        if isinstance(c, lsp.TextDocumentEdit)
    }
    spec = next(v for k, v in edits.items() if k.endswith("tinyforge.toml"))
    assert 'board = "teensy41"' in spec and "num_classes = 5" in spec
    # Apply it the way an editor would, and the project is valid.
    for uri_, content in edits.items():
        target = Path(uri_.removeprefix("file://"))
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(content)
    folder = Path(created[0].removeprefix("file://")).parent
    planned = json.loads(
        run_cli("plan", "detect 5 wrist gestures from accel.csv on a Teensy 4.1", "--json").stdout
    )
    assert planned["board"] == "teensy41" and (folder / "train.py").is_file()


async def test_build_then_measured_figures_replace_estimates(
    client: LanguageClient, tmp_path: Path
) -> None:
    project = tmp_path / "digits"
    assert run_cli("new", "handwritten digits on a Pi Pico", "--out", str(project)).returncode == 0
    set_epochs(project, 3)
    train = project / "train.py"
    uri = open_doc(client, train, train.read_text())
    before = await client.text_document_code_lens_async(
        lsp.CodeLensParams(text_document=lsp.TextDocumentIdentifier(uri=uri))
    )
    assert before and "(estimate;" in before[0].command.title
    result = await client.workspace_execute_command_async(
        lsp.ExecuteCommandParams(command="tinyforge.build", arguments=[project.as_uri()])
    )
    assert result["ok"], result
    report = json.loads((project / "report.json").read_text())
    assert result["report"]["arena_bytes"] == report["arena_bytes"]
    after = await client.text_document_code_lens_async(
        lsp.CodeLensParams(text_document=lsp.TextDocumentIdentifier(uri=uri))
    )
    assert after and "(measured;" in after[0].command.title
    assert f"arena {report['arena_bytes_target']:,} B" in after[0].command.title
