"""A long command answers a client that cannot show progress (no window.workDoneProgress)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
import pytest_lsp
from lsprotocol import types as lsp
from pytest_lsp import ClientServerConfig, LanguageClient

from tests.lsp.conftest import SERVER

pytestmark = pytest.mark.security


@pytest_lsp.fixture(config=ClientServerConfig(server_command=SERVER))
async def plain_client(lsp_client: LanguageClient, tmp_path: Path):
    await lsp_client.initialize_session(
        lsp.InitializeParams(
            capabilities=lsp.ClientCapabilities(),  # no window.workDoneProgress
            root_uri=tmp_path.as_uri(),
            initialization_options={"board": "nano33ble"},
        )
    )
    yield
    await lsp_client.shutdown_session()


async def test_build_answers_without_progress_capability(
    plain_client: LanguageClient, tmp_path: Path
) -> None:
    empty = tmp_path / "not-a-project"
    empty.mkdir()
    result = await asyncio.wait_for(
        plain_client.workspace_execute_command_async(
            lsp.ExecuteCommandParams(command="tinyforge.build", arguments=[str(empty)])
        ),
        timeout=20,
    )
    assert result["ok"] is False and "tinyforge.toml" in result["error"]
    # The server asked for no progress token (a client without the capability may never
    # answer that request, and the command would wait on it forever); the log has the job.
    assert not plain_client.progress_reports
    assert any("TinyForge: building" in m.message for m in plain_client.log_messages)
