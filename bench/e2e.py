"""Benchmark: the digits request end to end on this machine.

Prints seconds per stage and in total, float and int8 accuracy, model and arena bytes.
Targets: total < 90 s on 2 cores, int8 accuracy >= 97%, int8 drop <= 1 point.
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path

from tinyforge import pipeline

REQUEST = "Recognize handwritten digits on an Arduino Nano 33 BLE Sense"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--request", default=REQUEST)
    parser.add_argument("--keep", action="store_true", help="keep the project folder")
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="tinyforge-bench-"))
    project = root / "project"
    start = time.monotonic()
    pipeline.new_project(args.request, project)
    plan_seconds = time.monotonic() - start
    result = pipeline.build(project)
    total = time.monotonic() - start
    r = result.report
    print(f"request: {args.request}")
    print(f"{'stage':<10}{'seconds':>10}")
    print(f"{'new':<10}{plan_seconds:>10.2f}")
    for stage, seconds in r.stage_seconds.items():
        print(f"{stage:<10}{seconds:>10.2f}")
    print(f"{'total':<10}{total:>10.2f}   (target < 90 s)")
    float_accuracy, int8_accuracy = r.float_accuracy or 0.0, r.int8_accuracy or 0.0
    drop = 100 * (float_accuracy - int8_accuracy)
    print(f"float accuracy  {100 * float_accuracy:.2f}%")
    print(f"int8 accuracy   {100 * int8_accuracy:.2f}%   (target >= 97%)")
    print(f"int8 drop       {drop:+.2f} points (target <= 1)")
    print(f"TFLM accuracy   {100 * (r.tflm_accuracy or 0.0):.2f}%")
    print(f"epochs run      {r.epochs_run}")
    print(f"model bytes     {r.model_bytes}")
    print(f"arena bytes     {r.arena_bytes} (host, measured)")
    print(f"arena (target)  {r.arena_bytes_target} (32-bit MCU, derived)")
    print(f"fits            {r.fits}")
    if args.keep:
        print(f"project kept in {project}")
    else:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
