"""Child process that runs the real TFLite Micro interpreter.

Run as `python -m tinyforge.memory._tflm_child COMMAND ...` (see `main`). TFLM can abort or
crash the whole process (a too-small arena, a kernel reading out of bounds), so it is only
ever imported here, never in the CLI or the language server process.

Protocol: every line on stdout is one JSON object with an "event" key, flushed at once so
that the lines written before an abort still reach the parent; the last line is the
{"event": "result", ...} object. TFLM's own messages go to stderr, where this process also
writes "[tinyforge-child] stage=... arena=..." markers so that the parent can tell which
stage a crash happened in. The parent (tinyforge.memory.measure / .ops) interprets both.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import json
import os
import re
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

# Tried in turn to get a first working interpreter: untouched arena pages cost no RAM, so a
# generous first size is free; the larger one only matters for very large models.
GENEROUS_ARENAS = (16 * 1024 * 1024, 1024 * 1024 * 1024)
# First step away from the recorded total: the smallest working arena has been 100-350 B
# above it, so one step usually brackets the answer.
FIRST_STEP = 256

_SENTINEL_CUSTOM = "TINYFORGE_PROBE_SENTINEL"


def emit(event: str, **fields: Any) -> None:
    sys.stdout.write(json.dumps({"event": event, **fields}) + "\n")
    sys.stdout.flush()


def mark(stage: str, **fields: Any) -> None:
    """Write a stage marker to fd 2, in order with TFLM's own messages."""
    extra = "".join(f" {k}={v}" for k, v in fields.items())
    sys.stderr.write(f"[tinyforge-child] stage={stage}{extra}\n")
    sys.stderr.flush()


def _flush_c_stdio() -> None:
    # TFLM prints through C stdio; flush it so nothing is left in a buffer when fd 2 moves.
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None).fflush(None)


def capture_fd2(fn: Callable[[], object]) -> str:
    """Run fn() with fd 2 redirected into a temp file and return what was written there."""
    sys.stderr.flush()
    _flush_c_stdio()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as tmp:
        try:
            os.dup2(tmp.fileno(), 2)
            fn()
        finally:
            _flush_c_stdio()
            os.dup2(saved, 2)
            os.close(saved)
        tmp.seek(0)
        return tmp.read().decode("utf-8", "replace").replace("\r", "")


# --- interpreter helpers ---------------------------------------------------------------


def _runtime() -> Any:
    from tflite_micro import runtime

    return runtime


def _input_specs(interpreter: Any) -> list[tuple[tuple[int, ...], Any]]:
    """(shape, numpy dtype) of every input, read from a working interpreter."""
    specs: list[tuple[tuple[int, ...], Any]] = []
    index = 0
    while True:
        try:
            details = interpreter.get_input_details(index)
        except (IndexError, ValueError):
            return specs
        specs.append((tuple(int(d) for d in details["shape"]), details["dtype"]))
        index += 1


def try_arena(
    model: bytes,
    arena: int,
    specs: list[tuple[tuple[int, ...], Any]] | None,
    invoke: bool,
) -> tuple[Any | None, str | None]:
    """Allocate, and invoke with zeros if asked.

    Returns (interpreter, None) on success and (None, failed stage) on failure.
    """
    runtime = _runtime()
    mark("allocate", arena=arena)
    try:
        interpreter = runtime.Interpreter.from_bytes(model, arena_size=arena)
    except Exception:
        return None, "allocate"
    if invoke:
        mark("invoke", arena=arena)
        try:
            for index, (shape, dtype) in enumerate(specs or _input_specs(interpreter)):
                interpreter.set_input(np.zeros(shape, dtype=dtype), index)
            interpreter.invoke()
        except Exception:
            return None, "invoke"
    mark("done", arena=arena)
    return interpreter, None


def smallest_working(
    works: Callable[[int], bool], guess: int, lo: int, hi: int, first_step: int = FIRST_STEP
) -> int:
    """Smallest size in (lo, hi] for which works() holds, assuming it is monotonic.

    `lo` is known to fail (0 if nothing is known) and `hi` known to work. The guess is tried
    first, then the search gallops away from it with doubling steps until the answer is
    bracketed, then bisects to the byte: a dozen cheap in-process trials.
    """
    if lo < guess < hi:
        if works(guess):
            hi = guess
        else:
            lo = guess
    step = first_step
    if hi == guess:
        # The guess worked: walk down until something fails.
        while hi - lo > step:
            candidate = hi - step
            if works(candidate):
                hi = candidate
                step *= 2
            else:
                lo = candidate
                break
    else:
        while hi - lo > step:
            candidate = lo + step
            if works(candidate):
                hi = candidate
                break
            lo = candidate
            step *= 2
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if works(mid):
            hi = mid
        else:
            lo = mid
    return hi


