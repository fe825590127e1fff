"""Generation: the model is sized for the budget; files render; scripts are valid Python."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from tinyforge import generate
from tinyforge.generate.architecture import choose_architecture
from tinyforge.spec import ProjectSpec


def make_spec(
    shape: list[int], ram: int = 262144, flash: int = 983040, **extra: object
) -> ProjectSpec:
    data = {
        "task": "image_classification",
        "board": "nano33ble",
        "input_shape": shape,
        "dataset": {"kind": "digits"},
        "budget": {"ram_bytes": ram, "flash_bytes": flash},
        "num_classes": 10,
    }
    data.update(extra)
    return ProjectSpec.from_dict(data)


def test_smaller_ram_budget_gives_a_smaller_model() -> None:
    shape = [96, 96, 1]
    roomy = choose_architecture(make_spec(shape), 2, 200_000, 500_000)
    tight = choose_architecture(make_spec(shape), 2, 30_000, 500_000)
    assert tight.arena_estimate(tuple(shape)) <= 30_000
    assert roomy.arena_estimate(tuple(shape)) > tight.arena_estimate(tuple(shape))


def test_flash_budget_limits_parameters() -> None:
    shape = [32, 32, 3]
    tight = choose_architecture(make_spec(shape), 10, 200_000, 12_000)
    assert tight.flash_estimate() <= 12_000
    roomy = choose_architecture(make_spec(shape), 10, 200_000, 500_000)
    assert roomy.params > tight.params


def test_impossible_budget_says_so() -> None:
    arch = choose_architecture(make_spec([96, 96, 3]), 2, 1_000, 1_000)
    assert any("over the budget" in note for note in arch.notes)


@pytest.mark.parametrize(
    "shape",
    [[8, 8, 1], [28, 28, 1], [32, 32, 3], [96, 96, 1], [49, 40, 1], [128, 3], [3], [12]],
)
def test_train_script_renders_valid_python(shape: list[int], tmp_path: Path) -> None:
    spec = make_spec(shape)
    files = generate.render_project(spec, tmp_path)
    tree = ast.parse(files["train.py"])
    names = {n.name for n in tree.body if isinstance(n, ast.FunctionDef)}
    assert {"load_data", "build_model", "split", "main"} <= names
    assert "INPUT_SHAPE = " + repr(tuple(shape)) in files["train.py"]


def test_csv_script_scales_inside_the_model(tmp_path: Path) -> None:
    spec = make_spec(
        [3],
        task="sensor_classification",
        dataset={"kind": "csv", "path": "data.csv", "label_column": "Fruit"},
        num_classes=3,
    )
    script = generate.render_project(spec, tmp_path)["train.py"]
    ast.parse(script)
    assert "layers.Normalization" in script and "normalizer.adapt" in script
    assert 'LABEL_COLUMN = "Fruit"' in script


def test_user_budget_below_board_goes_into_platformio_ini(tmp_path: Path) -> None:
    spec = make_spec([8, 8, 1], ram=65536)
    ini = generate.render_project(spec, tmp_path)["platformio.ini"]
    assert "board_upload.maximum_ram_size = 65536" in ini
    assert "board_upload.maximum_size" not in ini


def test_spec_round_trips_through_toml(tmp_path: Path) -> None:
    spec = make_spec([8, 8, 1], classes=[str(i) for i in range(10)], assumptions=["x"])
    spec.save(tmp_path)
    assert ProjectSpec.load(tmp_path) == spec
