"""The data decides, in the editor (issue 14), over stdio: a class the dataset lacks is an error
on `classes` with a quick fix that takes the data's labels (applied, then built), and a project
planned without data shows which class folders to fill."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from lsprotocol import types as lsp
from pytest_lsp import LanguageClient

from tests.conftest import FRUIT_CSV, run_cli, set_epochs
from tests.lsp.conftest import diagnostics_for, open_doc
from tinyforge import pipeline
from tinyforge.spec import ProjectSpec


def _apply(text: str, edits: list[lsp.TextEdit]) -> str:
    lines = text.splitlines(keepends=True)
    offsets = [0]
    for line in lines:
        offsets.append(offsets[-1] + len(line))
    for edit in sorted(
        edits, key=lambda e: (e.range.start.line, e.range.start.character), reverse=True
    ):
        a = offsets[edit.range.start.line] + edit.range.start.character
        b = offsets[edit.range.end.line] + edit.range.end.character
        text = text[:a] + edit.new_text + text[b:]
    return text


def mismatch_project(tmp_path: Path) -> Path:
    data = tmp_path / "data"
    data.mkdir()
    shutil.copy(FRUIT_CSV, data / "fruit_data.csv")
    project = tmp_path / "fruit"
    pipeline.new_project(
        "classify apple, kiwi and orange from the RGB readings in "
        f"{data / 'fruit_data.csv'} (label column Fruit) on a Nano 33 BLE Sense",
        project,
    )
    set_epochs(project, 30)
    return project


async def test_label_mismatch_is_shown_and_the_quick_fix_builds(
    client: LanguageClient, tmp_path: Path
) -> None:
    project = mismatch_project(tmp_path)
    spec_path = project / "tinyforge.toml"
    text = spec_path.read_text()
    uri = open_doc(client, spec_path, text, "toml")
    found = [d for d in await diagnostics_for(client, uri) if d.code == "data.label-mismatch"]
    assert len(found) == 1, found
    (diagnostic,) = found
    assert diagnostic.severity == lsp.DiagnosticSeverity.Error
    assert text.splitlines()[diagnostic.range.start.line].startswith("classes")
    assert "'kiwi', which is not in the data" in diagnostic.message
    assert "has apple, banana, orange" in diagnostic.message

    actions = await client.text_document_code_action_async(
        lsp.CodeActionParams(
            text_document=lsp.TextDocumentIdentifier(uri=uri),
            range=diagnostic.range,
            context=lsp.CodeActionContext(diagnostics=[diagnostic]),
        )
    )
    fixes = [
        a
        for a in actions or []
        if isinstance(a, lsp.CodeAction) and a.kind == lsp.CodeActionKind.QuickFix
    ]
    (fix,) = [a for a in fixes if "dataset's labels" in a.title]
    assert fix.edit is not None and fix.edit.document_changes
    (change,) = fix.edit.document_changes
    assert isinstance(change, lsp.TextDocumentEdit)
    assert change.text_document.uri == uri
    fixed = _apply(text, list(change.edits))  # type: ignore[arg-type]
    assert spec_path.read_text() == text  # the server proposes, the client applies
    spec_path.write_text(fixed)
    assert ProjectSpec.load(project).classes == ["apple", "banana", "orange"]

    build = run_cli("build", str(project), "--json")
    assert build.returncode == 0, build.stderr
    report = json.loads(build.stdout)
    assert report["classes"] == ["apple", "banana", "orange"]


async def test_project_planned_without_data_shows_the_folders_to_fill(
    client: LanguageClient, tmp_path: Path
) -> None:
    project = tmp_path / "kws"
    pipeline.new_project(
        "I want keyword spotting for the words yes and no on the Nano 33 BLE Sense", project
    )
    spec_path = project / "tinyforge.toml"
    text = spec_path.read_text()
    uri = open_doc(client, spec_path, text, "toml")
    found = {d.code: d for d in await diagnostics_for(client, uri)}
    waiting = found["data.not-ready"]
    assert text.splitlines()[waiting.range.start.line].startswith("path")
    assert "data/yes" in waiting.message and "data/silence" in waiting.message
    assert "16 kHz mono WAV" in waiting.message
    assert "data.label-mismatch" not in found


async def test_create_project_action_brings_the_data_folder_to_fill(
    client: LanguageClient, tmp_path: Path
) -> None:
    text = "# tinyml: keyword spotting for the words yes and no on the Nano 33 BLE Sense\n"
    uri = open_doc(client, tmp_path / "notes.py", text)
    actions = await client.text_document_code_action_async(
        lsp.CodeActionParams(
            text_document=lsp.TextDocumentIdentifier(uri=uri),
            range=lsp.Range(
                start=lsp.Position(line=0, character=3), end=lsp.Position(line=0, character=3)
            ),
            context=lsp.CodeActionContext(diagnostics=[]),
        )
    )
    (create,) = [a for a in actions or [] if a.title.startswith("Create TinyML project")]
    assert create.edit is not None
    changes = create.edit.document_changes or []
    created = {
        Path(c.uri).relative_to(Path(changes[0].uri).parent).as_posix()
        for c in changes
        if isinstance(c, lsp.CreateFile)
    }
    assert {"tinyforge.toml", "data/README.md", "data/yes/.gitkeep", "data/unknown/.gitkeep"} <= (
        created
    )
    readme = next(
        c.edits[0].new_text
        for c in changes
        if isinstance(c, lsp.TextDocumentEdit) and c.text_document.uri.endswith("data/README.md")
    )
    assert "16 kHz mono WAV" in readme
