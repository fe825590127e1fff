"""Where trials run: a local pool sized to the machine, or a Ray cluster.

Both engines take a round of `TrialJob`s and give back their results in the order of the
jobs, whatever order they finish in, so the search (and its seed) decides the same candidates
on either engine. Cancel kills what runs: the local pool's child processes through
`tinyforge.jobs`, Ray tasks through `ray.cancel` (the trial then kills its own children).
"""

from __future__ import annotations

import contextlib
import os
import re
import threading
import time
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from pathlib import Path
from typing import Any, Protocol

from tinyforge import jobs
from tinyforge.errors import TinyForgeError
from tinyforge.fit.trial import LostAttempt, TrialJob, TrialResult, pack_data, run_trial

ResultHandler = Callable[[int, TrialResult], None]
# Beyond this, shipping the dataset with every search to a remote cluster is not sensible.
MAX_SHIPPED_DATA = 512 * 1024 * 1024


class Engine(Protocol):
    name: str
    workers: int
    # Why no more trials can run (e.g. a cluster with no node left), or None.
    stopped: str | None

    def run(
        self, batch: list[TrialJob], cancel: threading.Event | None, done: ResultHandler
    ) -> list[TrialResult]:
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
    stopped: str | None = None

    def __init__(self, workers: int | None = None) -> None:
        self.workers = workers or machine_cores()
        self._pool = ThreadPoolExecutor(max_workers=self.workers, thread_name_prefix="fit-trial")

    def run(
        self, batch: list[TrialJob], cancel: threading.Event | None, done: ResultHandler
    ) -> list[TrialResult]:
        stop = cancel or threading.Event()
        futures: dict[Future[TrialResult], int] = {
            self._pool.submit(_local_trial, job, stop): index for index, job in enumerate(batch)
        }
        results: list[TrialResult | None] = [None] * len(batch)
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


def _local_trial(job: TrialJob, cancel: threading.Event) -> TrialResult:
    import socket

    result = run_trial(job, None, cancel)
    result["ran_on"] = {
        "engine": "local",
        "hostname": socket.gethostname(),
        "pid": os.getpid(),
        "data": result.pop("data", None),
    }
    return result


# What a trial imports on the node that runs it (module → the pip package that brings it).
# Checked before any trial, on every node, so a cluster set up without them is named in one
# sentence instead of failing each trial with a remote traceback.
TRIAL_MODULES = {
    "tensorflow": "tensorflow",
    "numpy": "numpy",
    "sklearn": "scikit-learn",
    "tflite_micro": "tflite-micro",
    "flatbuffers": "flatbuffers",
    "psutil": "psutil",
    "pydantic": "pydantic",
    "jinja2": "jinja2",
    "tomli_w": "tomli-w",
}
INSTALL_HINT = "pip install 'tinyforge[ray]'"
# A trial whose node died is run again once on a node that is still there; the trial is
# deterministic, so the retry gives the figures the lost run would have given.
MAX_ATTEMPTS = 2
# How often a waiting round checks that the cluster still has a node to run trials on.
LIVENESS_SECONDS = 2.0
# How long the check of the nodes before a search waits for a node that is alive to answer.
PROBE_SECONDS = 300.0
NO_NODE_SENTENCE = (
    "The Ray cluster has no node with a CPU to run trials on: start a worker with "
    "`ray start --address HEAD:PORT`."
)
# How long a lost trial waits for the GCS to list the node that died, to name it.
DEATH_NOTICE_SECONDS = 30.0
# How long a cancelled trial gets to kill its child processes before its worker is killed.
CANCEL_GRACE_SECONDS = 30.0


def missing_modules() -> list[str]:
    """The pip packages a trial needs that this Python cannot import."""
    import importlib.util

    missing = []
    for module, package in TRIAL_MODULES.items():
        try:
            spec = importlib.util.find_spec(module)
        except (ImportError, ValueError):
            spec = None
        # An empty folder of that name is a namespace package, not the library.
        if spec is None or (spec.origin is None and spec.loader is None):
            missing.append(package)
    return missing


def _here() -> dict[str, Any]:
    """Where this Ray task runs: its node, host, process and the TinyForge it imported."""
    import socket

    import ray

    import tinyforge

    context = ray.get_runtime_context()
    return {
        "engine": "ray",
        "node_id": context.get_node_id(),
        "node_ip": ray.util.get_node_ip_address(),
        "hostname": socket.gethostname(),
        "pid": os.getpid(),
        "tinyforge": str(Path(tinyforge.__file__).resolve().parent),
    }


def _ray_probe() -> dict[str, Any]:
    # A Ray task pinned to one node before the search: what it lacks, and where it is.
    return {**_here(), "missing": missing_modules()}


