"""Measure the real TFLite Micro arena a model needs, and run models in TFLM.

All TFLM work happens in a child process (`python -m tinyforge.memory._tflm_child`): a
too-small arena can abort the interpreter's process, and a bad model can crash it. This module
never imports `tflite_micro`.

Figures are those of the host build of TFLM in the tflite-micro package, a 64-bit build: the
arena's tail holds structs with pointers that are smaller on a 32-bit Cortex-M, so these are
host figures, not target figures.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np

from tinyforge.errors import StageError
from tinyforge.jobs import child_environment, python_command
from tinyforge.memory._tflm_child import GENEROUS_ARENAS
from tinyforge.memory.tflite_model import TfliteModel, load_tflite

STAGE = "measure"
_CHILD_MODULE = "tinyforge.memory._tflm_child"
# A child that aborts in one trial is replaced by a fresh one that resumes the search; a model
# that keeps aborting is reported rather than retried forever.
MAX_CHILD_RUNS = 20
_LOG_TAIL_LINES = 40


@dataclass(frozen=True)
class AllocationKind:
    """One per-kind line of RecordingMicroAllocator::PrintAllocations()."""

    used: int  # bytes including alignment overhead
    requested: int
    count: int
    unit: str  # what `count` counts: 'allocations', 'tensors', 'NodeAndRegistration structs'


@dataclass
class ArenaMeasurement:
    """What TFLM (64-bit host build) needs for one model."""

    arena_bytes: int  # smallest arena_size that allocates and invokes = minimum kTensorArenaSize
    recorded_total: int  # RecordingMicroAllocator "Arena allocation total", at a 16 MiB arena
    head_bytes: int  # non-persistent part: the planned activation buffers
    tail_bytes: int  # persistent part: TFLM's structs, quantization data, kernel buffers
    breakdown: dict[str, int]  # per-kind bytes used, e.g. 'TfLiteEvalTensor data' → 144
    invoke_ok: bool  # False: the model allocates but cannot invoke; arena_bytes is allocation only
    kinds: dict[str, AllocationKind] = field(default_factory=dict)
    report: str = ""  # the raw print_allocations() text
    trials: int = 0
    aborted_trials: tuple[int, ...] = ()  # arena sizes at which TFLM aborted the child process
    seconds: float = 0.0

    @property
    def planning_overhead(self) -> int:
        """Bytes beyond the recorded total that allocation needs transiently (planner scratch)."""
        return self.arena_bytes - self.recorded_total


@dataclass
class _ChildRun:
    returncode: int
    events: list[dict[str, Any]]
    stderr: str

    def result(self) -> dict[str, Any] | None:
        results = [e for e in self.events if e.get("event") == "result"]
        return results[-1] if results else None

    def first(self, event: str) -> dict[str, Any] | None:
        return next((e for e in self.events if e.get("event") == event), None)


# --- parsing print_allocations() ----------------------------------------------------------

_TOTAL_RE = re.compile(r"Arena allocation (total|head|tail) (\d+) bytes")
_KIND_RE = re.compile(
    r"'([^']+)' used (\d+) bytes with alignment overhead "
    r"\(requested (\d+) bytes for (\d+) ([^)]*)\)"
)


def parse_allocation_report(text: str) -> tuple[dict[str, int], dict[str, AllocationKind]]:
    """Totals ({'total', 'head', 'tail'} → bytes) and per-kind lines of print_allocations()."""
    totals = {m.group(1): int(m.group(2)) for m in _TOTAL_RE.finditer(text)}
    kinds = {
        m.group(1): AllocationKind(
            used=int(m.group(2)),
            requested=int(m.group(3)),
            count=int(m.group(4)),
            unit=m.group(5).strip(),
        )
        for m in _KIND_RE.finditer(text)
    }
    return totals, kinds


# --- public API ----------------------------------------------------------------------------


def measure_arena(model_path: Path | str, *, timeout: float = 120) -> ArenaMeasurement:
    """The smallest arena with which the real TFLM interpreter allocates and invokes the model.

    One child process measures the recorded allocation at a generous arena and then searches
    in-process from the recorded total (about a dozen trials of a millisecond each). If TFLM
    aborts the child in a trial, that size counts as too small and a new child resumes the
    search from the bounds found so far.
    """
    started = time.monotonic()
    path = Path(model_path)
    model = load_tflite(path)  # a corrupt file gets a clear ModelFileError before TFLM sees it
    deadline = started + timeout

    lo, hi = 0, None
    guess: int | None = None
    invoke = True
    report: dict[str, Any] | None = None
    trials = 0
    aborted: list[int] = []
    for _ in range(MAX_CHILD_RUNS):
        args = ["measure", str(path), "--lo", str(lo)]
        if hi is not None:
            args += ["--hi", str(hi)]
        if guess is not None:
            args += ["--guess", str(guess)]
        if not invoke:
            args.append("--alloc-only")
        run = _run_child(args, deadline, timeout, path)

        if report is None:
            report = run.first("report")
            if report is not None:
                totals, _ = parse_allocation_report(report["text"])
                guess = totals.get("total")
                invoke = bool(report.get("invoke_ok", True))
                # The generous arena worked: with it as upper bound a resumed search needs
                # no second generous run.
                hi = int(report["arena"])
        open_trial = None
        for event in run.events:
            if event.get("event") == "trial":
                trials += 1
                open_trial = int(event["arena"])
            elif event.get("event") == "trial_result":
                open_trial = None
                size = int(event["arena"])
                if event.get("ok"):
                    hi = size if hi is None else min(hi, size)
                else:
                    lo = max(lo, size)

        result = run.result()
        if result is not None and result.get("ok"):
            if report is None:
                raise StageError(STAGE, f"TFLM measured {path.name} without an allocation report.")
            return _measurement(result, report, trials, aborted, time.monotonic() - started)
        if result is not None:
            raise _failure_error(path, model, run, result)
        if open_trial is None or report is None:
            # Died outside a trial (loading the model or at the generous arena): not a
            # question of arena size.
            raise _crash_error(path, model, run)
        # Aborted inside a trial: TFLM aborts on some too-small arenas instead of failing,
        # so the size counts as too small and a fresh child carries on above it.
        aborted.append(open_trial)
        lo = max(lo, open_trial)
    raise StageError(
        STAGE,
        f"TFLM kept crashing while searching the arena size of {path.name} "
        f"({len(aborted)} aborted trials); its arena need could not be measured.",
        log_tail=_tail(run.stderr),
    )


def arena_works(
    model_path: Path | str, arena_bytes: int, *, invoke: bool = True, timeout: float = 60
) -> bool:
    """Whether TFLM allocates (and invokes, with zeros) the model in exactly `arena_bytes`.

    A fresh child process per call; a trial that aborts the process counts as not working.
    """
    path = Path(model_path)
    model = load_tflite(path)
    args = ["trial", str(path), "--arena", str(int(arena_bytes))]
    if not invoke:
        args.append("--alloc-only")
    run = _run_child(args, time.monotonic() + timeout, timeout, path)
    result = run.result()
    if result is None and run.returncode >= 0:
        # Not killed by TFLM but ended without an answer (e.g. tflite_micro missing): that
        # says nothing about the arena, so it must not read as "too small".
        raise _crash_error(path, model, run)
    return bool(result and result.get("ok"))


def run_tflm(
    model_path: Path | str,
    inputs: np.ndarray,
    arena_bytes: int,
    *,
    output_index: int = 0,
    timeout: float = 300,
) -> np.ndarray:
    """Run N samples through the real TFLM interpreter (one child process for all of them).

    `inputs` holds N samples of the model's (single) input, with or without its batch-of-1
    axis; float samples for a quantized input are quantized with the input's scale and zero
    point, as the converted model expects. Returns the raw output tensor per sample, shape
    (N, *output shape without its batch-of-1 axis), in the output's own dtype (int8 for a
    full-integer model).
    """
    path = Path(model_path)
    model = load_tflite(path)
    if len(model.inputs) != 1:
        raise ValueError(
            f"run_tflm handles single-input models; {path.name} has {len(model.inputs)}."
        )
    if not 0 <= output_index < len(model.outputs):
        raise ValueError(f"{path.name} has no output {output_index}.")
    batch = _prepare_inputs(model, np.asarray(inputs), path.name)
    out_shape = model.output_tensors[output_index].shape

    with tempfile.TemporaryDirectory(prefix="tinyforge-tflm-") as tmp:
        in_path, out_path = Path(tmp) / "inputs.npy", Path(tmp) / "outputs.npy"
        np.save(in_path, batch, allow_pickle=False)
        args = ["run", str(path), str(in_path), str(out_path), "--arena", str(int(arena_bytes))]
        args += ["--output-index", str(output_index)]
        run = _run_child(args, time.monotonic() + timeout, timeout, path)
        result = run.result()
        if result is None:
            raise _crash_error(path, model, run)
        if not result.get("ok"):
            raise _failure_error(path, model, run, result)
        outputs = np.load(out_path, allow_pickle=False)
    if len(out_shape) >= 1 and out_shape[0] == 1 and outputs.ndim >= 2 and outputs.shape[1] == 1:
        outputs = outputs[:, 0]
    decoded: np.ndarray = outputs
    return decoded


def tflm_package_version() -> str:
    """Installed tflite-micro version, read from package metadata (no import of TFLM)."""
    try:
        return metadata.version("tflite-micro")
    except metadata.PackageNotFoundError:
        return "not installed"


# --- helpers -------------------------------------------------------------------------------


def prepare_inputs(model: TfliteModel, inputs: np.ndarray, name: str) -> np.ndarray:
    """Samples as the model's input tensor holds them: batch axis, dtype, int8 quantization."""
    return _prepare_inputs(model, np.asarray(inputs), name)


