"""Verify on an emulated board: the project's firmware, compiled with real TFLM for the board's
core, run in QEMU on test samples; every figure about the board measured there.

`verify_project` is the whole stage: find the toolchain and a TFLM source, compile (TFLM objects
from the cache), run the sketch on the sketch's own sample and on test samples, compare every
output with the host TFLM interpreter, split the image's flash and RAM from the linker map, and
count the instructions of each Invoke(). The result is a `DeviceReport`.
"""

from __future__ import annotations

import json
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from statistics import median
from typing import Any

import numpy as np

from tinyforge.boards import Board, get_board
from tinyforge.device.build import CROSS, FirmwareBuild, ToolchainError, build_firmware
from tinyforge.device.cache import compiler_version
from tinyforge.device.cores import CORES, Core, core_for_board, why_not_emulated
from tinyforge.device.mapfile import flash_bytes, parse_map, ram_bytes
from tinyforge.device.report import DeviceReport, TflmInfo
from tinyforge.device.run import RunResult, record_allocations, run_firmware, smallest_arena
from tinyforge.device.source import TflmSource, TflmSourceError, find_source
from tinyforge.errors import StageError, TinyForgeError
from tinyforge.progress import NullProgress, Progress

__all__ = [
    "DeviceReport",
    "DeviceUnavailable",
    "TflmSourceError",
    "ToolchainError",
    "device_unavailable_reason",
    "verify_project",
]

DEFAULT_SAMPLES = 64
WORK_DIR = ".tinyforge/device"
# TfLiteType numbers (TFLM's c_api_types.h) of the outputs the harness prints.
_TFLITE_TYPES = {1: np.float32, 9: np.int8, 3: np.uint8, 7: np.int16, 2: np.int32}


class DeviceUnavailable(TinyForgeError):
    """The board's core cannot be built or run here (ESP32, no toolchain, no TFLM source)."""


def device_unavailable_reason(board: Board, tflm: Path | None, project_dir: Path) -> str | None:
    """One sentence when `verify` cannot run for this project here, else None."""
    if core_for_board(board) is None:
        return why_not_emulated(board)
    try:
        from tinyforge.device.build import check_toolchain

        check_toolchain()
        find_source(project_dir, tflm)
    except TinyForgeError as exc:
        return str(exc)
    return None


def verify_project(
    project_dir: Path,
    *,
    tflm: Path | None = None,
    kernels: str | None = None,
    core_name: str | None = None,
    samples: int = DEFAULT_SAMPLES,
    progress: Progress | None = None,
    cancel: threading.Event | None = None,
    host_arena: int | None = None,
    static_target: int | None = None,
) -> DeviceReport:
    """`host_arena`/`static_target`: the build's own figures (else read from report.json)."""
    from tinyforge.generate import ARTIFACTS_DIR
    from tinyforge.memory.tflite_model import load_tflite
    from tinyforge.spec import ProjectSpec

    progress = progress or NullProgress()
    project_dir = Path(project_dir).resolve()
    spec = ProjectSpec.load(project_dir)
    board = get_board(spec.board)
    core = _pick_core(board, core_name)
    model_path = project_dir / "model.tflite"
    if not model_path.is_file() or not (project_dir / "src").is_dir():
        raise TinyForgeError(
            f"{project_dir.name} has no model.tflite or src/ yet: run `tinyforge build "
            f"{project_dir}` first."
        )
    source = find_source(project_dir, tflm)
    kernels = _pick_kernels(source, kernels)
    model = load_tflite(model_path)
    ops = sorted({op.op for op in model.ops})
    missing = source.missing_ops(kernels, ops)
    if missing:
        raise StageError(
            "verify",
            f"{source.name} has no {kernels} kernel for {', '.join(missing)}: this model "
            "cannot run with that TFLM.",
        )
    artifacts = project_dir / ARTIFACTS_DIR
    # report.py imports this package's report module: imported here, not at the top.
    from tinyforge.report import read_report

    report = read_report(project_dir)
    sample, parts, sample_sources = _samples(artifacts, samples)
    from tinyforge.memory.measure import prepare_inputs

    test_batch = (
        np.concatenate([prepare_inputs(model, x, model_path.name) for x, _ in parts])
        if parts
        else None
    )
    test_y = np.concatenate([y for _, y in parts]) if parts else np.zeros(0, dtype=np.int64)
    if report is not None:
        host_arena = host_arena or report.arena_bytes
        static_target = static_target or report.arena_bytes_target
    host_arena = int(host_arena or 0)

    # The host interpreter's outputs for the same samples, computed while the firmware builds.
    shape = model.input_tensors[0].shape
    host_inputs = [np.asarray(sample).reshape(shape)] if sample is not None else []
    if test_batch is not None:
        host_inputs += [x.reshape(shape) for x in test_batch]
    pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="host-tflm")
    host = pool.submit(_host_outputs, model_path, host_inputs, host_arena)
    try:
        return _verify_on_core(
            project_dir,
            board=board,
            core=core,
            kernels=kernels,
            source=source,
            model=model,
            ops=ops,
            test_batch=test_batch,
            test_y=test_y,
            sample_sources=sample_sources,
            host=host,
            host_arena=host_arena,
            static_target=static_target,
            progress=progress,
            cancel=cancel,
        )
    finally:
        pool.shutdown(wait=True)


