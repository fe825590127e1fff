"""Model and data health: useless, fragile or crashing models are called out; good ones pass.

The bad cases are built here for real: a CSV with shuffled labels and the shared CSV whose
labels do not follow from its features (chance level, exit 4), a class with two samples (the
build stops before training), duplicate rows, and an int8 model whose softmax input scale is
degenerate because it was calibrated on constant data (TFLM aborts on it: inspect and the
build's verify stage must turn that into one sentence). The good case: the shared fruit CSV,
which needs scaling — the generated pipeline scales, so it learns and the check stays quiet.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import FRUIT_CSV, REPO, SHARED, run_cli, set_epochs
from tinyforge import pipeline
from tinyforge.errors import StageError
from tinyforge.health import data as data_checks
from tinyforge.health.baseline import Baseline, at_chance
from tinyforge.health.quant import check_tflite
from tinyforge.health.report import before_training
from tinyforge.spec import ProjectSpec

FRUIT_DATASET = SHARED / "data" / "seed-fruit-rgb" / "fruit_dataset.csv"
BOARD = "on an Arduino Nano 33 BLE Sense"


def write_csv(path: Path, rows: list[tuple], header: str = "a,b,c,kind") -> Path:
    lines = [header] + [",".join(str(v) for v in row) for row in rows]
    path.write_text("\n".join(lines) + "\n")
    return path


def blob_rows(counts: dict[str, int], seed: int = 0) -> list[tuple]:
    """Learnable rows: each class is a cloud of three features around its own centre."""
    rng = np.random.default_rng(seed)
    rows: list[tuple] = []
    for index, (name, n) in enumerate(counts.items()):
        centre = np.array([index % 2, index // 2, index % 3], dtype=float) * 4.0
        for values in centre + rng.normal(size=(n, 3)):
            rows.append((*(round(float(v), 4) for v in values), name))
    return rows


def new_csv_project(tmp_path: Path, csv: Path, label: str = "kind") -> Path:
    project = tmp_path / "project"
    request = f"Classify sensor readings in {csv} (label column {label}) {BOARD}"
    new = run_cli("new", request, "--out", str(project))
    assert new.returncode == 0, new.stdout + new.stderr
    return project


def codes(findings: list[dict]) -> dict[str, str]:
    return {f["code"]: f["severity"] for f in findings}


# -- data checks before training (no TensorFlow) ----------------------------------------------


def test_class_with_two_samples_stops_the_build_before_training(tmp_path: Path) -> None:
    csv = write_csv(tmp_path / "few.csv", blob_rows({"apple": 40, "banana": 40, "kiwi": 2}))
    project = new_csv_project(tmp_path, csv)
    started = time.monotonic()
    build = run_cli("build", str(project))
    assert build.returncode == 2, build.stdout + build.stderr
    said = " ".join(build.stderr.split())
    assert "Too few samples to train on: 'kiwi' has 2" in said
    assert "Collect more of 'kiwi'" in said
    # Stopped before anything ran: no training, nothing written.
    assert not (project / "model.keras").exists() and not (project / "artifacts").exists()
    assert time.monotonic() - started < 30


def test_duplicate_rows_are_reported(tmp_path: Path) -> None:
    rows = blob_rows({"apple": 30, "banana": 30})
    rows += rows[:12]  # exact repeats
    rows.append((*rows[0][:3], "banana"))  # the features of an apple row, labelled banana
    project = new_csv_project(tmp_path, write_csv(tmp_path / "dups.csv", rows))
    report = before_training(ProjectSpec.load(project), project)  # warnings do not stop it
    found = {f.code: f for f in report.findings}
    assert found["data.duplicates"].severity == "warning"
    assert "12 of 73 rows (16.4%) repeat another one exactly" in found["data.duplicates"].message
    assert found["data.conflicting-labels"].severity == "warning"
    assert "'apple' and 'banana'" in found["data.conflicting-labels"].message
    assert report.class_counts == {"apple": 42, "banana": 31}


def test_scaling_check_follows_the_training_script(tmp_path: Path) -> None:
    project = new_csv_project(tmp_path, FRUIT_CSV, label="Fruit")
    spec = ProjectSpec.load(project)
    generated = (project / "train.py").read_text()
    quiet = data_checks.check_dataset(spec, project, train_script=generated)
    assert "data.needs-scaling" not in {f.code for f in quiet.findings}
    # The same data under a script that feeds raw readings to the network.
    raw = "\n".join(ln for ln in generated.splitlines() if "Normalization" not in ln)
    fired = data_checks.check_dataset(spec, project, train_script=raw)
    finding = next(f for f in fired.findings if f.code == "data.needs-scaling")
    assert finding.severity == "warning" and "'Red' 0.523 ± 0.082" in finding.message


def test_chance_level_is_a_binomial_test() -> None:
    # 52 test samples, 4 balanced classes: 22 right (42%) is clearly better than guessing
    # (guessing does as well 0.5% of the time), 21 (40%) is not (1.1%).
    base = Baseline(52, 4, "apple", 0.25, balanced=True)
    assert at_chance(21 / 52, base) and not at_chance(22 / 52, base)
    assert base.chance_words() == "chance 25% for 4 balanced classes"


# -- builds -----------------------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("case", ["shuffled", "fruit_dataset"])
def test_chance_level_models_fail_the_build(tmp_path: Path, case: str) -> None:
    if case == "shuffled":
        rows = blob_rows({"north": 60, "south": 60, "east": 60, "west": 60}, seed=1)
        labels = np.random.default_rng(2).permutation([r[-1] for r in rows])
        shuffled = [(*r[:3], lab) for r, lab in zip(rows, labels, strict=True)]
        csv = write_csv(tmp_path / "shuffled.csv", shuffled)
        project = new_csv_project(tmp_path, csv)
    else:
        project = new_csv_project(tmp_path, FRUIT_DATASET, label="Fruit")
    set_epochs(project, 15)
    build = run_cli("build", str(project))
    assert build.returncode == 4, build.stdout + build.stderr
    report = json.loads((project / "report.json").read_text())
    health = report["health"]
    assert health["ok"] is False and report["fits"] is True
    chance = health["findings"][0]
    assert (chance["code"], chance["severity"]) == ("baseline.chance", "error")
    assert "≈ chance 25% for 4 balanced classes" in chance["message"]
    assert "the data does not predict the label" in chance["message"]
    assert "does not predict the label" in " ".join(build.stdout.split())
    baseline = health["baseline"]
    assert baseline["majority_accuracy"] == 0.25
    assert max(baseline["classical"].values()) < 0.4


@pytest.mark.slow
def test_csv_that_needs_scaling_learns_and_the_check_stays_quiet(tmp_path: Path) -> None:
    project = new_csv_project(tmp_path, FRUIT_CSV, label="Fruit")
    build = run_cli("build", str(project))
    assert build.returncode == 0, build.stdout + build.stderr
    report = json.loads((project / "report.json").read_text())
    assert report["int8_accuracy"] >= 0.85
    health = report["health"]
    found = codes(health["findings"])
    assert health["ok"] is True
    assert "data.needs-scaling" not in found
    assert not [c for c in found if c.startswith(("baseline.", "quant."))], found
    # What does fire is true of this file: 158 of its 256 rows repeat another row, and the
    # report says what the model scores on the test rows it never saw.
    assert found == {"data.duplicates": "warning", "data.test-leak": "warning"}
    assert health["splits"]["accuracy_unseen"] >= 0.8


# Writes model.keras (no biases: zero inputs give zero logits) and degenerate.tflite (the same
# network calibrated on zeros), in a child: TensorFlow never enters the test process.
DEGENERATE = REPO / "fixtures" / "health" / "degenerate_softmax.py"


@pytest.mark.slow
def test_degenerate_softmax_scale_is_named_and_survived(tmp_path: Path) -> None:
    subprocess.run(
        [sys.executable, str(DEGENERATE), str(tmp_path)], check=True, capture_output=True
    )
    tflite = tmp_path / "degenerate.tflite"

    findings = check_tflite(tflite)
    softmax = next(f for f in findings if f.code == "quant.softmax-scale")
    assert softmax.severity == "error" and softmax.where == "SOFTMAX (op 2)"
    assert "degenerate scale 7.8e-09" in softmax.message and "Calibrate on more" in softmax.fix

    # TFLM aborts its process on this model: inspect reports it in one sentence and lives on.
    inspect = run_cli("inspect", str(tflite), "--json")
    assert inspect.returncode == 3, inspect.stdout + inspect.stderr
    report = json.loads(inspect.stdout)
    assert "quant.softmax-scale" in codes(report["health"])
    (problem,) = [p for p in report["problems"] if "TFLM" in p]
    assert "crashed (SIGABRT)" in problem and "degenerate.tflite" in problem
    assert "preparing op SOFTMAX (node 2)" in problem and "degenerate scale 7.8e-09" in problem

    # The build's verify stage says the same: the user's model.keras, calibrated on their
    # (constant) training split, converts, then TFLM aborts while preparing SOFTMAX.
    project = new_csv_project(tmp_path, FRUIT_CSV, label="Fruit")
    (project / "model.keras").write_bytes((tmp_path / "model.keras").read_bytes())
    artifacts = project / "artifacts"
    artifacts.mkdir()
    rng = np.random.default_rng(0)
    x_test = rng.uniform(0, 1, (12, 3)).astype(np.float32)
    np.savez_compressed(
        artifacts / "splits.npz",
        x_train=np.zeros((40, 3), np.float32),
        y_train=np.arange(40) % 3,
        x_val=x_test[:3],
        y_val=np.arange(3),
        x_test=x_test,
        y_test=np.arange(12) % 3,
    )
    (artifacts / "metrics.json").write_text(json.dumps({"classes": ["apple", "banana", "orange"]}))
    with pytest.raises(StageError) as failed:
        pipeline.build(project, train=False)
    message = str(failed.value)
    assert message.startswith("TFLM crashed (SIGABRT) while allocating tensors for model.tflite")
    assert "preparing op SOFTMAX (node 2)" in message and "degenerate scale" in message
    assert "calibrate on more varied, representative data" in message
    assert not (project / "model.tflite").exists()  # the failed build left the project as it was
