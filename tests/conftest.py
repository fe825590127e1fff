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

# The files that take longest (`pytest --durations=0`, summed per file, seconds on two workers:
# a Ray cluster 239, QEMU 189, fit 88, health 73, ...). `make test` hands whole files to its two
# pytest-xdist workers in collection order; starting these first keeps one worker from running
# the longest file alone at the end. The order only: every test runs either way.
SLOWEST_FIRST = (
    "tests/test_fit_cluster.py",
    "tests/test_device.py",
    "tests/test_fit.py",
    "tests/test_health.py",
    "tests/test_data_decides.py",
    "tests/test_repair.py",
    "tests/test_onnx_convert.py",
)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    rank = {name: i for i, name in enumerate(SLOWEST_FIRST)}

    def file_rank(item: pytest.Item) -> int:
        try:
            name = item.path.relative_to(REPO).as_posix()
        except ValueError:
            return len(rank)
        return rank.get(name, len(rank))

    items[:] = sorted(items, key=file_rank)  # stable: the rest keep their order


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