# --- commands ----------------------------------------------------------------------------


def cmd_measure(args: argparse.Namespace) -> int:
    model = Path(args.model).read_bytes()
    invoke = not args.alloc_only
    hi = args.hi
    interpreter = None
    if hi is None:
        for arena in GENEROUS_ARENAS:
            emit("generous", arena=arena)
            interpreter, failed_stage = try_arena(model, arena, None, invoke=True)
            if interpreter is None and failed_stage == "invoke":
                # Allocation works but invoking does not: measure allocation alone rather than
                # give up, and say so (invoke_ok false).
                invoke = False
                interpreter, failed_stage = try_arena(model, arena, None, invoke=False)
            if interpreter is not None:
                hi = arena
                break
        if interpreter is None or hi is None:
            emit("result", ok=False, stage="allocate", arena=GENEROUS_ARENAS[-1])
            return 0
        report = capture_fd2(interpreter.print_allocations)
        emit("report", text=report, arena=hi, invoke_ok=invoke)
        total = re.search(r"Arena allocation total (\d+) bytes", report)
        if args.guess is None and total:
            # Start at the recorded total: far smaller sizes are pointless and some of them
            # crash TFLM outright.
            args.guess = int(total.group(1))
    else:
        interpreter, failed_stage = try_arena(model, hi, None, invoke=invoke)
        if interpreter is None:
            emit("result", ok=False, stage=failed_stage, arena=hi)
            return 0
    specs = _input_specs(interpreter)
    del interpreter

    def works(arena: int) -> bool:
        emit("trial", arena=arena)
        result, failed = try_arena(model, arena, specs, invoke)
        emit("trial_result", arena=arena, ok=result is not None, stage=failed)
        return result is not None

    smallest = smallest_working(works, args.guess or 0, args.lo, hi)
    emit("result", ok=True, arena_bytes=smallest, invoke_ok=invoke)
    return 0


def cmd_trial(args: argparse.Namespace) -> int:
    model = Path(args.model).read_bytes()
    emit("trial", arena=args.arena)
    interpreter, failed = try_arena(model, args.arena, None, invoke=not args.alloc_only)
    emit("result", ok=interpreter is not None, arena=args.arena, stage=failed)
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    model = Path(args.model).read_bytes()
    inputs = np.load(args.inputs, allow_pickle=False)
    interpreter, failed = try_arena(model, args.arena, None, invoke=False)
    if interpreter is None:
        emit("result", ok=False, stage=failed, arena=args.arena)
        return 0
    outputs = []
    mark("invoke", arena=args.arena, samples=len(inputs))
    for sample in inputs:
        try:
            interpreter.set_input(np.ascontiguousarray(sample), 0)
            interpreter.invoke()
        except Exception as exc:
            emit("result", ok=False, stage="invoke", arena=args.arena, error=str(exc))
            return 0
        outputs.append(interpreter.get_output(args.output_index))
    mark("done", arena=args.arena)
    np.save(args.outputs, np.stack(outputs), allow_pickle=False)
    emit("result", ok=True, samples=len(outputs))
    return 0


# --- op probing ----------------------------------------------------------------------------


def _probe_model(codes: list[tuple[int, str | None]], var_handle_code: int) -> bytes:
    """A model whose subgraph runs the given (builtin code, custom code) ops in order.

    TFLM looks every op up in its resolver (and parses its options) before running any
    kernel, and stops at the first op it cannot find; the probed op is followed by an op
    that is known to be missing, so no kernel of the probed op is ever initialised.
    """
    import flatbuffers
    from tflite_micro.tensorflow.lite.micro.python import schema_py_generated as schema

    model = schema.ModelT()
    model.version = 3
    model.operatorCodes = []
    model.subgraphs = []
    operators = []
    for index, (code, custom) in enumerate(codes):
        opcode = schema.OperatorCodeT()
        opcode.builtinCode = code
        # Codes above 127 are stored only in builtin_code, the old int8 field says so.
        opcode.deprecatedBuiltinCode = min(
            code, schema.BuiltinOperator.PLACEHOLDER_FOR_GREATER_OP_CODES
        )
        opcode.version = 1
        if custom is not None:
            opcode.customCode = custom
        model.operatorCodes.append(opcode)
        operator = schema.OperatorT()
        operator.opcodeIndex = index
        operator.inputs = [0]
        operator.outputs = [0]
        if code == var_handle_code:
            # The Python wrapper reads VAR_HANDLE's shared_name before TFLM sees the model.
            operator.builtinOptionsType = schema.BuiltinOptions.VarHandleOptions
            operator.builtinOptions = schema.VarHandleOptionsT()
            operator.builtinOptions.sharedName = "probe"
        operators.append(operator)
    tensor = schema.TensorT()
    tensor.shape = [1]
    tensor.type = schema.TensorType.INT8
    tensor.buffer = 0
    tensor.name = "probe"
    graph = schema.SubGraphT()
    graph.tensors = [tensor]
    graph.operators = operators
    graph.inputs = [0]
    graph.outputs = [0]
    model.subgraphs = [graph]
    model.buffers = [schema.BufferT()]
    builder = flatbuffers.Builder(1024)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output())