def _verify_on_core(
    project_dir: Path,
    *,
    board: Board,
    core: Core,
    kernels: str,
    source: TflmSource,
    model: Any,
    ops: list[str],
    test_batch: np.ndarray | None,
    test_y: np.ndarray,
    sample_sources: str,
    host: Future[np.ndarray | None],
    host_arena: int,
    static_target: int | None,
    progress: Progress,
    cancel: threading.Event | None,
) -> DeviceReport:
    from tinyforge.memory.tflite_model import tflm_resolver_method

    input_bytes = model.input_tensors[0].nbytes
    work = project_dir / WORK_DIR / f"{core.name}-{kernels}"
    progress.update(0.02, f"compiling TFLM for {core.name} ({kernels} kernels)")
    started = time.monotonic()

    def on_compiled(done: int, total: int) -> None:
        progress.update(
            0.02 + 0.6 * done / total, f"compiling TFLM for {core.name}: {done}/{total}"
        )

    build = build_firmware(
        project_dir,
        work,
        source=source,
        core=core,
        kernels=kernels,
        ops=ops,
        resolver_methods=sorted({tflm_resolver_method(op) for op in ops}),
        sample_bytes=input_bytes,
        cancel=cancel,
        on_progress=on_compiled,
    )
    build.seconds = time.monotonic() - started
    samples_file = work / "samples.bin"
    samples_file.write_bytes(test_batch.tobytes() if test_batch is not None else b"")
    n = 0 if test_batch is None else len(test_batch)
    progress.update(0.7, f"running {n} test samples on an emulated {core.machine_core}")
    run = run_firmware(build.elf, core, cwd=work, cancel=cancel)
    _check_run(run, n, core)
    firmware_arena = run.sketch_arena_print[1] if run.sketch_arena_print else 0
    progress.update(0.8, "finding the smallest arena that works on the target")
    smallest = smallest_arena(
        build.elf,
        core,
        works=firmware_arena or probe_upper_bound(host_arena),
        fails=max(0, int(run.arena_used or 0) - 16),
        work=work,
        cancel=cancel,
    )
    from tinyforge.memory.measure import parse_allocation_report

    recorded, kinds = parse_allocation_report(
        record_allocations(build.elf, core, firmware_arena or smallest, work, cancel)
    )

    progress.update(0.85, "comparing every output with the host TFLM interpreter")
    comparison = _compare(model, run, host.result(), test_y, _threshold(project_dir))

    static_parts = _static_parts(model)
    static_target = int(static_target or static_parts["arena"])
    return _device_report(
        board=board,
        core=core,
        kernels=kernels,
        source=source,
        build=build,
        run=run,
        samples=n,
        sample_sources=sample_sources,
        comparison=comparison,
        static_target=static_target,
        smallest=smallest,
        recorded=recorded,
        kinds={name: kind.used for name, kind in kinds.items()},
        static_parts={k: v for k, v in static_parts.items() if k != "arena"},
    )


def probe_upper_bound(host_arena: int) -> int:
    """An arena surely large enough when the sketch did not say its own (a user's edit)."""
    return min(3 << 20, max(64 << 10, 2 * host_arena + (16 << 10)))


def _pick_core(board: Board, name: str | None) -> Core:
    if name is not None:
        try:
            return CORES[name]
        except KeyError:
            raise TinyForgeError(
                f"Unknown core '{name}': choose one of {', '.join(sorted(CORES))}."
            ) from None
    core = core_for_board(board)
    if core is None:
        raise DeviceUnavailable(why_not_emulated(board))
    return core