def _prepare_inputs(model: TfliteModel, inputs: np.ndarray, name: str) -> np.ndarray:
    tensor = model.input_tensors[0]
    shape = tensor.shape
    if inputs.shape[1:] == shape:
        batch = inputs
    elif shape and shape[0] == 1 and inputs.shape[1:] == shape[1:]:
        batch = inputs[:, np.newaxis]
    else:
        raise ValueError(
            f"Inputs of shape {inputs.shape} do not fit the input {shape} of {name}: "
            f"expected (N, {', '.join(map(str, shape))}) or (N, {', '.join(map(str, shape[1:]))})."
        )
    want = np.dtype(tensor.dtype)
    if batch.dtype == want:
        return np.ascontiguousarray(batch)
    if np.issubdtype(batch.dtype, np.floating) and np.issubdtype(want, np.integer) and tensor.scale:
        info = np.iinfo(want)
        quantized = np.round(batch / tensor.scale[0] + tensor.zero_point[0])
        return np.clip(quantized, info.min, info.max).astype(want)
    if np.issubdtype(want, np.floating):
        return batch.astype(want)
    raise ValueError(f"Inputs of dtype {batch.dtype} do not fit the {want} input of {name}.")


def _child_argv(args: list[str]) -> list[str]:
    """Command line of the TFLM child process (a seam for tests that simulate aborts)."""
    return python_command("-m", _CHILD_MODULE, *args)  # safe path (-P)


