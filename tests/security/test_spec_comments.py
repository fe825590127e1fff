"""A CSV build that corrects input_shape keeps the user's comments in tinyforge.toml."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from tinyforge import datasets, pipeline
from tinyforge.spec import ProjectSpec

pytestmark = pytest.mark.security

SPEC = """\
# My fruit sorter: keep this note.
name = "fruit"
task = "sensor_classification"
board = "nano33ble"
input_shape = [5]  # wrong on purpose: the CSV decides

[dataset]
kind = "csv"
path = "data.csv"
label_column = "label"  # the column with the fruit

[budget]
ram_bytes = 262144
flash_bytes = 983040
"""


def test_input_shape_from_the_csv_keeps_comments(tmp_path: Path) -> None:
    rows = ["a,b,c,label"] + [
        f"{i},{i * 2},{i % 3},{'apple' if i % 2 else 'pear'}" for i in range(40)
    ]
    (tmp_path / "data.csv").write_text("\n".join(rows) + "\n")
    (tmp_path / "tinyforge.toml").write_text(SPEC)
    spec = ProjectSpec.load(tmp_path)
    summary = datasets.validate(spec, tmp_path)
    fixed = pipeline._fit_input_shape_to_csv(spec, summary, tmp_path)
    assert fixed.input_shape == [3] and spec.input_shape == [5]
    text = (tmp_path / "tinyforge.toml").read_text()
    assert "# My fruit sorter: keep this note." in text
    assert "# the column with the fruit" in text
    data = tomllib.loads(text)
    assert data["input_shape"] == [3]
    assert any("from the CSV's feature columns" in a for a in data["assumptions"])
