"""Benchmark: PlatformIO offline — how fast the "not installed" message comes, and real linker
figures against TinyForge's.

1. `tinyforge deploy` on a generated digits project (nordicnrf52) with an empty PlatformIO:
   seconds until the one-sentence message (PlatformIO's own `pio run` waits ~60 s on its
   registry; `--raw` measures that too).
2. The digits firmware's model section and C array linked bare-metal by `pio run` on the tests'
   local Cortex-M platform (tests/firmware_fixtures.py; needs gcc-arm-none-eabi and scons):
   PlatformIO's RAM/flash against the arena and model TinyForge computed, then boards with less
   RAM than the arena: the real linker's "overflowed by N bytes" against TinyForge's prediction.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # the tests' local platform helpers

from tests.conftest import run_cli, set_epochs  # noqa: E402
from tests.firmware_fixtures import DIGITS_REQUEST, make_local_pio  # noqa: E402
from tinyforge import deploy  # noqa: E402

TINYFORGE = Path(sys.executable).parent / "tinyforge"


def timed_deploy(project: Path, core: Path) -> tuple[float, int, str]:
    start = time.monotonic()
    result = subprocess.run(
        [str(TINYFORGE), "deploy", str(project)],
        env={**os.environ, "PLATFORMIO_CORE_DIR": str(core), "COLUMNS": "300"},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    return time.monotonic() - start, result.returncode, " ".join(result.stderr.split())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--raw", action="store_true", help="also time PlatformIO's own pio run")
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="tinyforge-pio-bench-"))
    project = root / "digits"
    assert run_cli("new", DIGITS_REQUEST, "--out", str(project)).returncode == 0
    set_epochs(project, 3)
    built = run_cli("build", str(project))
    assert built.returncode == 0, built.stdout + built.stderr
    report = json.loads((project / "report.json").read_text())

    print("1. offline: tinyforge deploy on a nordicnrf52 project, empty PlatformIO")
    times = []
    for n in range(args.runs):
        seconds, code, message = timed_deploy(project, root / f"core{n}")
        times.append(seconds)
    print(f"   exit {code}: {message}")
    print(f"   seconds until the message: median {statistics.median(times):.2f}, "
          f"max {max(times):.2f} over {args.runs} runs")  # fmt: skip
    if args.raw:
        start = time.monotonic()
        subprocess.run(
            [sys.executable, "-m", "platformio", "run", "-d", str(project)],
            env={**os.environ, "PLATFORMIO_CORE_DIR": str(root / "core-raw")},
            capture_output=True,
            timeout=300,
            check=False,
        )
        print(f"   PlatformIO's own `pio run` for comparison: {time.monotonic() - start:.1f} s")

    print("2. bare-metal Cortex-M4 image of the digits firmware (pio run, local platform)")
    local = make_local_pio(root / "local")
    arena, model = report["arena_bytes_firmware"], report["model_bytes"]
    fits = deploy.build_firmware(local.project(root / "fits", project, ram=256 * 1024))
    assert fits.ok and fits.ram and fits.flash, fits.summary
    other_ram = fits.ram["used"] - arena
    print(f"   arena (kTensorArenaSize) {arena:,} B, model {model:,} B")
    print(f"   PlatformIO RAM {fits.ram['used']:,} B (arena + {other_ram} B), "
          f"flash {fits.flash['used']:,} B (model + {fits.flash['used'] - model:,} B)")  # fmt: skip
    print(f"   {'board RAM':>10} {'predicted N':>12} {'linker N':>10} {'diff':>5}")
    for ram in (arena - 1000, arena - 4096, arena // 2, 1024):
        result = deploy.build_firmware(local.project(root / f"ram{ram}", project, ram=ram))
        [problem] = [p for p in result.problems if p.code == "ram-overflow"]
        got = problem.data["overflow_bytes"]
        predicted = arena + other_ram - ram
        print(f"   {ram:>10,} {predicted:>12,} {got:>10,} {got - predicted:>5}")


if __name__ == "__main__":
    main()
