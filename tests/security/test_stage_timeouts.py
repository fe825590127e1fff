"""A stage that runs too long is stopped, and the error names the stage."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from tinyforge import cli, generate, pipeline
from tinyforge.errors import StageError
from tinyforge.spec import ProjectSpec

pytestmark = pytest.mark.security

HANGS = "import time\ntime.sleep(120)\n"


def _project(tmp_path: Path, timeouts: dict[str, float] | None = None) -> Path:
    data: dict[str, object] = {
        "task": "image_classification",
        "board": "nano33ble",
        "input_shape": [8, 8, 1],
        "dataset": {"kind": "digits"},
        "budget": {"ram_bytes": 262144, "flash_bytes": 983040},
        "num_classes": 10,
    }
    if timeouts:
        data["timeouts"] = timeouts
    project = tmp_path / "proj"
    generate.write_project(ProjectSpec.from_dict(data), project)
    (project / "train.py").write_text(HANGS)  # the user's train.py: it never finishes
    return project


def test_spec_timeout_stops_training(tmp_path: Path) -> None:
    project = _project(tmp_path, {"train": 2})
    start = time.monotonic()
    with pytest.raises(StageError) as failed:
        pipeline.build(project, device=False)
    assert time.monotonic() - start < 60
    assert failed.value.stage == "train"
    assert "The train stage ran out of its 2 s (timeouts.train in tinyforge.toml" in str(
        failed.value
    )
    assert (project / "train.py").read_text() == HANGS  # the user's script is untouched


def test_flag_timeout_stops_training(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    project = _project(tmp_path)
    code = cli.main(["build", str(project), "--no-device", "--train-timeout", "2"])
    err = capsys.readouterr().err
    assert code == 2
    assert "ran out of its 2 s" in err and "--train-timeout" in err and "Traceback" not in err


def test_timeouts_are_in_the_schema() -> None:
    spec = ProjectSpec.from_dict(
        {
            "task": "image_classification",
            "board": "nano33ble",
            "input_shape": [8, 8, 1],
            "dataset": {"kind": "digits"},
            "budget": {"ram_bytes": 1000, "flash_bytes": 1000},
            "timeouts": {"train": 600, "convert": 120},
        }
    )
    assert "[timeouts]" in spec.to_toml()
    assert ProjectSpec.from_toml_text(spec.to_toml()).timeouts == spec.timeouts
    # A spec without timeouts writes no [timeouts] table: existing tinyforge.toml files stay.
    plain = spec.model_copy(update={"timeouts": None})
    assert "timeouts" not in plain.to_toml()


# -- ONNX conversion (`tinyforge convert model.onnx`): a real onnx2tf run, given too little time


def test_flag_timeout_stops_onnx_conversion(
    tiny_onnx: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "proj"
    start = time.monotonic()
    code = cli.main(
        ["convert", str(tiny_onnx), "--board", "nano33ble", "--out", str(out)]
        + ["--convert-timeout", "0.5"]
    )
    err = capsys.readouterr().err
    assert code == 2
    assert "error (convert): The convert stage ran out of its 0.5 s" in err
    assert "--convert-timeout" in err and "Traceback" not in err
    assert not out.exists()  # the new project folder is gone with the run
    assert time.monotonic() - start < 60


def test_spec_timeout_stops_onnx_conversion_of_a_project(
    tiny_onnx: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "proj"
    assert cli.main(["convert", str(tiny_onnx), "--board", "nano33ble", "--out", str(out)]) == 0
    with (out / "tinyforge.toml").open("a", encoding="utf-8") as spec:
        spec.write("\n[timeouts]\nconvert = 0.5\n")
    before = {p: p.read_bytes() for p in out.rglob("*") if p.is_file()}
    capsys.readouterr()
    assert cli.main(["convert", str(out)]) == 2  # the project's model, converted again
    err = capsys.readouterr().err
    assert "error (convert): The convert stage ran out of its 0.5 s (timeouts.convert in" in err
    assert {p: p.read_bytes() for p in out.rglob("*") if p.is_file()} == before  # restored