def _pick_kernels(source: TflmSource, kernels: str | None) -> str:
    if kernels is None:
        # What the board really runs: TFLM's Arduino libraries for Cortex-M use CMSIS-NN.
        return "cmsis_nn" if "cmsis_nn" in source.kernels else source.kernels[0]
    if kernels not in source.kernels:
        raise TinyForgeError(
            f"{source.name} has no {kernels} kernels; it has {', '.join(source.kernels)}."
        )
    return kernels


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _samples(
    artifacts: Path, count: int
) -> tuple[np.ndarray | None, list[tuple[np.ndarray, np.ndarray]], str]:
    """The sketch's own sample, and `count` labelled samples: the test split first, topped up
    from the validation and training splits when the test split is smaller (and said so)."""
    sample = None
    if (artifacts / "sample_input.npy").is_file():
        sample = np.load(artifacts / "sample_input.npy", allow_pickle=False)
    parts: list[tuple[np.ndarray, np.ndarray]] = []
    taken: dict[str, int] = {}
    splits: dict[str, np.ndarray] = {}
    if (artifacts / "splits.npz").is_file():
        with np.load(artifacts / "splits.npz", allow_pickle=False) as data:
            splits = {key: data[key] for key in data.files}
    test_x = None
    if (artifacts / "test_inputs.npy").is_file():
        test_x = np.load(artifacts / "test_inputs.npy", allow_pickle=False)
    elif "x_test" in splits:
        test_x = splits["x_test"]
    for name, x in (
        ("test", test_x),
        ("validation", splits.get("x_val")),
        ("training", splits.get("x_train")),
    ):
        left = count - sum(taken.values())
        if x is None or left <= 0 or not len(x):
            continue
        y = splits.get(
            f"y_{'val' if name == 'validation' else 'train' if name == 'training' else 'test'}"
        )
        if y is None or len(y) != len(x):
            y = np.full(len(x), -1, dtype=np.int64)
        parts.append((x[:left], y[:left]))
        taken[name] = min(left, len(x))
    where = ", ".join(f"{n} {name}" for name, n in taken.items())
    return sample, parts, where


def _check_run(run: RunResult, expected: int, core: Core) -> None:
    if not run.finished or run.problems:
        what = "; ".join(run.problems) or "it stopped before the end"
        last = next((ln for ln in reversed(run.serial) if ln.strip()), "")
        said = f" Its last line: {last!r}." if last else ""
        raise StageError(
            "verify",
            f"The firmware did not run to the end on the emulated {core.machine_core}: "
            f"{what}.{said}",
            "\n".join(run.serial[-40:]),
        )
    if len(run.outputs) < expected + 1:
        raise StageError(
            "verify",
            f"The sketch ran Invoke() {len(run.outputs)} times for {expected + 1} samples: "
            "its loop() must call Invoke() once per pass.",
        )


class _Comparison:
    def __init__(self) -> None:
        self.identical = 0.0
        self.max_diff = 0.0
        self.argmax = 0.0
        self.accuracy: float | None = None
        self.compared_with = ""


def _host_outputs(
    model_path: Path, host_inputs: list[np.ndarray], host_arena: int
) -> np.ndarray | None:
    from tinyforge.memory.measure import run_tflm

    if not host_inputs:
        return None
    batch = np.stack(host_inputs)
    host = run_tflm(model_path, batch, 2 * host_arena if host_arena else 256 << 10)
    return host.reshape(len(batch), -1)


def _compare(
    model: Any,
    run: RunResult,
    host: np.ndarray | None,
    labels: np.ndarray,
    threshold: float | None,
) -> _Comparison:
    from tinyforge.convert.keras_worker import decide

    out = _Comparison()
    if host is None:
        return out
    dtype = host.dtype
    device = np.stack(
        [np.frombuffer(run.outputs[i], dtype=dtype)[: host.shape[1]] for i in range(len(host))]
    )
    same = np.all(device == host, axis=1)
    out.identical = round(100.0 * float(np.mean(same)), 2)
    out.max_diff = float(np.max(np.abs(device.astype(np.float64) - host.astype(np.float64))))
    out.argmax = round(100.0 * float(np.mean(device.argmax(1) == host.argmax(1))), 2)
    out.compared_with = "the host TFLM interpreter (tflite-micro, reference kernels)"
    known = labels >= 0
    if known.any():
        tensor = model.output_tensors[0]
        values = device[1 : 1 + len(labels)].astype(np.float32)
        if tensor.scale and tensor.dtype in ("int8", "uint8", "int16"):
            values = (values - tensor.zero_point[0]) * tensor.scale[0]
        right = decide(values, threshold) == labels
        out.accuracy = round(float(np.mean(right[known])), 4)
    return out


