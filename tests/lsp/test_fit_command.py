"""`tinyforge fit` in the editor: the code action on the model definition, the command's
progress and cancel, and the chosen model as an edit the editor previews before applying."""

from __future__ import annotations

import ast
import asyncio
from pathlib import Path
from typing import Any

import psutil
from lsprotocol import types as lsp
from pytest_lsp import LanguageClient

from tests.conftest import run_cli
from tests.lsp.conftest import open_doc

REQUEST = "Recognize handwritten digits on an Arduino Nano 33 BLE Sense"


def _new_project(folder: Path) -> Path:
    project = folder / "digits"
    assert run_cli("new", REQUEST, "--out", str(project)).returncode == 0
    return project


def _line_of(text: str, needle: str) -> int:
    return next(i for i, line in enumerate(text.splitlines()) if needle in line)


def _command_of(action: lsp.CodeAction | lsp.Command) -> dict[str, Any]:
    """The command a code action runs. lsprotocol's client-side hook reads any code action
    that carries a command as a Command (its `command` then the dict's repr); VS Code tells
    them apart by the type of `command`, as the protocol says."""
    if isinstance(action, lsp.CodeAction):
        assert action.command is not None
        return {"command": action.command.command, "arguments": action.command.arguments or []}
    return ast.literal_eval(action.command)


async def _actions_at(
    client: LanguageClient, uri: str, line: int
) -> list[lsp.CodeAction | lsp.Command]:
    actions = await client.text_document_code_action_async(
        lsp.CodeActionParams(
            text_document=lsp.TextDocumentIdentifier(uri=uri),
            range=lsp.Range(
                start=lsp.Position(line=line, character=4), end=lsp.Position(line=line, character=4)
            ),
            context=lsp.CodeActionContext(diagnostics=[]),
        )
    )
    return list(actions or [])


async def test_code_action_runs_the_search_and_previews_the_edit(
    client: LanguageClient, tmp_path: Path
) -> None:
    project = _new_project(tmp_path)
    text = (project / "train.py").read_text()
    uri = open_doc(client, project / "train.py", text)

    outside = await _actions_at(client, uri, _line_of(text, "def split("))
    assert not [a for a in outside if a.title.startswith("Find the best model")]
    inside = await _actions_at(client, uri, _line_of(text, "layers.Conv2D("))
    fits = [a for a in inside if a.title.startswith("Find the best model")]
    assert [a.title for a in fits] == ["Find the best model that fits nano33ble"]
    assert not [a for a in inside if a.title.startswith('Replace activation "relu"')]
    command = _command_of(fits[0])
    assert command["command"] == "tinyforge.fit"

    previews: list[lsp.ApplyWorkspaceEditParams] = []

    @client.feature(lsp.WORKSPACE_APPLY_EDIT)
    def apply_edit(_client: LanguageClient, params: lsp.ApplyWorkspaceEditParams):
        previews.append(params)
        return lsp.ApplyWorkspaceEditResult(applied=True)

    options = {"trials": 2, "epochs": 1, "budgetRam": "3KB", "seed": 1}
    result = await client.workspace_execute_command_async(
        lsp.ExecuteCommandParams(
            command=command["command"], arguments=[*command["arguments"], options]
        )
    )
    assert result["ok"], result
    assert result["fit"]["counts"]["trained"] == 2 and result["fit"]["counts"]["rejected"] > 0
    assert result["fit"]["chosen"] in result["fit"]["front"]
    assert Path(result["plot"]).is_file()

    # Progress: cancellable, stage by stage, never backwards, ended as done.
    reports = next(iter(client.progress_reports.values()))
    assert isinstance(reports[0], lsp.WorkDoneProgressBegin) and reports[0].cancellable
    assert isinstance(reports[-1], lsp.WorkDoneProgressEnd) and reports[-1].message == "done"
    percents = [r.percentage for r in reports[1:-1] if isinstance(r, lsp.WorkDoneProgressReport)]
    assert percents == sorted(percents) and percents[-1] == 100
    assert any("search" in (r.message or "") for r in reports[1:-1])

    # The chosen model comes back as an edit of train.py that needs the user's confirmation.
    assert len(previews) == 1 and result["applied"] is True
    edit = previews[0].edit
    assert edit.change_annotations and all(
        a.needs_confirmation for a in edit.change_annotations.values()
    )
    changes = [c for c in edit.document_changes or [] if isinstance(c, lsp.TextDocumentEdit)]
    assert [c.text_document.uri for c in changes] == [uri]
    new_text = changes[0].edits[0].new_text
    assert "Chosen by `tinyforge fit` for nano33ble" in new_text
    assert (project / "train.py").read_text() == text  # the server itself wrote nothing

    # The report view gets the search: the front and the plot, inline.
    report = await client.workspace_execute_command_async(
        lsp.ExecuteCommandParams(command="tinyforge.inspect", arguments=[str(project)])
    )
    assert report["fit"]["chosen"] == result["fit"]["chosen"]
    assert report["fit"]["plot_data_uri"].startswith("data:image/png;base64,")


async def test_cancel_stops_every_trial(client: LanguageClient, tmp_path: Path) -> None:
    project = _new_project(tmp_path)
    before = (project / "train.py").read_text()
    task = asyncio.ensure_future(
        client.workspace_execute_command_async(
            lsp.ExecuteCommandParams(
                command="tinyforge.fit", arguments=[str(project), {"trials": 8, "epochs": 200}]
            )
        )
    )
    server = psutil.Process(client._server.pid)  # pytest-lsp keeps the server's process here
    for _ in range(600):  # until trials really train
        await asyncio.sleep(0.1)
        if any(": training" in m.message for m in client.log_messages) and server.children(
            recursive=True
        ):
            break
    else:
        raise AssertionError("no trial started")
    token = next(iter(client.progress_reports))
    client.window_work_done_progress_cancel(lsp.WorkDoneProgressCancelParams(token=token))
    result = await asyncio.wait_for(task, timeout=60)
    assert result["ok"] is False and result["cancelled"] is True
    assert server.children(recursive=True) == []
    assert client.progress_reports[token][-1].message == "cancelled"
    assert (project / "train.py").read_text() == before
    assert not (project / "fit" / "fit.json").exists()
