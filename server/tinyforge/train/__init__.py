"""Train: run the project's own train.py in a child process and follow its epochs."""

from __future__ import annotations

import json
import re
import threading
from pathlib import Path
from typing import Any

from tinyforge import jobs
from tinyforge.errors import StageError
from tinyforge.generate import ARTIFACTS_DIR, TRAIN_SCRIPT
from tinyforge.progress import Progress

EPOCH_LINE = re.compile(r"^epoch (\d+)/(\d+)\b(.*)$")


def run_training(
    project_dir: Path,
    progress: Progress,
    cancel: threading.Event | None = None,
    timeout: float | None = None,
) -> dict[str, Any]:
    script = project_dir / TRAIN_SCRIPT
    if not script.is_file():
        raise StageError("train", f"{script} is missing: run `tinyforge new` or write your own.")

    def on_line(line: str) -> None:
        progress.log(line)
        match = EPOCH_LINE.match(line)
        if match:
            done, total = int(match.group(1)), int(match.group(2))
            progress.update(done / max(total, 1), f"epoch {done}/{total}{match.group(3)}")

    try:
        result = jobs.run(
            jobs.python_command(str(script.name)),
            cwd=project_dir,
            env={"TF_CPP_MIN_LOG_LEVEL": "2"},
            on_line=on_line,
            cancel=cancel,
            timeout=timeout,
        )
    except TimeoutError:
        raise StageError("train", timeout_sentence("train", timeout)) from None
    if not result.ok:
        raise StageError(
            "train", f"train.py failed: {failure_sentence(result.tail)}", result.tail_text()
        )
    metrics_path = project_dir / ARTIFACTS_DIR / "metrics.json"
    model_path = project_dir / "model.keras"
    if not metrics_path.is_file() or not model_path.is_file():
        raise StageError(
            "train",
            f"train.py finished but did not save model.keras and {ARTIFACTS_DIR}/metrics.json.",
        )
    metrics: dict[str, Any] = json.loads(metrics_path.read_text(encoding="utf-8"))
    return metrics


def timeout_sentence(stage: str, seconds: float | None) -> str:
    """Which stage ran out of its time, and where that time is set (the flag is the same on
    every command that runs the stage: build, and convert for an ONNX model)."""
    return (
        f"The {stage} stage ran out of its {seconds or 0:g} s (timeouts.{stage} in "
        f"tinyforge.toml, or --{stage}-timeout); its process was stopped."
    )


def failure_sentence(tail: list[str]) -> str:
    """The most telling line of a failed child: our own `error:` line, else the exception."""
    for line in reversed(tail):
        if line.startswith("error: "):
            return line[len("error: ") :]
    for line in reversed(tail):
        stripped = line.strip()
        if re.match(r"^[A-Za-z_.]*(Error|Exception|Exit)\b", stripped):
            return stripped
    return tail[-1].strip() if tail else "no output"