def _ray_trial(job: TrialJob, archive: bytes | None) -> TrialResult:
    # A Ray task: the same trial function as the local engine, on whichever node Ray picks.
    where = _here()
    missing = missing_modules()
    if missing:
        return {"number": job.number, "ok": False, "missing": missing, "ran_on": where}
    result = run_trial(job, archive)
    result["ran_on"] = {**where, "data": result.pop("data", None)}
    return result


def _missing_sentence(packages: list[str], where: str) -> str:
    names = ", ".join(packages)
    return (
        f"The Ray cluster's Python on {where} lacks {names}, which TinyForge's trials need: "
        f"install TinyForge's dependencies there with {INSTALL_HINT}."
    )


class RayEngine:
    """Trials as Ray tasks, one CPU each, on a running cluster (`address`) or a Ray started
    here for the search (stopped after it). A Ray already initialised in this process is
    used as it is and left running.

    On a cluster, TinyForge's code travels as the job's `py_modules` and the dataset through
    the object store, so the nodes need only the dependencies. Each trial's result says
    where it ran (node id, its custom resources, host); a trial whose node died is run again
    on a node that is left, or reported lost with the reason when none is.
    """

    name = "ray"

    def __init__(
        self, address: str | None = None, data_path: Path | None = None, workers: int | None = None
    ) -> None:
        try:
            import ray
        except ImportError:  # the `ray` extra
            raise TinyForgeError(f"--engine ray needs Ray: {INSTALL_HINT} (ray==2.60.0).") from None
        self._ray = ray
        self._started = False
        self.stopped: str | None = None
        if not ray.is_initialized():
            options: dict[str, Any] = {"include_dashboard": False, "log_to_driver": False}
            if address:
                # The cluster runs this very TinyForge: its code travels with the job.
                package = str(Path(__file__).resolve().parents[1])
                options["runtime_env"] = {
                    "py_modules": [package],
                    # Byte code is the driver's own: the nodes compile what they import.
                    "excludes": ["__pycache__", "*.pyc"],
                }
                try:
                    ray.init(address=address, **options)
                except Exception as exc:  # ConnectionError, AuthenticationError, RuntimeError…
                    raise TinyForgeError(_connect_sentence(address, exc)) from None
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
        try:
            self.workers = workers or max(1, int(ray.cluster_resources().get("CPU", 1)))
            self._remote = ray.remote(num_cpus=1, max_retries=0)(_ray_trial)
            self._nodes: dict[str, dict[str, Any]] = {}
            # Nodes that died before this search: never blamed for its losses.
            self._dead_before = set(self._dead())
            if address:
                self._check_nodes()
            self._archive: Any = None
            if address and data_path is not None:
                # Workers elsewhere cannot read this machine's files: the data goes along,
                # once, through Ray's object store.
                size = _size(data_path)
                if size > MAX_SHIPPED_DATA:
                    raise TinyForgeError(
                        f"The dataset {data_path} is {size / 2**20:.0f} MB: too big to ship to "
                        "the cluster with each search; put it on the cluster's nodes at the "
                        "same path."
                    )
                self._archive = ray.put(pack_data(data_path))
        except BaseException:
            self.close()
            raise

    # -- the cluster --------------------------------------------------------------------

    def _refresh_nodes(self) -> dict[str, dict[str, Any]]:
        """Every node Ray knows, alive or dead: address, host, custom resources, state."""
        for node in self._ray.nodes():
            resources = node.get("Resources") or {}
            self._nodes[node["NodeID"]] = {
                "node_ip": node.get("NodeManagerAddress"),
                "hostname": node.get("NodeManagerHostname"),
                "cpus": resources.get("CPU", 0),
                # The tags a team gives its nodes (`ray start --resources`), not Ray's own.
                "resources": sorted(
                    k
                    for k in resources
                    if k not in ("CPU", "GPU", "memory", "object_store_memory")
                    and not k.startswith(("node:", "accelerator_type:"))
                ),
                "alive": bool(node.get("Alive")),
                "death": node.get("DeathReasonMessage") or "",
            }
        return self._nodes

    def _dead(self) -> list[str]:
        """Nodes that died during this search."""
        before: set[str] = getattr(self, "_dead_before", set())
        return [n for n, i in self._refresh_nodes().items() if not i["alive"] and n not in before]

    def _trial_nodes(self) -> list[str]:
        return [n for n, info in self._refresh_nodes().items() if info["alive"] and info["cpus"]]

    def _describe(self, node_id: str) -> str:
        info = self._nodes.get(node_id) or {}
        tags = f", {'/'.join(info['resources'])}" if info.get("resources") else ""
        return f"node {node_id[:12]} ({info.get('node_ip')}{tags})"

    def _check_nodes(self) -> None:
        """One probe per node that can run trials: each must have what a trial imports.

        A node may die just before or during its probe (a worker that went away seconds ago is
        still listed alive until the GCS's health checks give up on it). Such a node is not a
        misconfigured one: its probe is dropped once the GCS lists it dead, and the search runs
        on the nodes that are left."""
        from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

        ray = self._ray
        nodes = self._trial_nodes()
        if not nodes:
            raise TinyForgeError(NO_NODE_SENTENCE)
        probe = ray.remote(num_cpus=0, max_retries=0)(_ray_probe)
        refs = {
            probe.options(
                scheduling_strategy=NodeAffinitySchedulingStrategy(node, soft=False)
            ).remote(): node
            for node in nodes
        }
        deadline = time.monotonic() + PROBE_SECONDS
        while refs:
            finished, _ = ray.wait(list(refs), num_returns=1, timeout=LIVENESS_SECONDS)
            alive = set(self._trial_nodes())
            for ref in finished:
                node = refs.pop(ref)
                try:
                    answer = ray.get(ref)
                except Exception as exc:
                    if node not in alive:
                        continue  # it died: not the cluster's setup, nothing to check
                    module = _missing_module(exc)
                    if module is not None:
                        raise TinyForgeError(
                            _missing_sentence([module], self._describe(node))
                        ) from None
                    raise TinyForgeError(
                        f"The Ray cluster's {self._describe(node)} cannot run TinyForge's "
                        f"tasks: {_first_line(exc)}"
                    ) from None
                if answer["missing"]:
                    raise TinyForgeError(_missing_sentence(answer["missing"], self._describe(node)))
            for ref, node in list(refs.items()):
                if node not in alive:  # died while its probe waited
                    with contextlib.suppress(Exception):  # its task may be gone with it
                        ray.cancel(ref, force=True)
                    del refs[ref]
            if refs and time.monotonic() > deadline:
                where = ", ".join(self._describe(n) for n in refs.values())
                raise TinyForgeError(
                    f"The Ray cluster's {where} did not answer TinyForge's check in "
                    f"{PROBE_SECONDS:.0f} s: is it overloaded or unreachable?"
                )
        if not self._trial_nodes():
            raise TinyForgeError(NO_NODE_SENTENCE)

    # -- trials -------------------------------------------------------------------------

    def run(
        self, batch: list[TrialJob], cancel: threading.Event | None, done: ResultHandler
    ) -> list[TrialResult]:
        ray = self._ray
        if self.stopped:
            return [_lost(job, self.stopped, []) for job in batch]
        results: list[TrialResult | None] = [None] * len(batch)
        losses: list[list[LostAttempt]] = [[] for _ in batch]
        index_of: dict[Any, int] = {}
        for index, job in enumerate(batch):
            index_of[self._remote.remote(job, self._archive)] = index
        pending = list(index_of)
        checked = time.monotonic()
        try:
            while pending:
                finished, pending = ray.wait(pending, num_returns=1, timeout=0.2)
                for ref in finished:
                    index = index_of.pop(ref)
                    result = self._result(ref, batch[index], losses[index])
                    if result is None:  # its node died and another one is left: again
                        again = self._remote.remote(batch[index], self._archive)
                        index_of[again] = index
                        pending.append(again)
                        continue
                    results[index] = result
                    done(index, result)
                if cancel is not None and cancel.is_set():
                    raise jobs.Cancelled("the search was cancelled")
                if pending and time.monotonic() - checked > LIVENESS_SECONDS:
                    checked = time.monotonic()
                    if not self._trial_nodes():
                        # Nothing could ever run what waits: report it instead of hanging.
                        self.stopped = "no node with a CPU is left in the Ray cluster"
                        self._cancel(pending)
                        for ref in pending:
                            index = index_of.pop(ref)
                            results[index] = _lost(batch[index], self.stopped, losses[index])
                            done(index, results[index] or {})
                        pending = []
        except BaseException:
            self._cancel(pending)
            raise
        return [r or {} for r in results]

    def _result(self, ref: Any, job: TrialJob, losses: list[LostAttempt]) -> TrialResult | None:
        """The trial's result; None when it should run again on another node."""
        ray = self._ray
        try:
            result: TrialResult = ray.get(ref)
        except ray.exceptions.TaskCancelledError:
            raise jobs.Cancelled("the search was cancelled") from None
        except ray.exceptions.RayTaskError as exc:
            # The trial function itself raised on the node (it reports its own failures).
            module = _missing_module(exc)
            if module is not None:
                raise TinyForgeError(_missing_sentence([module], "a node")) from None
            return {"number": job.number, "ok": False, "error": _first_line(exc)}
        except ray.exceptions.RayError as exc:
            # The worker process or its whole node went away with the trial. Ray's message
            # names the node before the GCS lists it as dead, so both are looked at.
            nodes = self._refresh_nodes()
            named = re.findall(r"\b[0-9a-f]{56}\b", str(exc))
            dead = list(dict.fromkeys([*named, *self._dead()]))
            if not dead and _node_died(exc):
                dead = self._await_dead_node()
            losses.append(
                {
                    "error": type(exc).__name__,
                    "reason": _loss_reason(exc),
                    "message": _first_line(exc)[:300],
                    "dead_nodes": [
                        {"node": self._describe(n), "why": nodes.get(n, {}).get("death", "")}
                        for n in dead
                    ],
                }
            )
            if len(losses) < MAX_ATTEMPTS and self._trial_nodes():
                return None
            left = "no node with a CPU is left" if not self._trial_nodes() else "out of retries"
            return _lost(job, f"{losses[-1]['reason']} ({left})", losses)
        missing = result.get("missing")
        if missing:
            where = result.get("ran_on", {}).get("node_id", "")
            raise TinyForgeError(_missing_sentence(missing, self._describe(where)))
        where = result.get("ran_on")
        if isinstance(where, dict) and where.get("node_id"):
            info = self._nodes.get(where["node_id"]) or self._refresh_nodes().get(
                where["node_id"], {}
            )
            where["resources"] = info.get("resources", [])
        if losses:
            result["lost_attempts"] = losses
        return result

    def _await_dead_node(self) -> list[str]:
        """The node Ray says died, once the GCS has noticed (its health checks take a
        while): to name it in fit.json. Bounded; an empty list when it does not show."""
        deadline = time.monotonic() + DEATH_NOTICE_SECONDS
        while time.monotonic() < deadline:
            dead = self._dead()
            if dead:
                return dead
            time.sleep(0.5)
        return []

    def _cancel(self, refs: list[Any]) -> None:
        """Cancel running trials and wait until they have killed their child processes."""
        ray = self._ray
        if not refs:
            return
        for ref in refs:
            # Not forced: the task gets a KeyboardInterrupt and kills its child processes.
            ray.cancel(ref)
        _, still = ray.wait(refs, num_returns=len(refs), timeout=CANCEL_GRACE_SECONDS)
        for ref in still:
            # A trial that did not stop: its worker is killed; the trial's children watch
            # their parent and end with it (trial.py).
            ray.cancel(ref, force=True)

    def close(self) -> None:
        if self._started:
            self._started = False
            self._ray.shutdown()


