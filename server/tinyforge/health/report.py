"""The build's health checks, in the order the pipeline runs them.

`before_training` checks the raw dataset and stops the build with one sentence when training
would be pointless; `after_build` gathers every check on the trained and converted model into
the report's "health" section.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np

from tinyforge.errors import DatasetError
from tinyforge.generate import ARTIFACTS_DIR, TRAIN_SCRIPT
from tinyforge.health import Finding, errors, sort_findings
from tinyforge.health import baseline as baseline_checks
from tinyforge.health import data as data_checks
from tinyforge.health import quant as quant_checks
from tinyforge.report import HealthSection
from tinyforge.spec import DatasetKind, ProjectSpec, Task

# Keras layers that scale a model's inputs inside it.
SCALING_LAYERS = {"Normalization", "Rescaling"}


def before_training(spec: ProjectSpec, project_dir: Path) -> data_checks.DataReport:
    """Data checks on the raw dataset; raises DatasetError when one makes training pointless."""
    script = project_dir / TRAIN_SCRIPT
    text = script.read_text(encoding="utf-8", errors="replace") if script.is_file() else None
    report = data_checks.check_dataset(spec, project_dir, train_script=text)
    stop = errors(report.findings)
    if stop:
        raise DatasetError(" ".join(f.sentence() for f in stop))
    return report


def after_build(
    project_dir: Path,
    spec: ProjectSpec,
    metrics: dict[str, Any],
    converted: dict[str, Any],
    before: data_checks.DataReport | None,
) -> HealthSection:
    """The report's "health" section: findings (errors first) and the figures behind them."""
    started = time.monotonic()
    artifacts = project_dir / ARTIFACTS_DIR
    classes = list(metrics.get("classes") or [])
    figures = converted.get("health") or {}
    findings: list[Finding] = list(before.findings) if before else []
    section = HealthSection(data=before.to_dict() if before else None)

    with np.load(artifacts / "splits.npz") as npz:
        splits = {key: npz[key] for key in npz.files}
    decisions = None
    predictions = artifacts / "predictions.npz"
    if predictions.is_file():
        with np.load(predictions) as npz:
            decisions = npz["tflite"]
    # An anomaly detector trains on normal rows only: no anomaly in the training split is by
    # design, there is no classifier to compare it to, and "normal" is its usual answer.
    anomaly = spec.task is Task.ANOMALY_DETECTION
    found, split_figures = data_checks.check_splits(splits, [] if anomaly else classes, decisions)
    findings += found
    section.splits = split_figures

    if not anomaly and classes:
        base = baseline_checks.run_baseline(splits, classes)
        layers = figures.get("layers")
        int8 = converted.get("tflite_accuracy") if converted.get("quantization") == "int8" else None
        findings += baseline_checks.judge(
            base,
            network_accuracy=float(converted["float_accuracy"]),
            int8_accuracy=int8,
            scales_inputs=bool(SCALING_LAYERS & set(layers)) if layers is not None else None,
            tabular=spec.dataset.kind is DatasetKind.CSV,
            epochs_run=metrics.get("epochs_run"),
            epochs=spec.training.epochs,
        )
        section.baseline = base.to_dict()
    else:
        section.baseline = None

    if converted.get("quantization") == "int8":
        tflite = project_dir / "model.tflite"
        findings += quant_checks.check_tflite(tflite)
        findings += quant_checks.check_figures(figures, classes)
        quantization = {
            key: figures[key] for key in ("calibration_samples", "per_class") if key in figures
        }
        saturation = figures.get("saturation") or {}
        quantization["max_saturation"] = {
            where: max(shares.values(), default=0.0) for where, shares in saturation.items()
        }
        section.quantization = quantization

    findings = sort_findings(findings)
    section.ok = not errors(findings)
    section.findings = findings
    section.seconds = round(time.monotonic() - started, 3)
    return section