def _lookup_log(model: bytes) -> str:
    runtime = _runtime()
    result: dict[str, str] = {}

    def build() -> None:
        try:
            runtime.Interpreter.from_bytes(model, arena_size=64 * 1024)
            result["status"] = "allocated"
        except Exception as exc:
            result["status"] = f"{type(exc).__name__}: {exc}"

    return capture_fd2(build) + "\n" + result["status"]


def cmd_ops(args: argparse.Namespace) -> int:
    from tflite_micro import __version__
    from tflite_micro.tensorflow.lite.micro.python import schema_py_generated as schema

    ops = schema.BuiltinOperator
    names = {value: name for name, value in vars(ops).items() if not name.startswith("_")}
    skip = set(args.skip)
    custom_code = ops.CUSTOM
    not_ops = {custom_code, ops.PLACEHOLDER_FOR_GREATER_OP_CODES}
    var_handle = getattr(ops, "VAR_HANDLE", -1)

    supported: list[str] = []
    missing: list[str] = []
    unknown: dict[str, str] = {}
    for code in sorted(names):
        name = names[code]
        if code in not_ops or name in skip:
            continue
        emit("probe", op=name)
        log = _lookup_log(_probe_model([(code, None), (custom_code, _SENTINEL_CUSTOM)], var_handle))
        if f"Didn't find op for builtin opcode '{name}'" in log:
            missing.append(name)
        elif "Failed to get registration from op code CUSTOM" in log:
            # TFLM got past the probed op and stopped at the sentinel: it has the op.
            supported.append(name)
        else:
            unknown[name] = log.strip()[-300:]

    custom: dict[str, bool | None] = {}
    if args.custom:
        # For custom ops the roles swap: the probed custom op comes first and a builtin that
        # TFLM lacks is the sentinel, whose "Didn't find" line proves the custom op was found.
        sentinel = next((c for c in sorted(names) if names[c] in missing), None)
        for name in args.custom:
            if sentinel is None:
                custom[name] = None
                continue
            emit("probe", op=f"CUSTOM:{name}")
            log = _lookup_log(_probe_model([(custom_code, name), (sentinel, None)], var_handle))
            if f"Didn't find op for builtin opcode '{names[sentinel]}'" in log:
                custom[name] = True
            elif "Failed to get registration from op code CUSTOM" in log:
                custom[name] = False
            else:
                custom[name] = None
    emit(
        "result",
        ok=True,
        tflite_micro_version=__version__,
        supported=supported,
        missing=missing,
        unknown=unknown,
        custom=custom,
    )
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tinyforge.memory._tflm_child")
    sub = parser.add_subparsers(dest="command", required=True)

    measure = sub.add_parser("measure", help="find the smallest working arena")
    measure.add_argument("model")
    measure.add_argument("--lo", type=int, default=0, help="largest arena known to fail")
    measure.add_argument("--hi", type=int, default=None, help="smallest arena known to work")
    measure.add_argument("--guess", type=int, default=None, help="first size to try")
    measure.add_argument("--alloc-only", action="store_true", help="do not invoke")
    measure.set_defaults(fn=cmd_measure)

    trial = sub.add_parser("trial", help="does one arena size allocate and invoke?")
    trial.add_argument("model")
    trial.add_argument("--arena", type=int, required=True)
    trial.add_argument("--alloc-only", action="store_true")
    trial.set_defaults(fn=cmd_trial)

    run = sub.add_parser("run", help="invoke once per sample of a .npy batch")
    run.add_argument("model")
    run.add_argument("inputs")
    run.add_argument("outputs")
    run.add_argument("--arena", type=int, required=True)
    run.add_argument("--output-index", type=int, default=0)
    run.set_defaults(fn=cmd_run)

    ops = sub.add_parser("ops", help="which builtin ops this TFLM build registers")
    ops.add_argument("--custom", action="append", default=[], help="also probe a custom op")
    ops.add_argument("--skip", action="append", default=[], help="do not probe this op")
    ops.set_defaults(fn=cmd_ops)

    args = parser.parse_args(argv)
    return int(args.fn(args))


if __name__ == "__main__":
    sys.exit(main())
