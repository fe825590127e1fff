"""Anomaly detection on a CSV: an autoencoder scores readings; anomalies score above a threshold."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import run_cli, set_epochs


def make_readings(path: Path, labelled: bool = True) -> Path:
    """Normal readings lie near a 2-D plane in 4-D; faults do not."""
    rng = np.random.default_rng(7)
    a, b = rng.normal(size=(2, 400))
    normal = np.stack([a, b, a + b, a - 0.5 * b], axis=1) + 0.05 * rng.normal(size=(400, 4))
    faults = rng.normal(size=(40, 4)) * 1.5
    faults[:, 2] += 3.0
    rows = [(*r, "ok") for r in normal] + [(*r, "fault") for r in faults]
    header = "rpm,temp,vib_x,vib_y" + (",state" if labelled else "")
    lines = [header] + [
        ",".join(f"{v:.4f}" for v in r[:4]) + (f",{r[4]}" if labelled else "") for r in rows
    ]
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.mark.slow
def test_anomaly_csv_builds(tmp_path: Path) -> None:
    data = make_readings(tmp_path / "motor.csv")
    project = tmp_path / "motor"
    request = (
        f"Detect anomalies in motor readings from {data} (label column state) on a Nucleo F401RE"
    )
    new = run_cli("new", request, "--out", str(project))
    assert new.returncode == 0, new.stdout + new.stderr
    assert 'task = "anomaly_detection"' in (project / "tinyforge.toml").read_text()
    set_epochs(project, 60)
    build = run_cli("build", str(project))
    assert build.returncode == 0, build.stdout + build.stderr
    report = json.loads((project / "report.json").read_text())
    assert report["classes"] == ["normal", "anomaly"]
    assert report["int8_accuracy"] >= 0.85 and report["tflm_accuracy"] >= 0.85
    metrics = json.loads((project / "artifacts/metrics.json").read_text())
    assert metrics["threshold"] > 0
    main = (project / "src/main.cpp").read_text()
    assert "constexpr float kThreshold = " in main and "label: anomaly" in main


@pytest.mark.slow
def test_unlabelled_csv_trains_on_all_rows(tmp_path: Path) -> None:
    data = make_readings(tmp_path / "motor.csv", labelled=False)
    project = tmp_path / "motor"
    new = run_cli(
        "new", f"anomaly detection for readings in {data} on a Pi Pico", "--out", str(project)
    )
    assert new.returncode == 0, new.stdout + new.stderr
    set_epochs(project, 5)
    build = run_cli("build", str(project))
    assert build.returncode == 0, build.stdout + build.stderr
    assert json.loads((project / "report.json").read_text())["arena_bytes"] > 0
