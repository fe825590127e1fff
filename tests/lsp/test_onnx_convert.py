"""The editor's doors onto `tinyforge convert`: the code action on a `torch.onnx.export(...)`
call and the convertFile command it runs, over stdio with the real server."""

from __future__ import annotations

import ast
import tomllib
from pathlib import Path

import numpy as np
import onnx
from lsprotocol import types as lsp
from onnx import TensorProto, helper
from pytest_lsp import LanguageClient

from tests.lsp.conftest import open_doc

SCRIPT = """import torch

model = torch.nn.Linear(4, 3)
torch.onnx.export(
    model,
    torch.zeros(1, 4),
    "net.onnx",
    opset_version=13,
)
"""


def _mlp(path: Path) -> Path:
    rng = np.random.default_rng(0)
    graph = helper.make_graph(
        [helper.make_node("Gemm", ["x", "w", "b"], ["y"], name="fc")],
        "mlp",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 3])],
        initializer=[
            helper.make_tensor("w", TensorProto.FLOAT, [4, 3], rng.random(12).tolist()),
            helper.make_tensor("b", TensorProto.FLOAT, [3], rng.random(3).tolist()),
        ],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8  # what torch.onnx.export writes
    onnx.save(model, path)
    return path


async def _actions(client: LanguageClient, uri: str, line: int) -> list[lsp.CodeAction]:
    found = await client.text_document_code_action_async(
        lsp.CodeActionParams(
            text_document=lsp.TextDocumentIdentifier(uri=uri),
            range=lsp.Range(
                start=lsp.Position(line=line, character=4), end=lsp.Position(line=line, character=4)
            ),
            context=lsp.CodeActionContext(diagnostics=[]),
        )
    )
    actions = []
    for item in found or []:
        if isinstance(item, lsp.Command) and item.command.startswith("{"):
            # lsprotocol's client-side hook reads any action that has a `command` as a Command
            # (VS Code tells them apart by the type of `command`): rebuild the action.
            fields = ast.literal_eval(item.command)
            item = lsp.CodeAction(
                title=item.title,
                command=lsp.Command(
                    title=fields["title"],
                    command=fields["command"],
                    arguments=fields.get("arguments"),
                ),
            )
        if isinstance(item, lsp.CodeAction) and "TFLite Micro" in item.title:
            actions.append(item)
    return actions


async def test_export_call_offers_a_verified_conversion(
    client: LanguageClient, tmp_path: Path
) -> None:
    uri = open_doc(client, tmp_path / "export.py", SCRIPT)
    # Before the script ran there is nothing to convert: the action says why.
    (pending,) = await _actions(client, uri, 6)
    assert pending.disabled is not None and "run the script" in pending.disabled.reason
    assert await _actions(client, uri, 1) == []  # not on other lines

    model = _mlp(tmp_path / "net.onnx")
    (action,) = await _actions(client, uri, 3)
    assert action.disabled is None and action.command is not None
    assert action.title == "Convert net.onnx to int8 TFLite Micro"
    assert action.command.command == "tinyforge.convertFile"
    assert action.command.arguments == [model.as_uri()]

    # What the editor does when the user picks it: the board is the editor's setting.
    result = await client.workspace_execute_command_async(
        lsp.ExecuteCommandParams(command=action.command.command, arguments=action.command.arguments)
    )
    assert result["ok"], result
    report = result["report"]
    assert report["board"] == "nano33ble" and report["float_agreement"] == 1.0
    assert report["tflm_agreement"] is not None and report["fits"] is True
    assert report["calibration"]["kind"] == "random"
    project = Path(result["project"])
    assert project == tmp_path / "net_tinyml"
    assert tomllib.loads((project / "tinyforge.toml").read_text())["model"]["source"] == (
        "model.onnx"
    )
    assert (project / "src/main.cpp").is_file()
    reports = next(iter(client.progress_reports.values()))
    assert isinstance(reports[0], lsp.WorkDoneProgressBegin) and reports[0].cancellable
    assert isinstance(reports[-1], lsp.WorkDoneProgressEnd) and reports[-1].message == "done"
    stages = [r.message.split(":")[0] for r in reports[1:-1] if r.message]
    assert stages[0] == "check" and "inspect" in stages and stages[-1] == "report"


async def test_the_editors_convert_timeout_stops_onnx2tf(
    client: LanguageClient, tmp_path: Path
) -> None:
    """`tinyforge.convert.timeoutSeconds` (and a command's own `timeout`) bound the onnx2tf
    run as --convert-timeout does: one sentence naming the stage, no project left behind."""
    model = _mlp(tmp_path / "net.onnx")
    client.workspace_did_change_configuration(
        lsp.DidChangeConfigurationParams(
            settings={"tinyforge": {"convert": {"timeoutSeconds": 0.5}}}
        )
    )
    for options in ({"board": "pico", "out": str(tmp_path / "a")}, {"timeout": 0.5}):
        result = await client.workspace_execute_command_async(
            lsp.ExecuteCommandParams(
                command="tinyforge.convertFile", arguments=[model.as_uri(), options]
            )
        )
        assert result["ok"] is False, result
        assert result["error"].startswith("The convert stage ran out of its 0.5 s"), result
    assert not (tmp_path / "a").exists()


async def test_convert_command_takes_an_onnx_file(client: LanguageClient, tmp_path: Path) -> None:
    model = _mlp(tmp_path / "net.onnx")
    calibration = tmp_path / "rows.npy"
    np.save(calibration, np.random.default_rng(1).random((30, 4), dtype=np.float32))
    out = tmp_path / "converted"
    result = await client.workspace_execute_command_async(
        lsp.ExecuteCommandParams(
            command="tinyforge.convert",
            arguments=[
                model.as_uri(),
                {"board": "pico", "out": str(out), "calibration": str(calibration)},
            ],
        )
    )
    assert result["ok"], result
    assert result["report"]["board"] == "pico"
    assert result["report"]["calibration"]["samples"] == 30
    assert Path(result["tflite"]) == out / "model.tflite"
    bad = await client.workspace_execute_command_async(
        lsp.ExecuteCommandParams(
            command="tinyforge.convertFile", arguments=[str(tmp_path / "x.txt")]
        )
    )
    assert bad == {"ok": False, "error": "x.txt is not an .onnx file."}
