"""Benchmark: the firmware of four projects compiled with real TFLM and run on emulated cores.

Per project × core × kernels it prints: compile seconds (cold: an empty object cache; cached:
only the project's code and the link), run seconds, outputs identical to the host TFLM
interpreter, the arena measured against the static estimate, flash per part against the old
estimate (check/runtime_costs.toml before this stage existed), instructions per inference and
the latency they suggest at the board's clock.

    python bench/device.py                          # digits, fruit, keyword spotting, anomaly
    python bench/device.py --update-costs           # also rewrite runtime_costs.toml's TFLM figures
    python bench/device.py --projects DIR --quick   # projects already built in DIR; no cold runs

Needs arm-none-eabi-gcc, qemu-system-arm and a TFLM source (--tflm, default: the shared kit).
Targets: a cached verify < 15 s; a cold one (empty cache) < 2 min on 2 cores.
"""

from __future__ import annotations

import argparse
import datetime
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tinyforge import pipeline  # noqa: E402
from tinyforge.device.cache import compiler_version  # noqa: E402
from tinyforge.device.report import DeviceReport  # noqa: E402
from tinyforge.device.verify import verify_project  # noqa: E402

KIT = REPO.parent / "shared" / "vendor" / "tflm-cortex-m"
FRUIT = REPO.parent / "shared" / "data" / "seed-fruit-rgb" / "fruit_data.csv"
CONFIGS = [
    ("cortex-m4f", "cmsis_nn"),
    ("cortex-m4f", "reference"),
    ("cortex-m7", "cmsis_nn"),
    ("cortex-m0plus", "cmsis_nn"),
]


def make_projects(root: Path) -> dict[str, Path]:
    """The four kinds of project, built without the device stage (it is measured below)."""
    from tests.test_build_anomaly import make_readings
    from tests.test_build_audio import make_clips

    data = root / "data"
    data.mkdir(parents=True)
    shutil.copy(FRUIT, data / "fruit_data.csv")
    requests = {
        "digits": "Recognize handwritten digits on an Arduino Nano 33 BLE Sense",
        "fruit": f"Tell apples, bananas and oranges apart from the RGB readings in "
        f"{data / 'fruit_data.csv'} (label column Fruit) on an Arduino Nano 33 BLE Sense",
        "kws": f"Spot the keywords up and down in audio clips from "
        f"{make_clips(data / 'clips')} on an Arduino Nano 33 BLE Sense",
        "anomaly": f"Detect anomalies in motor readings from {make_readings(data / 'motor.csv')} "
        "(label column state) on an Arduino Nano 33 BLE Sense",
    }
    projects = {}
    for name, request in requests.items():
        project = root / name
        pipeline.new_project(request, project)
        pipeline.build(project, device=False)
        projects[name] = project
        print(f"built {name}", flush=True)
    return projects


def measure(
    project: Path, core: str, kernels: str, tflm: Path, cache: Path
) -> tuple[DeviceReport, float]:
    os.environ["TINYFORGE_CACHE_DIR"] = str(cache)
    start = time.monotonic()
    report = verify_project(project, tflm=tflm, kernels=kernels, core_name=core)
    return report, time.monotonic() - start


def kb(n: int) -> str:
    return f"{n / 1024:.1f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--tflm", type=Path, default=KIT)
    parser.add_argument("--projects", type=Path, help="a folder of built projects to reuse")
    parser.add_argument("--quick", action="store_true", help="no cold-cache runs")
    parser.add_argument("--update-costs", action="store_true")
    args = parser.parse_args()

    root = Path(tempfile.mkdtemp(prefix="tinyforge-device-bench-"))
    if args.projects:
        projects = {p.name: p for p in sorted(args.projects.iterdir()) if (p / "src").is_dir()}
    else:
        projects = make_projects(root)
    user_cache = Path(os.environ.get("TINYFORGE_CACHE_DIR", Path.home() / ".cache/tinyforge"))
    rows: list[dict] = []
    for core, kernels in CONFIGS:
        cold_done = args.quick
        for name, project in projects.items():
            cold_s = None
            if not cold_done:
                cold_cache = root / f"cold-{core}-{kernels}"
                _, cold_s = measure(project, core, kernels, args.tflm, cold_cache)
                cold_done = True
                shutil.rmtree(cold_cache, ignore_errors=True)
            measure(project, core, kernels, args.tflm, user_cache)  # warm the cache
            report, cached_s = measure(project, core, kernels, args.tflm, user_cache)
            rows.append({"project": name, "cold": cold_s, "cached": cached_s, "report": report})
            print_row(rows[-1])

    print()
    print_table(rows)
    if args.update_costs:
        update_costs(rows, args.tflm)
    shutil.rmtree(root, ignore_errors=True)