def _child_env() -> dict[str, str]:
    env = child_environment()  # without the API key
    # Make the child import this very tinyforge, even when the parent was started from a
    # source tree that is not the installed one.
    package_root = str(Path(__file__).resolve().parents[2])
    env["PYTHONPATH"] = os.pathsep.join(p for p in (package_root, env.get("PYTHONPATH")) if p)
    return env


def _run_child(args: list[str], deadline: float, timeout: float, model_path: Path) -> _ChildRun:
    remaining = deadline - time.monotonic()
    if remaining <= 0:
        raise _timeout_error(model_path, timeout)
    try:
        proc = subprocess.run(
            _child_argv(args),
            capture_output=True,
            text=True,
            errors="replace",
            timeout=remaining,
            env=_child_env(),
            stdin=subprocess.DEVNULL,
            check=False,
        )
    except subprocess.TimeoutExpired:
        raise _timeout_error(model_path, timeout) from None
    events = []
    for line in proc.stdout.splitlines():
        line = line.strip()
        if line.startswith("{"):
            try:
                event = json.loads(line)
            except json.JSONDecodeError:
                continue
            if isinstance(event, dict):
                events.append(event)
    return _ChildRun(returncode=proc.returncode, events=events, stderr=proc.stderr)


def _measurement(
    result: dict[str, Any], report: dict[str, Any], trials: int, aborted: list[int], seconds: float
) -> ArenaMeasurement:
    totals, kinds = parse_allocation_report(report["text"])
    return ArenaMeasurement(
        arena_bytes=int(result["arena_bytes"]),
        recorded_total=totals.get("total", 0),
        head_bytes=totals.get("head", 0),
        tail_bytes=totals.get("tail", 0),
        breakdown={name: kind.used for name, kind in kinds.items()},
        invoke_ok=bool(result.get("invoke_ok", True)),
        kinds=kinds,
        report=report["text"].strip(),
        trials=trials,
        aborted_trials=tuple(aborted),
        seconds=seconds,
    )


# --- turning TFLM's stderr into one sentence ------------------------------------------------

_MARK_RE = re.compile(r"^\[tinyforge-child\] stage=(\w+)(?: arena=(\d+))?", re.MULTILINE)
_MISSING_OP_RE = re.compile(r"Didn't find op for builtin opcode '([^']+)'")
_SHORT_RE = re.compile(r"Failed to (?:allocate|resize)[^\n]*missing: \d+")
_NODE_RE = re.compile(r"Node (\S+) \(number (\d+)\) failed to (prepare|invoke)")


def _last_stage(stderr: str) -> tuple[str | None, int | None, str]:
    """The last stage marker, its arena, and what TFLM printed after it."""
    marks = list(_MARK_RE.finditer(stderr))
    if not marks:
        return None, None, stderr
    last = marks[-1]
    arena = int(last.group(2)) if last.group(2) else None
    return last.group(1), arena, stderr[last.end() :]


def _tflm_lines(text: str) -> list[str]:
    return [
        line.strip()
        for line in text.splitlines()
        if line.strip() and not line.startswith("[tinyforge-child]")
    ]


