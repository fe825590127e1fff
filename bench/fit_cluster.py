"""Benchmark: `tinyforge fit` on a real Ray cluster on this machine, against the local engine,
and a search that loses a worker.

Starts the cluster the tests use (tests/ray_cluster.py): a network namespace of its own
(loopback only), Ray's token authentication, `ray start --head` with no CPUs and one
`ray start --address …` worker with this machine's cores. Then, inside the namespace:

1. `bench/fit.py --engine ray --address 127.0.0.1:6379`: local engine and cluster on the same
   budget and seed, side by side (wall time, trials per minute, overhead per trial);
2. the lost-worker run: a second worker joins, is killed (its whole process tree, SIGKILL)
   while it trains a trial, and the search goes on; printed: wall time against the same
   search undisturbed, which trials were lost and where they ran again, and whether the
   chosen model is the same.

Every process is stopped by its id afterwards. Needs root (network and mount namespaces).
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.ray_cluster import ADDRESS, VENV, Cluster, python_view, wait_for  # noqa: E402

TINYFORGE = VENV / "bin" / "tinyforge"
REQUEST = "Recognize handwritten digits on an Arduino Nano 33 BLE Sense"


def _trial_under(pid: int) -> bool:
    import psutil

    try:
        children = psutil.Process(pid).children(recursive=True)
    except psutil.NoSuchProcess:
        return False
    return any("tinyforge.fit.trial" in " ".join(c.cmdline()) for c in children)


def _search(cluster: Cluster, project: Path, args: argparse.Namespace, kill: str | None) -> dict:
    started = time.monotonic()
    search = cluster.client_popen(
        [
            str(TINYFORGE), "fit", str(project), "--engine", "ray", "--address", ADDRESS,
            "--budget-ram", f"{args.budget}KB", "--trials", str(args.trials),
            "--epochs", str(args.epochs), "--seed", str(args.seed), "--json",
        ]
    )  # fmt: skip
    if kill:
        worker = cluster.workers[kill]
        wait_for(lambda: _trial_under(worker.pid), 600, f"a trial on worker {kill}")
        cluster.kill_worker(kill)
        print(f"  killed worker {kill} after {time.monotonic() - started:.1f} s", flush=True)
    out, err = search.communicate(timeout=3600)
    if search.returncode not in (0, 3) or not out.strip():
        raise SystemExit(f"the search failed ({search.returncode}):\n{err[-3000:]}")
    try:
        result = json.loads(out)
    except ValueError:
        raise SystemExit("not JSON:\n" + out[:1500]) from None
    result["wall"] = time.monotonic() - started
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--budget", type=int, default=16, help="KB of tensor arena")
    parser.add_argument("--trials", type=int, default=8)
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--lost-only", action="store_true", help="only the lost-worker run")
    args = parser.parse_args()
    from tinyforge.fit.engines import machine_cores

    cores = machine_cores()
    cluster = Cluster()
    work = Path(tempfile.mkdtemp(prefix="tinyforge-bench-cluster-"))
    try:
        cluster.open_namespace()
        cluster.generate_token()
        view = python_view(cluster.root / "worker-python", ("tinyforge", "__editable__.tinyforge"))
        cluster.start_head()
        cluster.start_worker("a", cores, "worker_tag", python=view)
        cluster.nodes({"cpus": [0, cores]})
        print(f"cluster: head (0 CPUs) + worker a ({cores} CPUs), {ADDRESS}, token auth\n")

        bench = None if args.lost_only else cluster.client(
            [
                str(VENV / "bin" / "python"), str(REPO / "bench" / "fit.py"), "--engine", "ray",
                "--address", ADDRESS, "--budgets", str(args.budget), "--trials",
                str(args.trials), "--epochs", str(args.epochs), "--seed", str(args.seed),
            ],
            timeout=7200,
            PYTHONPATH=str(REPO),
        )  # fmt: skip
        if bench is not None:
            print(bench.stdout)
            if bench.returncode != 0:
                raise SystemExit(bench.stderr[-3000:])

        print("the lost-worker run")
        created = cluster.client([str(TINYFORGE), "new", REQUEST, "--out", str(work / "a")])
        assert created.returncode == 0, created.stderr[-2000:]
        shutil.copytree(work / "a", work / "b")
        calm = _search(cluster, work / "a", args, None)
        cluster.start_worker("b", 1, "doomed", python=view)
        cluster.nodes({"cpus": sorted([0, cores, 1])})
        hit = _search(cluster, work / "b", args, "b")
        retried = [t for t in hit["trials"] if t.get("lost_attempts")]
        for name, result in (("undisturbed", calm), ("worker b killed", hit)):
            counts = result["counts"]
            print(
                f"  {name:16} {result['wall']:6.1f} s wall, {counts['trained']} trained, "
                f"{counts['lost']} lost, chosen #{result['chosen']}"
            )
        for t in retried:
            loss = t["lost_attempts"][0]
            print(
                f"  trial #{t['number']}: {loss['reason']} ({loss['error']}); "
                f"ran again on {t['ran_on'].get('resources')} → {t['status']}"
            )
        same = hit["chosen"] == calm["chosen"]
        print(f"  same chosen model as undisturbed: {'yes' if same else 'NO'}")
    finally:
        cluster.stop()
        left = cluster.leftovers()
        cluster.cleanup()
        shutil.rmtree(work, ignore_errors=True)
        print(f"cluster stopped; processes left: {len(left)}")


if __name__ == "__main__":
    main()