HEADER = (
    f"{'project':<8} {'core':<13} {'kernels':<9} {'cold s':>6} {'cached s':>8} {'run s':>5} "
    f"{'ident %':>7} {'argmax %':>8} {'arena used/smallest/static/firmware':>36} "
    f"{'flash KB model/TFLM/kernels/app':>32} {'TFLM+kernels KB (old est.)':>26} "
    f"{'insns/inference':>15} {'est. ms':>8}"
)


def format_row(row: dict) -> str:
    r: DeviceReport = row["report"]
    cold = f"{row['cold']:.1f}" if row["cold"] is not None else "-"
    arena = (
        f"{r.arena_used_bytes}/{r.arena_smallest_bytes}/{r.arena_static_target_bytes}/"
        f"{r.arena_firmware_bytes}"
    )
    kernels_kb = r.flash["TFLM kernels"] + r.flash.get("CMSIS-NN", 0)
    flash = (
        f"{kb(r.flash['model'])}/{kb(r.flash['TFLM runtime'])}/{kb(kernels_kb)}/"
        f"{kb(r.flash['application'])}"
    )
    measured = r.flash["TFLM runtime"] + kernels_kb
    old = r.flash_estimate_before.get("TFLM runtime and kernels", 0)
    return (
        f"{row['project']:<8} {r.core:<13} {r.kernels:<9} {cold:>6} {row['cached']:>8.1f} "
        f"{r.run_seconds:>5.2f} {r.outputs_identical_percent:>7.1f} "
        f"{r.argmax_agreement_percent:>8.1f} {arena:>36} {flash:>32} "
        f"{kb(measured) + ' (' + kb(old) + ')':>26} {r.instructions_per_inference:>15,} "
        f"{r.latency_ms_estimate:>8.2f}"
    )


def print_row(row: dict) -> None:
    print(format_row(row), flush=True)


def print_table(rows: list[dict]) -> None:
    print(HEADER)
    for row in rows:
        print(format_row(row))
    print(
        "\nest. ms = instructions counted per Invoke() × the core's assumed cycles per "
        "instruction (M4F 1.2, M7 0.8, M0+ 1.5) at the board's clock: an estimate."
    )
    print("static = TinyForge's static 32-bit arena estimate; smallest = bisected on the target.")


def update_costs(rows: list[dict], tflm: Path) -> None:
    """Rewrite runtime_costs.toml's [cores.*] tables from the CMSIS-NN measurements."""
    import tomlkit

    path = REPO / "server/tinyforge/check/runtime_costs.toml"
    doc = tomlkit.parse(path.read_text("utf-8"))
    cores = tomlkit.table(is_super_table=True)
    for core in sorted({r["report"].core for r in rows}):
        measured = [
            r["report"]
            for r in rows
            if r["report"].core == core and r["report"].kernels == "cmsis_nn"
        ]
        if not measured:
            continue
        first = measured[0]
        table = tomlkit.table()
        table.add(
            tomlkit.comment(
                f"measured {datetime.date.today()} by bench/device.py --update-costs: "
                f"{first.tflm.name}, CMSIS-NN kernels, {compiler_version('arm-none-eabi-g++')}, "
                f"projects {', '.join(sorted({r['project'] for r in rows}))}"
            )
        )
        # The TFLM core with its shared helpers, plus the largest CMSIS-NN share seen (the
        # library's part depends on the operators: the largest keeps the estimate an upper one).
        table["tflm_flash"] = int(max(r.flash["TFLM runtime"] for r in measured))
        table["kernel_library_flash"] = int(max(r.flash.get("CMSIS-NN", 0) for r in measured))
        table["tflm_ram"] = int(max(r.ram["TFLM runtime"] for r in measured))
        ops = tomlkit.table()
        for op in sorted({op for r in measured for op in r.kernel_flash}):
            ops[op] = int(max(r.kernel_flash.get(op, 0) for r in measured))
        table["op_flash"] = ops
        cores[core] = table
    doc["cores"] = cores
    path.write_text(tomlkit.dumps(doc), "utf-8")
    print(f"\nupdated {path.relative_to(REPO)} [cores] from {len(rows)} measurements")


if __name__ == "__main__":
    np.set_printoptions(suppress=True)
    main()
