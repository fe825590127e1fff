"""Which health checks fire on good and on bad projects (issue 9's measure).

Good: the digits example and the shared fruit CSV (learnable, needs scaling). Bad: a CSV with
shuffled labels, the shared CSV whose labels do not follow from its features, a class with two
samples, duplicate and contradicting rows, and an int8 model calibrated on constant data (its
softmax scale is degenerate). Prints one line per case: exit status, accuracy, findings.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from tinyforge import pipeline
from tinyforge.errors import TinyForgeError
from tinyforge.health.quant import check_tflite
from tinyforge.health.report import before_training
from tinyforge.spec import ProjectSpec

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data" / "seed-fruit-rgb"
BOARD = "on an Arduino Nano 33 BLE Sense"
CLI = Path(sys.executable).parent / "tinyforge"


def csv_rows(counts: dict[str, int], seed: int) -> list[tuple]:
    rng = np.random.default_rng(seed)
    rows: list[tuple] = []
    for index, (name, n) in enumerate(counts.items()):
        centre = np.array([index % 2, index // 2, index % 3], dtype=float) * 4.0
        rows += [(*(round(float(v), 4) for v in c), name) for c in centre + rng.normal(size=(n, 3))]
    return rows


def write_csv(path: Path, rows: list[tuple]) -> Path:
    path.write_text("a,b,c,kind\n" + "\n".join(",".join(map(str, r)) for r in rows) + "\n")
    return path


def build(root: Path, name: str, request: str, epochs: int | None = None) -> str:
    project = root / name
    pipeline.new_project(request, project)
    if epochs:
        spec = ProjectSpec.load(project)
        spec.training.epochs = epochs
        spec.save(project)
    started = time.monotonic()
    run = subprocess.run([str(CLI), "build", str(project)], capture_output=True, text=True)
    seconds = time.monotonic() - started
    report_path = project / "report.json"
    if run.returncode == 2 or not report_path.is_file():
        said = " ".join(run.stderr.split())
        return f"exit {run.returncode} ({seconds:.0f} s): {said[:160]}"
    report = json.loads(report_path.read_text())
    fired = [f"{f['severity']} {f['code']}" for f in report["health"]["findings"]]
    return (
        f"exit {run.returncode} ({seconds:.0f} s), float/int8 "
        f"{report['float_accuracy']:.2f}/{report['int8_accuracy']:.2f}: "
        + (", ".join(fired) or "no findings")
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--keep", action="store_true", help="keep the projects")
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="tinyforge-health-"))
    csv = "Classify sensor readings in {} (label column {}) " + BOARD
    results: dict[str, str] = {}

    results["good: digits"] = build(
        root, "digits", "Recognize handwritten digits on an Arduino Nano 33 BLE Sense"
    )
    results["good: fruit_data.csv"] = build(
        root, "fruit", csv.format(SHARED / "fruit_data.csv", "Fruit")
    )
    rows = csv_rows({"north": 60, "south": 60, "east": 60, "west": 60}, seed=1)
    labels = np.random.default_rng(2).permutation([r[-1] for r in rows])
    shuffled = write_csv(
        root / "shuffled.csv", [(*r[:3], lab) for r, lab in zip(rows, labels, strict=True)]
    )
    results["bad: shuffled labels"] = build(root, "shuffled", csv.format(shuffled, "kind"), 15)
    results["bad: fruit_dataset.csv"] = build(
        root, "fruit_dataset", csv.format(SHARED / "fruit_dataset.csv", "Fruit"), 15
    )
    few = write_csv(root / "few.csv", csv_rows({"apple": 40, "banana": 40, "kiwi": 2}, seed=0))
    results["bad: a class with two samples"] = build(root, "few", csv.format(few, "kind"))

    dup_rows = csv_rows({"apple": 30, "banana": 30}, seed=0)
    dup_rows += dup_rows[:12] + [(*dup_rows[0][:3], "banana")]
    dups = write_csv(root / "dups.csv", dup_rows)
    project = root / "dups"
    pipeline.new_project(csv.format(dups, "kind"), project)
    try:
        found = before_training(ProjectSpec.load(project), project).findings
        results["bad: duplicate rows (data checks)"] = ", ".join(
            f"{f.severity} {f.code}" for f in found
        )
    except TinyForgeError as exc:
        results["bad: duplicate rows (data checks)"] = f"stopped: {exc}"

    script = Path(__file__).resolve().parents[1] / "fixtures" / "health" / "degenerate_softmax.py"
    subprocess.run([sys.executable, str(script), str(root)], check=True, capture_output=True)
    tflite = root / "degenerate.tflite"
    static = ", ".join(f"{f.severity} {f.code}" for f in check_tflite(tflite))
    inspect = subprocess.run([str(CLI), "inspect", str(tflite), "--json"], capture_output=True)
    problems = json.loads(inspect.stdout).get("problems") or []
    results["bad: degenerate softmax scale"] = (
        f"{static}; inspect exit {inspect.returncode}: {problems[0][:120] if problems else '-'}…"
    )

    for case, outcome in results.items():
        print(f"{case:<36} {outcome}")
    if args.keep:
        print(f"projects kept in {root}")
    else:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
