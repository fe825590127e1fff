"""End to end on scikit-learn's digits: the README's two commands, checked from the outside."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.conftest import run_cli, set_epochs
from tinyforge.memory.tflite_model import load_tflite, tflm_resolver_method

REQUEST = "Recognize handwritten digits on an Arduino Nano 33 BLE Sense"


@pytest.fixture(scope="module")
def digits_project(
    tmp_path_factory: pytest.TempPathFactory,
) -> tuple[Path, subprocess.CompletedProcess[str]]:
    project = tmp_path_factory.mktemp("e2e") / "digits"
    new = run_cli("new", REQUEST, "--out", str(project))
    assert new.returncode == 0, new.stderr
    set_epochs(project, 20)
    build = run_cli("build", str(project))
    return project, build


def test_new_writes_the_project(
    digits_project: tuple[Path, subprocess.CompletedProcess[str]],
) -> None:
    project, _ = digits_project
    for name in ("tinyforge.toml", "train.py", "platformio.ini"):
        assert (project / name).is_file(), name
    ini = (project / "platformio.ini").read_text()
    assert "board = nano33ble" in ini
    assert "platform = nordicnrf52" in ini


def test_build_produces_everything(
    digits_project: tuple[Path, subprocess.CompletedProcess[str]],
) -> None:
    project, build = digits_project
    assert build.returncode == 0, build.stdout + build.stderr
    for name in (
        "model.keras",
        "model.tflite",
        "src/main.cpp",
        "lib/model/model_data.h",
        "lib/model/model_data.cc",
        "report.json",
    ):
        assert (project / name).is_file(), name
    assert "Fits nano33ble" in build.stdout


def test_report_figures(digits_project: tuple[Path, subprocess.CompletedProcess[str]]) -> None:
    project, _ = digits_project
    report = json.loads((project / "report.json").read_text())
    assert report["int8_accuracy"] >= 0.9
    assert report["float_accuracy"] >= 0.9
    assert report["tflm_accuracy"] >= 0.9
    assert report["model_bytes"] == (project / "model.tflite").stat().st_size
    assert report["arena_bytes"] > 0
    assert 0 < report["arena_bytes_target"] <= report["arena_bytes"]
    assert report["fits"] is True and report["violations"] == []
    assert report["budget"] == {"ram_bytes": 262144, "flash_bytes": 983040}
    assert report["ram_bytes_estimate"] > report["arena_bytes_target"]
    assert report["flash_bytes_estimate"] > report["model_bytes"]
    stages = {"train", "convert", "verify", "emit", "device", "report"}
    assert set(report["stage_seconds"]) == stages


def test_model_is_full_int8(digits_project: tuple[Path, subprocess.CompletedProcess[str]]) -> None:
    project, _ = digits_project
    model = load_tflite(project / "model.tflite")
    assert model.tensors[model.inputs[0]].dtype == "int8"
    assert model.tensors[model.outputs[0]].dtype == "int8"
    weights = [t for t in model.tensors if t.is_constant and len(t.shape) > 1]
    assert weights and all(t.dtype == "int8" for t in weights)


def test_main_cpp_has_measured_arena_and_exact_ops(
    digits_project: tuple[Path, subprocess.CompletedProcess[str]],
) -> None:
    project, _ = digits_project
    report = json.loads((project / "report.json").read_text())
    main = (project / "src/main.cpp").read_text()
    measured = re.search(r"constexpr size_t kMeasuredArenaBytes = (\d+);", main)
    assert measured and int(measured.group(1)) == report["arena_bytes"]
    margin = re.search(r"constexpr size_t kArenaMarginBytes = (\d+);", main)
    assert margin and int(margin.group(1)) == report["arena_bytes_firmware"] - report["arena_bytes"]
    assert int(margin.group(1)) > 0 and int(margin.group(1)) % 16 == 0
    assert (
        "constexpr size_t kTensorArenaSize = kMeasuredArenaBytes + kArenaMarginBytes;" in main
    )
    registered = set(re.findall(r"resolver\.(Add\w+)\(\);", main))
    model = load_tflite(project / "model.tflite")
    assert registered == {tflm_resolver_method(op.op) for op in model.ops}
    count = re.search(r"MicroMutableOpResolver<kNumOps>", main)
    assert count and f"constexpr int kNumOps = {len(registered)};" in main


def test_c_array_matches_tflite_and_compiles(
    digits_project: tuple[Path, subprocess.CompletedProcess[str]], tmp_path: Path
) -> None:
    project, _ = digits_project
    cc = (project / "lib/model/model_data.cc").read_text()
    body = cc.split("g_model_data[] = {", 1)[1].split("};", 1)[0]
    values = bytes(int(v, 16) for v in re.findall(r"0x([0-9a-f]{2})", body))
    assert values == (project / "model.tflite").read_bytes()
    header = (project / "lib/model/model_data.h").read_text()
    assert f"kModelDataLen = {len(values)};" in header
    assert "alignas(16)" in cc
    gxx = shutil.which("g++")
    assert gxx, "g++ is installed by `make test` (scripts/system-deps.sh)"
    obj = tmp_path / "model_data.o"
    result = subprocess.run(
        [
            gxx,
            "-std=c++17",
            "-Wall",
            "-Werror",
            "-c",
            str(project / "lib/model/model_data.cc"),
            "-I",
            str(project / "lib/model"),
            "-o",
            str(obj),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert obj.stat().st_size > len(values)


def test_rebuild_keeps_user_edits(
    digits_project: tuple[Path, subprocess.CompletedProcess[str]],
) -> None:
    project, _ = digits_project
    main = project / "src/main.cpp"
    edited = main.read_text() + "\n// my own change\n"
    main.write_text(edited)
    from tinyforge.generate.files import write_generated

    result = write_generated(project, {"src/main.cpp": "// regenerated\n"})
    assert main.read_text() == edited
    assert result.kept == ["src/main.cpp"]
    assert (project / "src/main.cpp.tinyforge-new").read_text() == "// regenerated\n"


def test_over_budget_names_what_is_too_big(
    digits_project: tuple[Path, subprocess.CompletedProcess[str]], tmp_path: Path
) -> None:
    project, _ = digits_project
    tight = tmp_path / "tight"
    shutil.copytree(project, tight)
    spec = tight / "tinyforge.toml"
    spec.write_text(re.sub(r"ram_bytes = \d+", "ram_bytes = 40000", spec.read_text()))
    set_epochs(tight, 3)
    result = run_cli("build", str(tight))
    assert result.returncode == 3, result.stdout + result.stderr
    out = " ".join(result.stdout.split())
    assert "Does not fit: RAM" in out
    assert "exceeds the 39.1 KB budget on nano33ble" in out
    assert "tensor arena" in out and "largest tensor" in out
    report = json.loads((tight / "report.json").read_text())
    assert report["fits"] is False
    assert [v["resource"] for v in report["violations"]] == ["ram"]
    assert report["violations"][0]["limit"] == 40000
