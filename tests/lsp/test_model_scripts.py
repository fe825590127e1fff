"""Keras model scripts over stdio: budget diagnostics, lens, hover, and the shrink fix."""

from __future__ import annotations

import shutil
from pathlib import Path

from lsprotocol import types as lsp
from pytest_lsp import LanguageClient

from tests.conftest import REPO
from tests.lsp.conftest import change_doc, diagnostics_for, open_doc

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


def _project(tmp_path: Path) -> Path:
    shutil.copytree(REPO / "fixtures/lsp/over_budget", tmp_path / "proj")
    return tmp_path / "proj"


async def test_over_budget_error_on_the_layer(client: LanguageClient, tmp_path: Path) -> None:
    project = _project(tmp_path)
    uri = open_doc(client, project / "model.py", (project / "model.py").read_text())
    found = await diagnostics_for(client, uri)
    errors = [d for d in found if d.severity == lsp.DiagnosticSeverity.Error]
    assert len(errors) == 1
    assert errors[0].range.start.line == 10  # the first Conv2D: 96×96×64
    assert "exceeds the nano33ble RAM budget of 256.0 KB" in errors[0].message
    assert "largest: Conv2D output 96×96×64 = 576.0 KB" in errors[0].message


async def test_shrink_action_fits_after_applying(client: LanguageClient, tmp_path: Path) -> None:
    project = _project(tmp_path)
    text = (project / "model.py").read_text()
    uri = open_doc(client, project / "model.py", text)
    found = await diagnostics_for(client, uri)
    actions = await client.text_document_code_action_async(
        lsp.CodeActionParams(
            text_document=lsp.TextDocumentIdentifier(uri=uri),
            range=found[0].range,
            context=lsp.CodeActionContext(diagnostics=found),
        )
    )
    shrink = [a for a in actions or [] if a.title.startswith("Shrink model to fit nano33ble")]
    assert len(shrink) == 1 and shrink[0].edit and shrink[0].edit.changes
    edits = shrink[0].edit.changes[uri]
    lines = text.splitlines(keepends=True)
    for edit in sorted(
        edits, key=lambda e: (e.range.start.line, e.range.start.character), reverse=True
    ):
        line = lines[edit.range.start.line]
        lines[edit.range.start.line] = (
            line[: edit.range.start.character] + edit.new_text + line[edit.range.end.character :]
        )
    change_doc(client, uri, "".join(lines), 2)
    after = await diagnostics_for(client, uri)
    assert [d for d in after if d.severity == lsp.DiagnosticSeverity.Error] == []
    assert "Dense(num_classes" in "".join(lines)  # the output layer is never shrunk


async def test_within_budget_lens_and_hover(client: LanguageClient, tmp_path: Path) -> None:
    project = _project(tmp_path)
    uri = open_doc(client, project / "small.py", SMALL)
    assert await diagnostics_for(client, uri) == []
    lenses = await client.text_document_code_lens_async(
        lsp.CodeLensParams(text_document=lsp.TextDocumentIdentifier(uri=uri))
    )
    assert lenses and lenses[0].range.start.line == 3
    title = lenses[0].command.title
    assert title.startswith("flash ") and "/ 960.0 KB · RAM " in title and "/ 256.0 KB" in title
    hover = await client.text_document_hover_async(
        lsp.HoverParams(
            text_document=lsp.TextDocumentIdentifier(uri=uri),
            position=lsp.Position(line=5, character=12),
        )
    )
    assert hover is not None
    text = hover.contents.value
    assert "output shape: 8×8×8" in text and "parameters: 80" in text and "MACs: 4,608" in text


async def test_unsupported_layer_and_unknown_shape(client: LanguageClient, tmp_path: Path) -> None:
    project = _project(tmp_path)
    text = SMALL.replace("layers.MaxPooling2D(2)", 'layers.Activation("gelu")').replace(
        "layers.Conv2D(8,", "layers.Conv2D(width,"
    )
    uri = open_doc(client, project / "odd.py", text)
    found = await diagnostics_for(client, uri)
    assert len(found) == 1 and found[0].severity == lsp.DiagnosticSeverity.Information
    assert "filters is `width`" in found[0].message
    change_doc(client, uri, "width = 8\n" + text, 2)
    found = await diagnostics_for(client, uri)
    warnings = [d for d in found if d.severity == lsp.DiagnosticSeverity.Warning]
    assert len(warnings) == 1 and "GELU" in warnings[0].message
    assert warnings[0].range.start.line == 7


async def _actions(client: LanguageClient, uri: str, line: int) -> list[lsp.CodeAction]:
    result = await client.text_document_code_action_async(
        lsp.CodeActionParams(
            text_document=lsp.TextDocumentIdentifier(uri=uri),
            range=lsp.Range(
                start=lsp.Position(line=line, character=8), end=lsp.Position(line=line, character=8)
            ),
            context=lsp.CodeActionContext(diagnostics=[]),
        )
    )
    return [a for a in result or [] if isinstance(a, lsp.CodeAction)]


def _apply(text: str, edits: list[lsp.TextEdit]) -> str:
    lines = text.splitlines(keepends=True)
    for edit in sorted(
        edits, key=lambda e: (e.range.start.line, e.range.start.character), reverse=True
    ):
        row = edit.range.start.line
        line = lines[row] if row < len(lines) else ""
        new = line[: edit.range.start.character] + edit.new_text + line[edit.range.end.character :]
        if row < len(lines):
            lines[row] = new
        else:
            lines.append(new)
    return "".join(lines)


async def test_unsupported_activation_is_replaced(client: LanguageClient, tmp_path: Path) -> None:
    project = _project(tmp_path)
    text = SMALL.replace('activation="relu"', 'activation="gelu"')
    uri = open_doc(client, project / "gelu.py", text)
    found = await diagnostics_for(client, uri)
    assert [d.code for d in found] == ["unsupported-op"] and "GELU" in found[0].message
    fixes = [a for a in await _actions(client, uri, 5) if a.title.startswith("Replace activation")]
    assert len(fixes) == 1 and fixes[0].edit and fixes[0].edit.changes
    fixed = _apply(text, fixes[0].edit.changes[uri])
    assert 'activation="relu"' in fixed
    change_doc(client, uri, fixed, 2)
    assert await diagnostics_for(client, uri) == []


FLOAT_SCRIPT = (
    SMALL
    + """
import numpy as np
import tensorflow as tf

x_train = np.zeros((10, 8, 8, 1), dtype="float32")
converter = tf.lite.TFLiteConverter.from_keras_model(
    model
)
open("model.tflite", "wb").write(converter.convert())
"""
)


async def test_use_int8_quantization_action(client: LanguageClient, tmp_path: Path) -> None:
    project = _project(tmp_path)
    uri = open_doc(client, project / "convert.py", FLOAT_SCRIPT)
    await diagnostics_for(client, uri)
    int8 = [a for a in await _actions(client, uri, 0) if a.title == "Use int8 quantization"]
    assert len(int8) == 1 and int8[0].edit and int8[0].edit.changes
    fixed = _apply(FLOAT_SCRIPT, int8[0].edit.changes[uri])
    compile(fixed, "convert.py", "exec")  # still valid Python
    assert "converter.representative_dataset = representative_dataset" in fixed
    assert fixed.index("representative_dataset =") < fixed.index("converter.convert()")
    assert "for sample in x_train[:300]:" in fixed
    change_doc(client, uri, fixed, 2)
    await diagnostics_for(client, uri)
    assert not [a for a in await _actions(client, uri, 0) if a.title == "Use int8 quantization"]
