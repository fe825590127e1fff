"""One trial of `tinyforge fit`: train a candidate briefly, convert it, measure it in TFLM.

`run_trial` is what an engine runs (a thread of the local pool, or a Ray task on any node):
it lays out a throw-away project folder with the candidate's train.py, rendered by TinyForge's
own template with a few epochs, and runs the same machinery a build does, each step in a child
process:

1. `python -m tinyforge.fit.trial DIR`: the project's train.py as a script (run_path), then
   `convert.keras_worker.convert` on what it saved (int8, accuracy on the test split), in one
   interpreter so TensorFlow is imported once per trial;
2. `memory.measure.measure_arena`: the real TFLM interpreter finds the smallest arena.

Every figure the search compares comes from there. The child gets one TensorFlow thread and
deterministic ops, so the same candidate trains to the same accuracy on any engine.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import runpy
import shutil
import sys
import tarfile
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, TypedDict

DATA_DIR = "data"
LOG_TAIL_LINES = 30
# Same numbers whatever the engine: one thread per trial (the engines run trials side by
# side), deterministic kernels, fixed hashing.
TRIAL_ENV = {
    "TF_CPP_MIN_LOG_LEVEL": "2",
    "TF_NUM_INTRAOP_THREADS": "1",
    "TF_NUM_INTEROP_THREADS": "1",
    "OMP_NUM_THREADS": "1",
    "TF_DETERMINISTIC_OPS": "1",
    "PYTHONHASHSEED": "0",
}


class LostAttempt(TypedDict):
    """A run of a trial that went away with its Ray worker or node."""

    error: str  # Ray's exception type
    reason: str
    message: str
    dead_nodes: list[dict[str, str]]  # {"node": described, "why": the GCS's death reason}


class TrialResult(TypedDict, total=False):
    """What one trial gives back: `run_trial`'s figures or failure, then where it ran (the
    engine's). Carried as a plain dict, pickled by Ray."""

    number: int
    ok: bool
    error: str  # one sentence: why it failed
    log_tail: str
    missing: list[str]  # pip packages the node lacks
    lost: str  # why it never finished (its node died)
    lost_attempts: list[LostAttempt]
    seconds: float
    data: str | None  # how the dataset reached it (run_trial); the engine moves it to ran_on
    ran_on: dict[str, Any]  # engine, host, pid; on Ray the node id, address and resources
    accuracy: float  # the quantized model's, on the test split
    float_accuracy: float
    model_bytes: int
    arena_bytes: int  # measured by the host TFLM interpreter
    arena_bytes_target: int  # the same on the 32-bit target
    ops: list[str]
    macs: int
    params: int | None
    epochs_run: int | None


TrialStatus = Literal["pending", "duplicate", "rejected", "lost", "failed", "over-budget", "kept"]


class TrialRecord(TypedDict, total=False):
    """One trial of a search as fit.json keeps it: the candidate, what happened to it and, once
    trained, its measured figures (a result's, under the same keys)."""

    number: int
    params: dict[str, Any]  # the search space's choices
    candidate: str  # in words
    input_shape: list[int]
    status: TrialStatus
    same_as: int  # a duplicate's original trial
    reasons: list[str]  # why it was rejected, lost or over budget
    static: dict[str, Any]  # the static screen's figures
    constraints: dict[str, float] | None  # Optuna's (<= 0: satisfied)
    trained: bool
    on_front: bool
    seconds: float | None
    ran_on: dict[str, Any]
    lost_attempts: list[LostAttempt]
    error: str | None
    log_tail: str | None
    accuracy: float
    float_accuracy: float
    model_bytes: int
    arena_bytes: int
    arena_bytes_target: int
    ops: list[str]
    macs: int
    weights: int | None
    epochs_run: int | None


@dataclass
class TrialJob:
    """Everything a trial needs, picklable for a process on another machine."""

    number: int
    train_py: str  # the candidate's train.py; its dataset path is data/<data_name>
    quantization: str = "int8"
    data_name: str | None = None  # the dataset's file or folder name, None for built-in data
    data_path: str | None = None  # where it is on the machine that planned the search
    timeout: float = 1800.0
    extra_env: dict[str, str] = field(default_factory=dict)


def pack_data(path: Path) -> bytes:
    """The dataset as a gzipped tar, for engines whose workers cannot see this machine's
    files (a Ray cluster elsewhere)."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        tar.add(path, arcname=path.name)
    return buffer.getvalue()


def _lay_out_data(job: TrialJob, folder: Path, archive: bytes | None) -> str | None:
    """The trial's data/ folder; how the data got there ("linked" or "shipped")."""
    if job.data_name is None:
        return None
    data = folder / DATA_DIR
    data.mkdir()
    source = Path(job.data_path) if job.data_path else None
    if source is not None and source.exists():
        (data / job.data_name).symlink_to(source, target_is_directory=source.is_dir())
        return "linked"
    if archive is None:
        raise FileNotFoundError(
            f"the dataset {job.data_path} is not on this machine and was not shipped"
        )
    with tarfile.open(fileobj=io.BytesIO(archive), mode="r:gz") as tar:
        tar.extractall(data, filter="data")
    return "shipped"