def _threshold(project_dir: Path) -> float | None:
    metrics = _read_json(project_dir / "artifacts" / "metrics.json")
    value = metrics.get("threshold")
    return float(value) if value is not None else None


def _static_parts(model: object) -> dict[str, int]:
    """The static 32-bit simulation's arena: its total, head and tail bytes per kind."""
    from tinyforge.memory.estimate import estimate_model

    target = estimate_model(model).target  # type: ignore[arg-type]
    return {"arena": target.arena_bytes, "head": target.head_bytes, **target.tail_parts}


def _split(build: FirmwareBuild) -> tuple[dict[str, int], dict[str, int], dict[str, int]]:
    """Flash and RAM of the image per part, and flash per kernel (operator)."""
    flash = dict.fromkeys(
        ("model", "test sample", "TFLM runtime", "TFLM kernels", "CMSIS-NN", "application"), 0
    )
    flash["C library"] = 0
    ram = dict.fromkeys(("tensor arena", "TFLM runtime", "application", "C library"), 0)
    kernels: dict[str, int] = {}
    text = build.map_file.read_text(encoding="utf-8", errors="replace")
    for section in parse_map(text):
        info = build.objects.get(section.object_name)
        part = info.part if info is not None else "C library"
        if part == "harness":
            continue  # TinyForge's harness and Arduino stand-in are not on the board
        f, r = flash_bytes(section), ram_bytes(section)
        if part == "model":
            part = "test sample" if "sample" in section.symbol else "model"
            ram_part = "application"
        elif part == "application" and "tensor_arena" in section.symbol:
            ram["tensor arena"] += r
            continue
        elif part == "kernel":
            assert info is not None and info.op is not None
            kernels[info.op] = kernels.get(info.op, 0) + f
            part, ram_part = "TFLM kernels", "TFLM runtime"
        elif part == "CMSIS-NN":
            ram_part = "TFLM runtime"
        else:
            ram_part = part
        flash[part] = flash.get(part, 0) + f
        ram[ram_part] = ram.get(ram_part, 0) + r
    return flash, ram, dict(sorted(kernels.items()))


def _device_report(
    *,
    board: Board,
    core: Core,
    kernels: str,
    source: TflmSource,
    build: FirmwareBuild,
    run: RunResult,
    samples: int,
    sample_sources: str,
    comparison: _Comparison,
    static_target: int,
    smallest: int,
    recorded: dict[str, int],
    kinds: dict[str, int],
    static_parts: dict[str, int],
) -> DeviceReport:
    from tinyforge.check import runtime_costs

    flash, ram, kernel_flash = _split(build)
    firmware_arena = run.sketch_arena_print[1] if run.sketch_arena_print else ram["tensor arena"]
    used = int(run.arena_used or 0)
    insns = run.instructions or [0]
    per_inference = int(median(insns))
    latency = per_inference * core.cpi / board.f_cpu * 1000.0
    costs = runtime_costs(board.family)
    before = {"TFLM runtime and kernels": costs.tflm_flash + costs.ops_flash(list(kernel_flash))}
    before.update({op: costs.op_flash.get(op, costs.op_flash_default) for op in kernel_flash})
    sketch_line = next((ln for ln in run.serial if ln.startswith("label:")), None)
    return DeviceReport(
        board=board.id,
        core=core.name,
        emulated_core=core.machine_core,
        machine=core.machine,
        core_note=core.note,
        kernels=kernels,
        tflm=TflmInfo(
            kind=source.kind, name=source.name, commit=source.commit, path=str(source.root)
        ),
        compiler=compiler_version(f"{CROSS}g++"),
        compile_seconds=round(build.seconds, 2),
        compiled_objects=build.compiled_tflm,
        tflm_objects=build.tflm_objects,
        run_seconds=round(run.seconds, 2),
        samples=samples,
        sample_sources=sample_sources,
        compared_with=comparison.compared_with,
        outputs_identical_percent=comparison.identical,
        outputs_max_abs_diff=comparison.max_diff,
        argmax_agreement_percent=comparison.argmax,
        accuracy=comparison.accuracy,
        sketch_output=sketch_line,
        arena_used_bytes=used,
        arena_smallest_bytes=smallest,
        arena_firmware_bytes=int(firmware_arena),
        arena_static_target_bytes=static_target,
        arena_note=_arena_note(
            smallest, static_target, kernels, source, int(firmware_arena), kinds, static_parts
        ),
        arena_head_bytes=recorded.get("head", 0),
        arena_tail_bytes=recorded.get("tail", 0),
        arena_tail_kinds=kinds,
        arena_static_parts=static_parts,
        flash=flash,
        ram=ram,
        kernel_flash=kernel_flash,
        flash_estimate_before=before,
        instructions_per_inference=per_inference,
        instructions_min=min(insns),
        instructions_max=max(insns),
        clock_hz=board.f_cpu,
        cycles_per_instruction=core.cpi,
        latency_ms_estimate=round(latency, 4),
        latency_note=(
            f"estimate: {per_inference:,} instructions counted per Invoke() × {core.cpi} cycles "
            f"per instruction (assumed for {core.name}) at {board.f_cpu / 1e6:g} MHz"
        ),
        serial=run.serial[:12],
    )


