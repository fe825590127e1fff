"""Where trials run: a local pool sized to the machine, or a Ray cluster.

Both engines take a round of `TrialJob`s and give back their results in the order of the
jobs, whatever order they finish in, so the search (and its seed) decides the same candidates
on either engine. Cancel kills what runs: the local pool's child processes through
`tinyforge.jobs`, Ray tasks through `ray.cancel` (the trial then kills its own children).
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from pathlib import Path
from typing import Any, Protocol

from tinyforge import jobs
from tinyforge.errors import TinyForgeError
from tinyforge.fit.trial import TrialJob, pack_data, run_trial

ResultHandler = Callable[[int, dict[str, Any]], None]
# Beyond this, shipping the dataset with every search to a remote cluster is not sensible.
MAX_SHIPPED_DATA = 512 * 1024 * 1024


class Engine(Protocol):
    name: str
    workers: int

    def run(
        self, batch: list[TrialJob], cancel: threading.Event | None, done: ResultHandler
    ) -> list[dict[str, Any]]:
        """Results of `batch`, in its order; `done(index, result)` as each one finishes."""

    def close(self) -> None: ...


def machine_cores() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


class LocalEngine:
    """Trials side by side on this machine, one per core.

    Each trial is child processes (training, conversion, TFLM) driven by a thread here, so the
    pool is a pool of processes that `tinyforge.jobs` can cancel as a tree.
    """

    name = "local"

    def __init__(self, workers: int | None = None) -> None:
        self.workers = workers or machine_cores()
        self._pool = ThreadPoolExecutor(max_workers=self.workers, thread_name_prefix="fit-trial")

    def run(
        self, batch: list[TrialJob], cancel: threading.Event | None, done: ResultHandler
    ) -> list[dict[str, Any]]:
        stop = cancel or threading.Event()
        futures: dict[Future[dict[str, Any]], int] = {
            self._pool.submit(run_trial, job, None, stop): index for index, job in enumerate(batch)
        }
        results: list[dict[str, Any] | None] = [None] * len(batch)
        pending = set(futures)
        try:
            while pending:
                finished, pending = wait(pending, timeout=0.2, return_when=FIRST_COMPLETED)
                for future in finished:
                    index = futures[future]
                    results[index] = future.result()
                    done(index, results[index] or {})
                if stop.is_set():
                    raise jobs.Cancelled("the search was cancelled")
        except BaseException:
            stop.set()  # every running trial's jobs.run kills its process tree
            for future in pending:
                future.cancel()
            wait(pending, timeout=30)
            raise
        return [r or {} for r in results]

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)


def _ray_trial(job: TrialJob, archive: bytes | None) -> dict[str, Any]:
    # A Ray task: the same trial function as the local engine, on whichever node Ray picks.
    return run_trial(job, archive)


class RayEngine:
    """Trials as Ray tasks, one CPU each, on a running cluster (`address`) or a Ray started
    here for the search (stopped after it). A Ray already initialised in this process is
    used as it is and left running."""

    name = "ray"

    def __init__(
        self, address: str | None = None, data_path: Path | None = None, workers: int | None = None
    ) -> None:
        try:
            import ray
        except ImportError:  # the `ray` extra
            raise TinyForgeError(
                "--engine ray needs Ray: pip install 'tinyforge[ray]' (ray==2.60.0)."
            ) from None
        self._ray = ray
        self._started = False
        if not ray.is_initialized():
            options: dict[str, Any] = {"include_dashboard": False, "log_to_driver": False}
            if address:
                # The cluster runs this very TinyForge: its code travels with the job.
                package = str(Path(__file__).resolve().parents[1])
                options["runtime_env"] = {"py_modules": [package]}
                try:
                    ray.init(address=address, **options)
                except (ConnectionError, RuntimeError, ValueError) as exc:
                    raise TinyForgeError(
                        f"Cannot connect to the Ray cluster at {address}: {exc}"
                    ) from None
            else:
                # "local": a new Ray of our own, never a cluster some `ray start` recorded in
                # /tmp/ray; on loopback, as nothing outside this machine takes part.
                ray.init(
                    address="local",
                    num_cpus=workers or machine_cores(),
                    _node_ip_address="127.0.0.1",
                    **options,
                )
            self._started = True
        self.workers = workers or max(1, int(ray.cluster_resources().get("CPU", 1)))
        self._remote = ray.remote(num_cpus=1, max_retries=0)(_ray_trial)
        self._archive: Any = None
        if address and data_path is not None:
            # Workers elsewhere cannot read this machine's files: the data goes along, once,
            # through Ray's object store.
            size = _size(data_path)
            if size > MAX_SHIPPED_DATA:
                raise TinyForgeError(
                    f"The dataset {data_path} is {size / 2**20:.0f} MB: too big to ship to the "
                    "cluster with each search; put it on the cluster's nodes at the same path."
                )
            self._archive = ray.put(pack_data(data_path))

    def run(
        self, batch: list[TrialJob], cancel: threading.Event | None, done: ResultHandler
    ) -> list[dict[str, Any]]:
        ray = self._ray
        refs = [self._remote.remote(job, self._archive) for job in batch]
        index_of = {ref: index for index, ref in enumerate(refs)}
        pending = list(refs)
        try:
            while pending:
                finished, pending = ray.wait(pending, num_returns=1, timeout=0.2)
                for ref in finished:
                    done(index_of[ref], ray.get(ref))
                if cancel is not None and cancel.is_set():
                    raise jobs.Cancelled("the search was cancelled")
        except BaseException:
            for ref in pending:
                # Not forced: the task gets a KeyboardInterrupt and kills its child processes.
                ray.cancel(ref)
            raise
        return list(ray.get(refs))

    def close(self) -> None:
        if self._started:
            self._ray.shutdown()


def _size(path: Path) -> int:
    if path.is_file():
        return path.stat().st_size
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def make_engine(
    name: str,
    *,
    address: str | None = None,
    data_path: Path | None = None,
    workers: int | None = None,
) -> Engine:
    if name == "local":
        if address:
            raise TinyForgeError("--address is for --engine ray.")
        return LocalEngine(workers)
    if name == "ray":
        return RayEngine(address, data_path, workers)
    raise TinyForgeError(f"Unknown engine '{name}': use local or ray.")
