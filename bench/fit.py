"""Benchmark: `tinyforge fit` on digits for a Nano 33 BLE Sense under three RAM budgets.

For each budget of tensor arena (8, 16 and 64 KB by default): candidates trained and rejected
before training, the best int8 accuracy of a model that fits (measured in TFLM), the chosen
model, and the wall time with the local engine. Also how far the static estimate the
rejections rest on was from the measurement, over every trained candidate.
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
from pathlib import Path

from tinyforge import pipeline
from tinyforge.fit import FitOptions, fit

REQUEST = "Recognize handwritten digits on an Arduino Nano 33 BLE Sense"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--budgets", default="8,16,64", help="KB of tensor arena, comma separated")
    parser.add_argument("--trials", type=int, default=20)
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--engine", default="local")
    parser.add_argument("--keep", action="store_true", help="keep the project folders")
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="tinyforge-bench-fit-"))
    rows = []
    errors: list[float] = []
    for kb in (int(b) for b in args.budgets.split(",")):
        project = root / f"digits_{kb}kb"
        pipeline.new_project(REQUEST, project)
        options = FitOptions(
            trials=args.trials,
            epochs=args.epochs,
            budget_ram=kb * 1024,
            engine=args.engine,
            seed=args.seed,
        )
        result = fit(project, options)
        counts = result.to_dict()["counts"]
        kept = result.kept
        best = max((t["accuracy"] for t in kept), default=None)
        chosen = result.chosen
        for t in result.trials:
            if t.get("trained") and "arena_bytes_target" in t and t.get("static"):
                static = t["static"]["arena_bytes_target"]
                errors.append(100 * (static - t["arena_bytes_target"]) / t["arena_bytes_target"])
        rows.append(
            (
                f"{kb} KB",
                counts["trained"],
                counts["rejected"],
                counts["kept"],
                "-" if best is None else f"{100 * best:.1f}%",
                "-" if chosen is None else f"#{chosen['number']} {chosen['candidate']}",
                "-" if chosen is None else f"{chosen['arena_bytes_target'] / 1024:.1f} KB",
                f"{result.seconds:.0f} s",
            )
        )
        print(f"{kb} KB: {result.reasons}", flush=True)
    header = ("RAM budget", "trained", "rejected", "kept", "best int8", "chosen", "arena", "wall")
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    print()
    print(f"digits on nano33ble, {args.trials} trials × {args.epochs} epochs, {args.engine} engine")
    for row in [header, *rows]:
        print("  ".join(str(v).ljust(w) for v, w in zip(row, widths, strict=True)))
    if errors:
        print(
            f"static arena estimate vs TFLM over {len(errors)} trained candidates: "
            f"{min(errors):+.1f}% … {max(errors):+.1f}%"
        )
    if args.keep:
        print(f"projects kept in {root}")
    else:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