# The static simulation's tail parts (memory/tail.py) and the kinds TFLM's recording allocator
# reports on the target, grouped so that each group is the same memory on both sides.
_KIND_GROUPS = {
    "kernel data (OpData, builtin options)": (
        ("kernel OpData", "builtin options", "input/output tensor lists"),
        ("Persistent buffer data",),
    ),
    "TfLiteEvalTensor": (("TfLiteEvalTensor",), ("TfLiteEvalTensor data",)),
    "NodeAndRegistration": (("NodeAndRegistration",), ("NodeAndRegistration struct",)),
    "persistent TfLiteTensor": (
        ("persistent TfLiteTensor", "persistent TfLiteTensor quantization"),
        ("Persistent TfLiteTensor data", "Persistent TfLiteTensor quantization data"),
    ),
}


def _kind_differences(kinds: dict[str, int], static_parts: dict[str, int]) -> list[str]:
    """'group static S vs target T' for each part of the arena the two disagree on."""
    if not kinds or not static_parts:
        return []
    out = []
    head = static_parts.get("head")
    for group, (static_names, target_names) in _KIND_GROUPS.items():
        static = sum(static_parts.get(n, 0) for n in static_names)
        target = sum(kinds.get(n, 0) for n in target_names)
        if static != target:
            out.append(f"{group} {static:,} static vs {target:,} on the target")
    if head is not None and "allocator objects" in static_parts:
        out.append(
            f"TFLM's allocator objects {static_parts['allocator objects']:,} static (host "
            "sizes of the recording classes)"
        )
    return out


def _arena_note(
    smallest: int,
    static: int,
    kernels: str,
    source: TflmSource,
    firmware: int,
    kinds: dict[str, int] | None = None,
    static_parts: dict[str, int] | None = None,
) -> str:
    diff = smallest - static
    parts: list[str] = []
    if diff == 0:
        parts.append(
            "the static 32-bit estimate equals the smallest arena that works on the target"
        )
    elif diff > 0:
        why = (
            "the CMSIS-NN kernels' scratch buffers, which the static plan (made for the reference "
            "kernels) does not model"
            if kernels == "cmsis_nn"
            else "allocations the static plan does not model"
        )
        if source.kind == "arduino":
            why += f", and {source.name} lays out the arena as an older TFLM"
        parts.append(f"the target needs {diff:,} bytes more than the static estimate: {why}")
    else:
        differences = _kind_differences(kinds or {}, static_parts or {})
        detail = f" ({'; '.join(differences)})" if differences else ""
        parts.append(
            f"the target needs {-diff:,} bytes less than the static estimate, which keeps host "
            f"sizes for the structs it has no 32-bit figures for{detail}: an upper bound by design"
        )
    if firmware and smallest:
        if firmware < smallest:
            parts.append(
                f"the firmware's kTensorArenaSize ({firmware:,}) is too small for the target"
            )
        else:
            parts.append(
                f"the firmware allocates {firmware:,} bytes: {firmware - smallest:,} spare"
            )
    return "; ".join(parts) + "."
