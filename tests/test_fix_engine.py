"""One fix engine: the editor's quick fixes and `tinyforge repair` share their tables, their
edits (repair/edits.py) and the one function that turns a fix into a WorkspaceEdit."""

from __future__ import annotations

import re
from pathlib import Path

from lsprotocol import types as lsp

from tests.conftest import REPO
from tinyforge import pipeline
from tinyforge.boards import get_board
from tinyforge.lsp.preview import Confirmation, workspace_edit
from tinyforge.memory.keras_layers import ModelEstimate, estimate
from tinyforge.memory.keras_source import find_models
from tinyforge.repair import diagnose, propose_fixes
from tinyforge.repair.edits import (
    SHRINK_STEP,
    needs_tflm_library,
    replace_activations,
    replacement_for,
    shrink,
)
from tinyforge.repair.fixes import FileEdit, end_of, split_lines

TABLES = ("SHRINKABLE", "TFLM_LIBRARY_HINTS", "ACTIVATION_REPLACEMENTS", "ACTIVATION_OPS")

SCRIPT = """\
import keras
from keras import layers

model = keras.Sequential([
    keras.Input(shape=(32, 32, 1)),
    layers.Conv2D(64, 3, padding="same", activation='gelu', name="gelu_conv"),
    layers.Conv2D(32, 3, padding="same", activation="relu"),
    layers.Flatten(),
    layers.Dense(10, activation="softmax"),
])
"""


def test_each_table_is_defined_once() -> None:
    sources = list((REPO / "server" / "tinyforge").rglob("*.py"))
    for table in TABLES:
        pattern = re.compile(rf"^{table}\b[^=\n]*=", re.M)
        where = [p for p in sources if pattern.search(p.read_text(encoding="utf-8"))]
        assert len(where) == 1, (table, where)


def test_an_esp32_project_needs_no_tflm_library(tmp_path: Path) -> None:
    # ESP32's Arduino core ships TFLM: the editor never flagged it, repair did (a false
    # "the firmware will not compile" and a fix adding a second TFLM).
    project = tmp_path / "pets"
    pipeline.new_project("classify cat vs dog photos on an ESP32-CAM", project)
    assert not needs_tflm_library("", get_board("esp32cam"))
    assert [f for f in diagnose(project) if f.stage == "static"] == []
    assert "add-tflm-library" not in [f.rule for f in propose_fixes(project).fixes]
    assert needs_tflm_library("", get_board("nano33ble"))
    assert not needs_tflm_library("tflm_cortexm", get_board("nano33ble"))


def test_activations_are_replaced_in_their_literal_only() -> None:
    (model,) = find_models(SCRIPT, {})
    supported = frozenset({"RELU", "CONV_2D", "SOFTMAX", "LOGISTIC", "TANH"})
    gelu = [layer for layer in model.layers if layer.config.get("activation") == "gelu"]
    after, changes = replace_activations(SCRIPT, gelu, supported)
    assert "activation='relu', name=\"gelu_conv\"" in after  # its quotes kept, the name not
    assert changes == ['Conv2D activation "gelu" → "relu"']
    assert replacement_for("selu", supported) == "relu"  # ELU is not in this TFLM: relu fuses
    assert replacement_for("softsign", supported) == "tanh"


def test_shrink_scales_all_but_the_output_layer_until_it_fits() -> None:
    (model,) = find_models(SCRIPT.replace("'gelu'", "'relu'"), {})
    full = estimate(model).arena_bytes_target

    def fits(est: ModelEstimate) -> bool:
        return est.arena_bytes_target <= full * 0.6

    shrunk = shrink(SCRIPT, model, fits)
    assert shrunk is not None and shrunk.fits
    assert shrunk.factor < 0.6 < shrunk.factor / SHRINK_STEP  # the first step that fits
    assert "Dense(10," in shrunk.after and "Conv2D(64," not in shrunk.after
    never = shrink(SCRIPT, model, lambda est: False)
    assert never is not None and not never.fits


def test_a_changed_line_is_edited_on_that_line() -> None:
    before = "a = 64\r\nb\x0cc\nd = 1"
    after = "a = 48\r\nb\x0cc\nd = 2"
    edit = FileEdit("x.py", before, after)
    assert edit.line_edits() == [((0, 0), (0, 6), "a = 48"), ((2, 0), (2, 5), "d = 2")]
    assert split_lines(before) == ["a = 64\r\n", "b\x0cc\n", "d = 1"]  # \f breaks no line
    assert end_of("é😀\n") == (1, 0) and end_of("😀") == (0, 2)  # UTF-16, as LSP counts


def test_workspace_edit_forms(tmp_path: Path) -> None:
    (tmp_path / "train.py").write_text("x = 1\n")
    plain = workspace_edit(tmp_path, [FileEdit("train.py", "x = 1\n", "x = 2\n")])
    uri = (tmp_path / "train.py").as_uri()
    assert plain.changes is not None and plain.changes[uri][0].new_text == "x = 2"
    assert plain.document_changes is not None  # what clients with documentChanges use
    created = workspace_edit(tmp_path, [FileEdit("new.py", "", "y = 1\n")])
    assert created.changes is None
    create, text = created.document_changes or []
    assert isinstance(create, lsp.CreateFile) and create.options is not None
    assert create.options.overwrite is False and create.options.ignore_if_exists is False
    assert isinstance(text, lsp.TextDocumentEdit) and text.edits[0].new_text == "y = 1\n"
    confirm = Confirmation("id", "label", "why")
    previewed = workspace_edit(
        tmp_path, [FileEdit("train.py", "x = 1\n", "x = 2\n")], confirm=confirm
    )
    assert previewed.changes is None and previewed.change_annotations is not None
    (whole,) = previewed.document_changes or []
    assert isinstance(whole, lsp.TextDocumentEdit)
    (annotated,) = whole.edits
    assert isinstance(annotated, lsp.AnnotatedTextEdit) and annotated.new_text == "x = 2\n"
    assert annotated.range.end == lsp.Position(line=1, character=0)
