"""The server's analysis layer over stdio: one analysis per version of a document shared by its
diagnostics, lens, hover and code actions; the project read again only when its files change;
the arena-margin setting; typed command arguments; one store of diagnostics."""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path
from typing import Any

import pytest
from lsprotocol import types as lsp
from pytest_lsp import LanguageClient

from tests.conftest import REPO
from tests.lsp.conftest import change_doc, diagnostics_for, open_doc
from tests.security.lsp_record import record_publications, record_traces, until, versions_of
from tinyforge import pipeline
from tinyforge.lsp.documents import Projects

SMALL = """\
import keras
from keras import layers

model = keras.Sequential([
    keras.Input(shape=(8, 8, 1)),
    layers.Conv2D(8, 3, padding="same", activation="relu"),
    layers.MaxPooling2D(2),
    layers.Flatten(),
    layers.Dense(10, activation="softmax"),
])
"""


def _project(tmp_path: Path, name: str = "proj") -> Path:
    shutil.copytree(REPO / "fixtures/lsp/over_budget", tmp_path / name)
    return tmp_path / name


async def _execute(client: LanguageClient, command: str, *arguments: Any) -> Any:
    return await client.workspace_execute_command_async(
        lsp.ExecuteCommandParams(command=command, arguments=list(arguments))
    )


def _everything_at(uri: str, line: int) -> tuple[Any, Any, Any]:
    document = lsp.TextDocumentIdentifier(uri=uri)
    at = lsp.Position(line=line, character=12)
    return (
        lsp.CodeLensParams(text_document=document),
        lsp.CodeActionParams(
            text_document=document,
            range=lsp.Range(start=at, end=at),
            context=lsp.CodeActionContext(diagnostics=[]),
        ),
        lsp.HoverParams(text_document=document, position=at),
    )


async def test_one_analysis_per_version_for_every_request(
    client: LanguageClient, tmp_path: Path
) -> None:
    traces = record_traces(client)
    published = record_publications(client)
    uri = open_doc(client, _project(tmp_path) / "small.py", SMALL)
    await until(lambda: 1 in versions_of(published, uri))
    change_doc(client, uri, SMALL.replace("Conv2D(8,", "Conv2D(12,"), 2)
    lens, action, hover = _everything_at(uri, 5)
    for _ in range(3):  # as an editor asks after each keystroke and cursor move
        await client.text_document_code_lens_async(lens)
        await client.text_document_code_action_async(action)
        assert await client.text_document_hover_async(hover) is not None
    await until(lambda: 2 in versions_of(published, uri))
    made = [t for t in traces if t.startswith(f"new analysis of {uri} v2")]
    assert len(made) == 1, traces  # the debounced diagnostics reused the requests' analysis


def test_the_project_is_read_again_only_when_its_files_change(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tinyforge.lsp import documents

    project = tmp_path / "digits"
    pipeline.new_project("Recognize handwritten digits on an Arduino Nano 33 BLE Sense", project)
    reads: list[Path] = []
    load = documents.load_context
    monkeypatch.setattr(documents, "load_context", lambda p, b: reads.append(p) or load(p, b))
    projects = Projects()
    first = projects.context_of(project / "train.py", None)
    assert projects.context_of(project / "train.py", None) is first and len(reads) == 1
    spec = project / "tinyforge.toml"
    spec.write_text(spec.read_text().replace("ram_bytes = 262144", "ram_bytes = 131072"))
    os.utime(spec, ns=(spec.stat().st_atime_ns, spec.stat().st_mtime_ns + 1_000_000))
    changed = projects.context_of(project / "train.py", None)
    assert len(reads) == 2 and changed.budget is not None and changed.budget.ram_bytes == 131072
    assert projects.context_of(project / "train.py", "pico") is not changed  # another setting


async def test_arena_margin_setting_counts_against_ram(
    client: LanguageClient, tmp_path: Path
) -> None:
    uri = open_doc(client, _project(tmp_path) / "small.py", SMALL)
    assert await diagnostics_for(client, uri) == []
    status = await _execute(client, "tinyforge.projectStatus", uri)
    client.workspace_did_change_configuration(
        lsp.DidChangeConfigurationParams(settings={"tinyforge": {"arenaMargin": 300 * 1024}})
    )
    found = await diagnostics_for(client, uri)
    (over,) = [d for d in found if d.code == "over-budget-ram"]
    assert re.search(r"tensor arena ≈ [\d.]+ KB \+ 300\.0 KB margin", over.message), over.message
    lens, _, _ = _everything_at(uri, 5)
    (shown,) = await client.text_document_code_lens_async(lens) or []
    assert shown.command is not None and "+ 300.0 KB margin)" in shown.command.title
    margined = await _execute(client, "tinyforge.projectStatus", uri)
    assert margined["ram_bytes_estimate"] == status["ram_bytes_estimate"] + 300 * 1024
    assert margined["fits"] is False and status["fits"] is True


async def test_commands_take_typed_arguments(client: LanguageClient, tmp_path: Path) -> None:
    bad = await _execute(client, "tinyforge.verify", str(tmp_path), {"samples": "many"})
    assert bad["ok"] is False and "options argument is not valid" in bad["error"], bad
    too_many = await _execute(client, "tinyforge.selectBoard", "pico", "extra")
    assert too_many == {
        "ok": False,
        "error": "tinyforge.selectBoard takes at most 1 argument, not 2.",
    }
    missing = await _execute(client, "tinyforge.newProject", "digits on a Pico")
    assert missing["ok"] is False and "folder" in missing["error"] and missing["notices"] == []
    not_a_project = await _execute(client, "tinyforge.fit", str(tmp_path), {"budget_ram": "64KB"})
    assert not_a_project == {
        "ok": False,
        "error": f"{tmp_path} is not in a TinyForge project (no tinyforge.toml).",
    }


async def test_a_document_in_a_folder_with_a_space(client: LanguageClient, tmp_path: Path) -> None:
    # VS Code sends such a URI as %20; pygls keeps documents by the unquoted one.
    uri = open_doc(client, _project(tmp_path, "my project") / "small.py", SMALL)
    assert "%20" in uri
    assert await diagnostics_for(client, uri) == []
    lens, _, _ = _everything_at(uri, 5)
    assert await client.text_document_code_lens_async(lens)


async def test_missing_tflm_library_quick_fix(client: LanguageClient, tmp_path: Path) -> None:
    project = tmp_path / "digits"
    pipeline.new_project("Recognize handwritten digits on an Arduino Nano 33 BLE Sense", project)
    ini = project / "platformio.ini"
    bare = re.sub(r"lib_deps =\n(?:[ \t]+.*\n)+", "", ini.read_text())
    uri = open_doc(client, ini, bare, "ini")
    (missing,) = [d for d in await diagnostics_for(client, uri) if d.code == "missing-tflm-library"]
    actions = await client.text_document_code_action_async(
        lsp.CodeActionParams(
            text_document=lsp.TextDocumentIdentifier(uri=uri),
            range=missing.range,
            context=lsp.CodeActionContext(diagnostics=[missing]),
        )
    )
    (fix,) = [a for a in actions or [] if isinstance(a, lsp.CodeAction) and a.edit]
    assert fix.title == "Add the TensorFlow Lite Micro library to platformio.ini"
    assert fix.edit is not None and fix.edit.changes is not None
    (edit,) = fix.edit.changes[uri]
    assert "spaziochirale/Chirale_TensorFLowLite" in edit.new_text