def _lost(job: TrialJob, reason: str, losses: list[LostAttempt]) -> TrialResult:
    return {"number": job.number, "ok": False, "lost": reason, "lost_attempts": losses}


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


def _node_died(exc: BaseException) -> bool:
    name = type(exc).__name__
    return "NodeDied" in name or "RayletDied" in name


def _loss_reason(exc: BaseException) -> str:
    name = type(exc).__name__
    if _node_died(exc):
        return "the node running it died"
    if "WorkerCrashed" in name:
        return "the worker running it died (its node may have gone)"
    if "ObjectLost" in name or "OwnerDied" in name:
        return "its result was lost with a node"
    return f"Ray lost it ({name}: {_first_line(exc)})"


def _missing_module(exc: BaseException) -> str | None:
    """The pip package behind a ModuleNotFoundError raised on a node, if that is the cause."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        cause = getattr(current, "cause", None)
        for candidate in (current, cause):
            if isinstance(candidate, ModuleNotFoundError) and candidate.name:
                top = candidate.name.split(".")[0]
                return TRIAL_MODULES.get(top, top)
        current = cause if isinstance(cause, BaseException) else current.__cause__
    return None


def _connect_sentence(address: str, exc: BaseException) -> str:
    text = f"Cannot connect to the Ray cluster at {address}: {_first_line(exc).rstrip('.')}"
    if os.environ.get("RAY_AUTH_MODE", "").lower() != "token":
        # Ray 2.60 clusters check a token, and an explicit address never turns it on.
        text += (
            " (if the cluster uses token authentication, set RAY_AUTH_MODE=token and give "
            "its token in RAY_AUTH_TOKEN_PATH, RAY_AUTH_TOKEN or ~/.ray/auth_token)"
        )
    else:
        text += (
            " (check that the token in RAY_AUTH_TOKEN_PATH, RAY_AUTH_TOKEN or "
            "~/.ray/auth_token is the cluster's)"
        )
    return text + "."


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
