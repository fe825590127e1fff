"""Shared fixtures: the CLI as a user runs it, and the repository's shared data."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
FRUIT_CSV = SHARED / "data" / "seed-fruit-rgb" / "fruit_data.csv"
# TFLM sources for `tinyforge verify` (the firmware compiled and run on an emulated core).
TFLM_KIT = SHARED / "vendor" / "tflm-cortex-m"
TFLM_ARDUINO = SHARED / "vendor" / "arduino-tensorflowlite"
TINYFORGE = Path(sys.executable).parent / "tinyforge"

# Fixtures for real PlatformIO builds (a local Cortex-M platform, a built digits project).
pytest_plugins = ["tests.firmware_fixtures"]


def run_cli(
    *args: str, cwd: Path | None = None, timeout: float = 600, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """Run the installed `tinyforge` console script, exactly as a user would."""
    env = {
        **os.environ,
        "COLUMNS": "200",
        "NO_COLOR": "1",
        "TF_CPP_MIN_LOG_LEVEL": "2",
        "PYTHONIOENCODING": "utf-8",
        **(env or {}),
    }
    return subprocess.run(
        [str(TINYFORGE), *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


@pytest.fixture
def cli():
    return run_cli


def set_epochs(project: Path, epochs: int) -> None:
    """Fewer epochs keep the suite fast; the spec is the user's knob for it too."""
    spec = project / "tinyforge.toml"
    text = spec.read_text()
    lines = [ln for ln in text.splitlines() if not ln.startswith("epochs =")]
    out, inserted = [], False
    for ln in lines:
        out.append(ln)
        if ln.strip() == "[training]" and not inserted:
            out.append(f"epochs = {epochs}")
            inserted = True
    if not inserted:
        out += ["", "[training]", f"epochs = {epochs}"]
    spec.write_text("\n".join(out) + "\n")
