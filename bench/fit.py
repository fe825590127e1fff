"""Benchmark: `tinyforge fit` on digits for a Nano 33 BLE Sense under three RAM budgets.

For each budget of tensor arena (8, 16 and 64 KB by default): candidates trained and rejected
before training, the best int8 accuracy of a model that fits (measured in TFLM), the chosen
model, and the wall time with the local engine. Also how far the static estimate the
rejections rest on was from the measurement, over every trained candidate.

With `--engine ray` (and `--address HOST:PORT` for a running cluster; the token as for any
Ray client, RAY_AUTH_MODE=token and RAY_AUTH_TOKEN_PATH) each budget is searched twice on the
same budget and seed, first with the local engine and then on Ray, and the two are printed
side by side: wall time, trials per minute, the time inside the trials, and the overhead per
trial that Ray adds (shipping code and data, scheduling, a worker process per trial) — plus
whether both found the same model, as the seed promises.
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

from tinyforge import pipeline
from tinyforge.fit import FitOptions, FitResult, fit
from tinyforge.fit.engines import machine_cores, make_engine

REQUEST = "Recognize handwritten digits on an Arduino Nano 33 BLE Sense"


def _search(project: Path, engine: str, address: str | None, kb: int, args: Any) -> FitResult:
    options = FitOptions(
        trials=args.trials,
        epochs=args.epochs,
        budget_ram=kb * 1024,
        engine=engine,
        address=address,
        seed=args.seed,
    )
    return fit(project, options)


def _timing(result: FitResult) -> dict[str, Any]:
    trained = [t for t in result.trials if t.get("trained")]
    inside = sum(float(t.get("seconds") or 0) for t in trained)
    nodes = {
        str(t["ran_on"].get("node_id") or t["ran_on"].get("hostname"))[:12]
        for t in trained
        if t.get("ran_on")
    }
    return {
        "trained": len(trained),
        "lost": result.count("lost"),
        "wall": result.seconds,
        "per_min": 60 * len(trained) / result.seconds if result.seconds else 0.0,
        "inside": inside / len(trained) if trained else 0.0,
        "nodes": len(nodes),
    }


def _table(header: tuple[str, ...], rows: list[tuple[Any, ...]]) -> None:
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    for row in [header, *rows]:
        print("  ".join(str(v).ljust(w) for v, w in zip(row, widths, strict=True)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--budgets", default="8,16,64", help="KB of tensor arena, comma separated")
    parser.add_argument("--trials", type=int, default=20)
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--engine", default="local", choices=("local", "ray"))
    parser.add_argument("--address", help="a running Ray cluster, HOST:PORT (--engine ray)")
    parser.add_argument("--keep", action="store_true", help="keep the project folders")
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="tinyforge-bench-fit-"))
    rows = []
    speed = []
    errors: list[float] = []
    for kb in (int(b) for b in args.budgets.split(",")):
        project = root / f"digits_{kb}kb"
        pipeline.new_project(REQUEST, project)
        if args.engine == "ray":
            shutil.copytree(project, root / f"digits_{kb}kb_ray")
        result = _search(project, "local", None, kb, args)
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
        if args.engine == "ray":
            on_ray = _search(root / f"digits_{kb}kb_ray", "ray", args.address, kb, args)
            local, ray = _timing(result), _timing(on_ray)
            same = (on_ray.chosen or {}).get("number") == (chosen or {}).get("number")
            speed.append((kb, local, ray, same))
            print(f"{kb} KB on Ray: {on_ray.reasons}", flush=True)
    print()
    print(f"digits on nano33ble, {args.trials} trials × {args.epochs} epochs, local engine")
    _table(
        ("RAM budget", "trained", "rejected", "kept", "best int8", "chosen", "arena", "wall"), rows
    )
    if errors:
        print(
            f"static arena estimate vs TFLM over {len(errors)} trained candidates: "
            f"{min(errors):+.1f}% … {max(errors):+.1f}%"
        )
    if speed:
        where = args.address or "a Ray started here"
        print()
        print(f"local engine vs Ray ({where}), same budget and seed")
        table = []
        for kb, local, ray, same in speed:
            for name, t in (("local", local), ("ray", ray)):
                table.append(
                    (
                        f"{kb} KB",
                        name,
                        t["trained"],
                        t["lost"],
                        t["nodes"],
                        f"{t['wall']:.1f} s",
                        f"{t['per_min']:.1f}",
                        f"{t['inside']:.1f} s",
                        "" if name == "local" else "yes" if same else "NO",
                    )
                )
        _table(
            (
                "budget", "engine", "trained", "lost", "nodes", "wall", "trials/min",
                "in trial", "same model",
            ),
            table,
        )  # fmt: skip
        # The fixed part of that: joining the cluster and probing its workers, once a search.
        started = time.monotonic()
        make_engine("ray", address=args.address).close()
        print(
            f"connecting to Ray and checking its workers: {time.monotonic() - started:.1f} s, "
            "once per search (part of Ray's wall time above)"
        )
        for kb, local, ray, _ in speed:
            if ray["trained"]:
                overhead = (ray["wall"] - local["wall"]) / ray["trained"]
                print(
                    f"{kb} KB: Ray adds {overhead:+.1f} s of wall time per trial "
                    f"({ray['inside'] - local['inside']:+.1f} s of it inside the trial)"
                )
        host = (args.address or "127.0.0.1").rsplit(":", 1)[0]
        if host in ("127.0.0.1", "localhost", "::1", "[::1]"):
            print(
                f"The cluster runs on this one machine, {machine_cores()} cores shared by "
                "its head, its workers and the local engine: it cannot be faster than the "
                "local engine here. The figures above are what Ray costs per trial "
                "(connecting, shipping code and data, a worker process per trial), not what "
                "more machines would gain."
            )
        else:
            print(
                "The difference is what the cluster's extra cores gained, less what Ray "
                "costs per trial (connecting, shipping code and data, a worker per trial)."
            )
    if args.keep:
        print(f"projects kept in {root}")
    else:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