def _op_hint(text: str) -> str:
    node = _NODE_RE.search(text)
    if node:
        return f" in op {node.group(1)} (node {node.group(2)}, {node.group(3)})"
    return ""


def _failure_error(
    path: Path, model: TfliteModel, run: _ChildRun, result: dict[str, Any]
) -> StageError:
    """A clean failure reported by the child (TFLM returned an error, no crash)."""
    stage = result.get("stage") or "allocate"
    _, _, after = _last_stage(run.stderr)
    missing = _MISSING_OP_RE.search(run.stderr)
    log_tail = _tail(run.stderr)
    if missing:
        return StageError(
            STAGE,
            f"TFLM cannot run {path.name}: it uses op {missing.group(1)}, which this TFLM "
            f"build (tflite-micro {tflm_package_version()}) does not implement.",
            log_tail=log_tail,
        )
    customs = sorted(
        {op.op.removeprefix("CUSTOM:") for op in model.ops if op.op.startswith("CUSTOM:")}
    )
    if customs and "Failed to get registration from op code CUSTOM" in run.stderr:
        return StageError(
            STAGE,
            f"TFLM cannot run {path.name}: it uses custom op(s) {', '.join(customs)}, "
            "for which TFLM has no kernel.",
            log_tail=log_tail,
        )
    arena = result.get("arena")
    size = f" with a {int(arena):,}-byte arena" if arena else ""
    if stage == "allocate" and _SHORT_RE.search(after):
        # TFLM stops at the first allocation that does not fit, so its "missing: N" says
        # nothing about the total shortfall: leave the number out.
        return StageError(
            STAGE,
            f"TFLM could not allocate {path.name}{size}: the arena is too small for it.",
            log_tail=log_tail,
        )
    lines = _tflm_lines(after) or _tflm_lines(run.stderr)
    detail = f" (TFLM said: {lines[-1]})" if lines else ""
    doing = "allocating tensors" if stage == "allocate" else "invoking the model"
    return StageError(
        STAGE,
        f"TFLM failed {doing} for {path.name}{size}{_op_hint(after)}{detail}.",
        log_tail=log_tail,
    )


def _crash_error(path: Path, model: TfliteModel, run: _ChildRun) -> StageError:
    """The child died (signal) or ended without a result line."""
    stage, arena, after = _last_stage(run.stderr)
    code = run.returncode
    if code < 0:
        try:
            how = f"crashed ({signal.Signals(-code).name})"
        except ValueError:
            how = f"crashed (signal {-code})"
    else:
        how = f"exited with status {code} without a result"
    doing = {
        "allocate": "allocating tensors",
        "invoke": "invoking the model",
        "done": "finishing a run",
    }.get(stage or "", "loading the model")
    size = f" with a {arena:,}-byte arena" if arena else ""
    if "All temp buffers must be freed" in run.stderr:
        cause = "the arena was too small and TFLM aborted instead of reporting an error"
    elif code == -signal.SIGKILL:
        cause = "the process was killed, most likely for running out of memory"
    elif stage == "allocate" and arena is not None and arena < GENEROUS_ARENAS[0]:
        cause = (
            "TFLM crashes on some too-small arenas instead of reporting an error, so the arena "
            "is most likely too small for this model"
        )
    elif stage == "invoke":
        cause = (
            "a kernel likely read or wrote out of bounds, so the model probably uses an op, "
            "shape or tensor type that this TFLM build mishandles"
        )
    elif code > 0 and "Traceback" in run.stderr:
        lines = _tflm_lines(run.stderr)
        cause = f"the TFLM child failed ({lines[-1] if lines else 'Python error'})"
    else:
        cause = "TFLM could not handle the model's structure, which may be malformed or unsupported"
    op_hint = _op_hint(after)
    if code < 0 and code != -signal.SIGKILL and stage in (None, "allocate"):
        # TFLM aborts without a word on some quantization parameters (SOFTMAX's Prepare on a
        # degenerate input scale): the model's own scales name the op and the cause.
        from tinyforge.health.quant import crash_explanation

        explained = crash_explanation(path)
        if explained is not None:
            op_hint, cause = op_hint or explained[0], explained[1]
    return StageError(
        STAGE,
        f"TFLM {how} while {doing} for {path.name}{size}{op_hint}: {cause}.",
        log_tail=_tail(run.stderr),
    )


def _timeout_error(path: Path, timeout: float) -> StageError:
    return StageError(
        STAGE,
        f"Running {path.name} in TFLM did not finish within {timeout:g} s; the model may be "
        "too large for a host measurement or stuck in an op.",
    )


def _tail(text: str) -> str:
    return "\n".join(text.splitlines()[-_LOG_TAIL_LINES:])