def _child_env(job: TrialJob) -> dict[str, str]:
    # The child imports tinyforge from wherever this process did (a Ray worker may have it
    # from the job's runtime environment rather than from site-packages).
    package_root = str(Path(__file__).resolve().parents[2])
    path = os.pathsep.join(p for p in (package_root, os.environ.get("PYTHONPATH")) if p)
    return {**TRIAL_ENV, "PYTHONPATH": path, **job.extra_env}


def run_trial(
    job: TrialJob,
    archive: bytes | None = None,
    cancel: threading.Event | None = None,
    on_line: Any = None,
) -> TrialResult:
    """Train, convert and measure one candidate: its figures, or the failure."""
    from tinyforge import jobs
    from tinyforge.memory.estimate import estimate_model
    from tinyforge.memory.measure import measure_arena
    from tinyforge.memory.target import target_arena_bytes
    from tinyforge.memory.tflite_model import load_tflite

    started = time.monotonic()
    result: TrialResult = {"number": job.number, "ok": False}
    folder = Path(tempfile.mkdtemp(prefix=f"tinyforge-trial-{job.number}-"))
    try:
        # Where fit.json tells where the trial ran, it also tells how its data got there.
        result["data"] = _lay_out_data(job, folder, archive)
        (folder / "train.py").write_text(job.train_py, encoding="utf-8")
        run = jobs.run(
            jobs.python_command("-m", "tinyforge.fit.trial", str(folder), job.quantization),
            cwd=folder,
            env=_child_env(job),
            on_line=on_line,
            cancel=cancel,
            timeout=job.timeout,
        )
        if not run.ok:
            from tinyforge.train import failure_sentence

            result["error"] = failure_sentence(run.tail)
            result["log_tail"] = run.tail_text(LOG_TAIL_LINES)
            return result
        metrics = json.loads((folder / "artifacts" / "metrics.json").read_text("utf-8"))
        converted = json.loads((folder / "artifacts" / "convert.json").read_text("utf-8"))
        tflite = folder / "model.tflite"
        model = load_tflite(tflite)
        arena = measure_arena(tflite)
        result.update(
            {
                "ok": True,
                "accuracy": converted["tflite_accuracy"],
                "float_accuracy": converted["float_accuracy"],
                "model_bytes": model.model_bytes,
                "arena_bytes": arena.arena_bytes,
                "arena_bytes_target": target_arena_bytes(arena, model),
                "ops": sorted(model.op_counts()),
                "macs": sum(layer.macs for layer in estimate_model(model).layers),
                "params": metrics.get("params"),
                "epochs_run": metrics.get("epochs_run"),
            }
        )
        return result
    except (OSError, ValueError, KeyError) as exc:
        result["error"] = f"{type(exc).__name__}: {exc}"
        return result
    except Exception as exc:
        from tinyforge.errors import TinyForgeError

        if not isinstance(exc, TinyForgeError):
            raise
        result["error"] = str(exc)
        return result
    except BaseException:
        # A Ray cancel arrives as KeyboardInterrupt in this thread: the training child runs
        # in its own session, so it is killed here rather than left to finish alone.
        _kill_children()
        raise
    finally:
        result["seconds"] = round(time.monotonic() - started, 2)
        shutil.rmtree(folder, ignore_errors=True)


def _kill_children() -> None:
    import psutil

    from tinyforge.jobs import kill_tree

    with contextlib.suppress(psutil.Error):
        for child in psutil.Process().children():
            kill_tree(child.pid)


# -- the child process ---------------------------------------------------------------------


def _exit_with_parent() -> None:
    """End this process when the one that started it is gone.

    The child runs in its own session (so a cancel can kill its tree), which also means
    nothing ends it when its parent is killed outright: a Ray worker force-cancelled, or a
    node whose raylet died. Training on as an orphan would hold a core of the cluster.
    """
    parent = os.getppid()

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(1.0)
        os._exit(70)

    threading.Thread(target=watch, name="parent-watch", daemon=True).start()


def main(argv: list[str] | None = None) -> int:
    """`python -m tinyforge.fit.trial DIR [QUANTIZATION]`: train.py, then its conversion."""
    args = list(sys.argv[1:] if argv is None else argv)
    _exit_with_parent()
    folder = Path(args[0]).resolve()
    quantization = args[1] if len(args) > 1 else "int8"
    os.chdir(folder)
    # Exactly `python train.py`: its own __main__, its own sys.argv.
    sys.argv = [str(folder / "train.py")]
    runpy.run_path(str(folder / "train.py"), run_name="__main__")
    from tinyforge.convert.keras_worker import convert

    result = convert(folder, quantization, "artifacts")
    (folder / "artifacts" / "convert.json").write_text(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
