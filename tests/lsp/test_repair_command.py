"""The editor's side of issue 8, over stdio: the repair command's WorkspaceEdit, and the API key
the editor passes (kept in memory, never echoed, Claude unreachable → planned offline)."""

from __future__ import annotations

import json
import os
import re
import sys
from pathlib import Path

import pytest_lsp
from lsprotocol import types as lsp
from pytest_lsp import ClientServerConfig, LanguageClient

from tests.lsp.conftest import vscode_session
from tinyforge import pipeline
from tinyforge.project import read_platformio_ini

KEY = "sk-ant-api03-editor-secret-9876543210"
# A closed local port: the SDK's real connection attempt fails at once, without a network.
SERVER_ENV = {
    **{k: v for k, v in os.environ.items() if k != "ANTHROPIC_API_KEY"},
    "ANTHROPIC_BASE_URL": "http://127.0.0.1:9",
}


@pytest_lsp.fixture(
    config=ClientServerConfig(
        server_command=[sys.executable, "-m", "tinyforge.lsp"], server_env=SERVER_ENV
    )
)
async def client(lsp_client: LanguageClient, tmp_path: Path):
    await lsp_client.initialize_session(
        vscode_session(tmp_path, {"tinyforge": {"planner": "claude", "anthropicApiKey": KEY}})
    )
    yield
    await lsp_client.shutdown_session()


def _apply(text: str, edits: list[dict]) -> str:
    lines = text.splitlines(keepends=True)
    offsets = [0]
    for line in lines:
        offsets.append(offsets[-1] + len(line))
    for edit in sorted(
        edits,
        key=lambda e: (e["range"]["start"]["line"], e["range"]["start"]["character"]),
        reverse=True,
    ):
        start, end = edit["range"]["start"], edit["range"]["end"]
        a = offsets[start["line"]] + start["character"]
        b = offsets[end["line"]] + end["character"]
        text = text[:a] + edit["newText"] + text[b:]
    return text


async def test_repair_returns_a_workspace_edit_the_client_applies(
    client: LanguageClient, tmp_path: Path
) -> None:
    project = tmp_path / "digits"
    pipeline.new_project("handwritten digits on a Pi Pico", project)
    ini = project / "platformio.ini"
    bare = re.sub(r"lib_deps =\n(?:[ \t]+.*\n)+", "", ini.read_text())
    ini.write_text(bare)
    result = await client.workspace_execute_command_async(
        lsp.ExecuteCommandParams(command="tinyforge.repair", arguments=[project.as_uri()])
    )
    assert result["ok"], result
    assert result["failures"][0]["stage"] == "static"
    (fix,) = result["fixes"]
    assert fix["rule"] == "add-tflm-library" and "+lib_deps =" in fix["diff"]
    (change,) = fix["edit"]["documentChanges"]
    assert change["textDocument"]["uri"] == ini.as_uri()
    fixed = _apply(bare, change["edits"])
    env = read_platformio_ini(ini, fixed).env()
    assert env is not None and "TensorFLowLite" in env.options["lib_deps"]
    assert ini.read_text() == bare  # the server proposes; the client applies


async def test_editor_key_is_used_but_never_echoed(client: LanguageClient) -> None:
    result = await client.workspace_execute_command_async(
        lsp.ExecuteCommandParams(
            command="tinyforge.plan", arguments=["Recognize handwritten digits on a Pi Pico"]
        )
    )
    # The key reached the planner (it tried the API), the API was unreachable: planned offline.
    assert result["ok"] and result["spec"]["board"] == "pico"
    assert "Cannot reach the Anthropic API" in result["notices"][0]
    assert "Planned with the offline planner instead." in result["notices"][0]
    seen = json.dumps(result) + " ".join(m.message for m in client.log_messages)
    seen += " ".join(m.message for m in client.messages)
    assert KEY not in seen
