"""The pipeline: request → plan → generate → train → convert → verify → emit → report.

The CLI and the language server are two doors onto these functions; nothing about TinyML
lives in the doors.
"""

from __future__ import annotations

import json
import shutil
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from tinyforge import datasets, generate, jobs
from tinyforge.boards import Board, find_board_mentions, get_board
from tinyforge.check import Verdict, check_budget, device_parts
from tinyforge.convert.keras_worker import decide
from tinyforge.device.report import DeviceReport
from tinyforge.errors import StageError, TinyForgeError
from tinyforge.generate import ARTIFACTS_DIR, CONVERT_FILE, METRICS_FILE, MODEL_TFLITE
from tinyforge.generate.emit import emit_trained_firmware
from tinyforge.generate.files import is_pristine, write_atomic
from tinyforge.health.data import DataReport
from tinyforge.health.report import after_build, before_training
from tinyforge.lock import locked, project_lock
from tinyforge.memory.measure import ArenaMeasurement, measure_arena, run_tflm
from tinyforge.memory.target import target_arena_bytes
from tinyforge.memory.tflite_model import TfliteModel, load_tflite
from tinyforge.plan import get_planner
from tinyforge.progress import Progress, is_library_noise
from tinyforge.reconcile import at_build as reconcile_with_data
from tinyforge.reconcile import save_spec_changes
from tinyforge.repair.failure import clear_failure, record_failure
from tinyforge.report import (
    BuildReport,
    DeviceNotMeasured,
    build_report,
    read_report,
    write_report,
)
from tinyforge.spec import DatasetKind, ProjectSpec, Timeouts
from tinyforge.stages import Stages
from tinyforge.train import run_training

BUILD_STAGES = ("train", "convert", "verify", "emit", "device", "report")


# -- plan + generate -------------------------------------------------------------------------


def plan(
    request: str,
    *,
    board: str | None = None,
    default_board: str | None = None,
    planner: str = "offline",
    planner_options: dict[str, Any] | None = None,
    notices: list[str] | None = None,
) -> ProjectSpec:
    """`board` overrides the request; `default_board` (a setting) applies when it names none.

    `planner_options` configure an LLM planner (api_key, model); what the planner wants the
    user to know (e.g. "no API key: planned offline") is appended to `notices`.
    """
    return plan_with(
        get_planner(planner, **(planner_options or {})),
        request,
        board=board,
        default_board=default_board,
        notices=notices,
    )


def plan_with(
    planner: Any,
    request: str,
    *,
    board: str | None = None,
    default_board: str | None = None,
    notices: list[str] | None = None,
) -> ProjectSpec:
    if board is None and default_board and not find_board_mentions(request):
        board = default_board
    try:
        spec = planner.plan(request, board=board)
    finally:
        if notices is not None:
            notices += getattr(planner, "notices", [])
    # The data decides: labels and columns of a dataset that already exists win over the
    # request's words (relative paths are where the request was typed, as the planner read them).
    from tinyforge.reconcile import at_plan

    return at_plan(spec, Path.cwd())


def new_project(
    request: str,
    out: Path,
    *,
    board: str | None = None,
    default_board: str | None = None,
    planner: str = "offline",
    force: bool = False,
    planner_options: dict[str, Any] | None = None,
    notices: list[str] | None = None,
) -> tuple[ProjectSpec, generate.WriteResult]:
    """Plan a request and write a new project folder. Nothing is written when planning fails.

    A planner that can design the model (Claude) proposes train.py's build_model. A proposal
    that passes the static checks (the allow-list, the budget, the TFLM op list) is saved
    beside train.py as PROPOSAL_FILE, never into it: train.py stays TinyForge's own until the
    user has seen the diff and accepted it (`pending_proposal`, `accept_proposal`).
    """
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise TinyForgeError(f"{out} exists and is not a folder.")
    if out.is_dir() and any(out.iterdir()) and not force:
        raise TinyForgeError(
            f"{out} is not empty: choose another folder, or pass --force to regenerate into it "
            "(files you changed are kept)."
        )
    notices = notices if notices is not None else []
    planner_obj = get_planner(planner, **(planner_options or {}))
    spec = plan_with(
        planner_obj, request, board=board, default_board=default_board, notices=notices
    )
    spec = relocate_dataset(spec, out)
    created = not out.exists()
    try:
        written = generate.write_project(spec, out)
    except BaseException:
        if created:
            shutil.rmtree(out, ignore_errors=True)
        raise
    from tinyforge.scaffold import write_data_folder

    # No dataset named: the project's own data/ folder, one sub-folder per class and a README.
    written.written += write_data_folder(spec, out)
    _propose_model(planner_obj, spec, out, notices)
    return spec, written


def _propose_model(planner: Any, spec: ProjectSpec, out: Path, notices: list[str]) -> None:
    # A proposal left by an earlier `new --force` was made for another plan.
    discard_proposal(out)
    propose = getattr(planner, "propose_model", None)
    if propose is None:
        return
    if spec.dataset.kind is DatasetKind.CSV:
        # The input width is only settled when the build reads the CSV, and a design kept as
        # the user's would keep a stale INPUT_SHAPE: TinyForge's own sizing follows the data.
        return
    script = out / generate.TRAIN_SCRIPT
    before = len(getattr(planner, "notices", []))
    try:
        proposal = propose(
            spec,
            script.read_text(encoding="utf-8"),
            num_classes=generate.plan_model(spec, out).num_classes,
        )
    except TinyForgeError as exc:  # the project is written already: say why, keep it
        notices.append(f"No model proposal: {exc}")
        proposal = None
    notices += getattr(planner, "notices", [])[before:]
    if proposal is not None:
        # Beside train.py, not in it: the static check is a screen, not a proof, so Claude's
        # code runs only once the user has read the diff and taken it (accept_proposal).
        write_atomic(out, PROPOSAL_FILE, proposal.train_source)


# Claude's train.py waiting for the user's answer (`tinyforge new`, the editor's preview).
PROPOSAL_FILE = generate.TRAIN_SCRIPT + ".proposed"


@dataclass(frozen=True)
class PendingProposal:
    """Claude's model design for a project, not used until the user accepts it."""

    project_dir: Path
    current: str  # train.py as it is: TinyForge's own
    proposed: str  # train.py with Claude's build_model

    def diff(self) -> str:
        """The proposal as a unified diff against train.py."""
        from tinyforge.repair.fixes import FileEdit

        return FileEdit(generate.TRAIN_SCRIPT, self.current, self.proposed).diff()


def pending_proposal(project_dir: Path) -> PendingProposal | None:
    """The project's model proposal waiting for an answer, or None."""
    project_dir = Path(project_dir)
    path = project_dir / PROPOSAL_FILE
    if path.is_symlink() or not path.is_file():
        return None  # only a file TinyForge wrote there, never one a link leads to
    script = project_dir / generate.TRAIN_SCRIPT
    current = script.read_text(encoding="utf-8") if script.is_file() else ""
    return PendingProposal(project_dir, current, path.read_text(encoding="utf-8"))


def accept_proposal(project_dir: Path) -> PendingProposal:
    """Make Claude's proposal the project's train.py (`tinyforge accept-proposal`)."""
    project_dir = Path(project_dir)
    with project_lock(project_dir, "accept-proposal"):
        pending = pending_proposal(project_dir)
        if pending is None:
            raise TinyForgeError(
                f"No model proposal to accept in {project_dir}: there is no {PROPOSAL_FILE}."
            )
        if not is_pristine(project_dir, generate.TRAIN_SCRIPT):
            # The diff the user saw was against TinyForge's train.py: never over their edits.
            raise TinyForgeError(
                f"{generate.TRAIN_SCRIPT} in {project_dir} changed since Claude's proposal was "
                f"made: compare it with {PROPOSAL_FILE} and merge by hand."
            )
        # Outside the manifest on purpose: the design is the user's from now on, so a later
        # spec change keeps it (TinyForge's version then goes beside it).
        write_atomic(project_dir, generate.TRAIN_SCRIPT, pending.proposed)
        discard_proposal(project_dir)
    return pending


def discard_proposal(project_dir: Path) -> None:
    """Forget the project's model proposal (declined, or taken into the editor's buffer)."""
    (Path(project_dir) / PROPOSAL_FILE).unlink(missing_ok=True)


def relocate_dataset(spec: ProjectSpec, out: Path) -> ProjectSpec:
    """Paths in a request are relative to where the user typed it; the project's, to itself."""
    from tinyforge.scaffold import is_default_data

    if not spec.dataset.path or is_default_data(spec):
        return spec  # no path, or the planner's default data/ folder inside the project
    path = Path(spec.dataset.path).expanduser()
    if path.is_absolute():
        return spec
    absolute = path.resolve()
    try:
        rel = absolute.relative_to(out.resolve())
        new_path = rel.as_posix()
    except ValueError:
        new_path = _relpath(absolute, out.resolve())
    dataset = spec.dataset.model_copy(update={"path": new_path})
    return spec.model_copy(update={"dataset": dataset})


def _relpath(target: Path, start: Path) -> str:
    import os

    return Path(os.path.relpath(target, start)).as_posix()


# -- build -----------------------------------------------------------------------------------


@dataclass
class BuildResult:
    project_dir: Path
    report: BuildReport
    verdict: Verdict
    notices: list[str] = field(default_factory=list)

    @property
    def fits(self) -> bool:
        return self.verdict.fits

    @property
    def healthy(self) -> bool:
        """False when a health check found an error: e.g. accuracy at chance level."""
        return self.report.healthy


# Locked before the spec is read: a build killed earlier is restored first (journal.py), and the
# checks below never read a half-built project.
@locked("build")
def build(
    project_dir: Path,
    *,
    progress: Progress | None = None,
    cancel: threading.Event | None = None,
    train: bool = True,
    device: bool = True,
    tflm: Path | None = None,
    timeouts: dict[str, float] | None = None,
) -> BuildResult:
    """Run the build stages; `train=False` converts the model the last training saved.
    `timeouts` ({"train": s, "convert": s}) override the spec's [timeouts].

    `device=False` skips the last measurement on an emulated core (`--no-device`); `tflm` is
    the TFLM source tree for it (else TINYFORGE_TFLM_DIR, .pio/libdeps, the user's cache).
    """
    project_dir = Path(project_dir).resolve()
    spec = ProjectSpec.load(project_dir)
    if spec.model is not None:
        # A model the user brought (`tinyforge convert`): nothing to train, convert it again.
        return _build_brought_model(project_dir, spec, progress, cancel, timeouts)
    spec = reconcile_with_data(spec, project_dir)
    if timeouts:
        limits = {**(spec.timeouts.model_dump() if spec.timeouts else {}), **timeouts}
        spec = spec.model_copy(update={"timeouts": Timeouts.model_validate(limits)})
    board = get_board(spec.board)
    summary = datasets.validate(spec, project_dir)
    spec = _fit_input_shape_to_csv(spec, summary, project_dir)
    # Data checks before anything runs: what makes training pointless stops here, in a sentence.
    data_health = before_training(spec, project_dir)
    if not train and not (project_dir / ARTIFACTS_DIR / METRICS_FILE).is_file():
        raise StageError("convert", f"No trained model in {project_dir}: train it first.")
    stages = Stages(
        BUILD_STAGES if train else BUILD_STAGES[1:],
        progress=progress,
        cancel=cancel,
        limits=spec.timeouts.model_dump() if spec.timeouts else {},
    )
    try:
        with stages.transaction(project_dir, command="build"):
            result = _build(
                project_dir,
                spec,
                board,
                summary,
                stages,
                train,
                data_health=data_health,
                device=DeviceOptions(enabled=device, tflm=tflm),
            )
    except StageError as exc:
        # The project was restored; the failure is kept beside it for `tinyforge repair`.
        record_failure(project_dir, exc)
        raise
    clear_failure(project_dir)
    return result


def _build_brought_model(
    project_dir: Path,
    spec: ProjectSpec,
    progress: Progress | None,
    cancel: threading.Event | None,
    timeouts: dict[str, float] | None = None,
) -> BuildResult:
    """The ONNX front end of the build: `tinyforge convert` into the project again."""
    # Imported here: the language server and a Keras build never load the ONNX front end.
    from tinyforge.convert.onnx import convert_onnx

    assert spec.model is not None
    datasets.validate(spec, project_dir)
    result = convert_onnx(
        project_dir / spec.model.source,
        out=project_dir,
        quantization=spec.quantization.value,
        progress=progress,
        cancel=cancel,
        timeout=(timeouts or {}).get("convert"),  # else the spec's timeouts.convert
    )
    return BuildResult(project_dir, result.report, result.verdict, result.notices)


def _build(
    project_dir: Path,
    spec: ProjectSpec,
    board: Board,
    summary: datasets.DatasetSummary,
    stages: Stages,
    train: bool,
    data_health: DataReport | None = None,
    device: DeviceOptions | None = None,
) -> BuildResult:
    device = device or DeviceOptions()
    progress, cancel = stages.progress, stages.cancel
    notices: list[str] = []

    # Refresh generated files the user has not touched (a changed spec changes them).
    refreshed = generate.write_project(spec, project_dir)
    notices += refreshed.describe_kept()

    if train:
        limit = spec.timeouts.train if spec.timeouts else None
        metrics = stages.run("train", lambda: run_training(project_dir, progress, cancel, limit))
    else:
        metrics = _artifact(project_dir, METRICS_FILE)
    converted = stages.run("convert", lambda: _convert(project_dir, spec, progress, cancel))
    model = load_tflite(project_dir / MODEL_TFLITE)
    verified = stages.run("verify", lambda: _verify(project_dir, model, progress))
    arena, arena_target = verified.arena, verified.arena_bytes_target
    classes = list(metrics.get("classes") or summary.classes or [])
    emitted = stages.run(
        "emit",
        lambda: emit_trained_firmware(
            project_dir,
            spec,
            board,
            model,
            arena_bytes=arena.arena_bytes,
            arena_target_bytes=arena_target,
            classes=classes,
        ),
    )
    notices += emitted.describe_kept()
    measured = stages.run(
        "device", lambda: _on_device(project_dir, board, device, progress, cancel, verified)
    )
    if isinstance(measured, DeviceNotMeasured) and measured.reason:
        notices.append(f"Not run on an emulated board: {measured.reason}")
    # On the image measured on the board's core when the device stage ran, else on estimates.
    verdict = check_budget(
        board=board,
        budget=spec.budget,
        model_bytes=model.model_bytes,
        arena_bytes_target=arena_target,
        ops=[op.op for op in model.ops],
        largest_tensor=model.largest_activation(),
        measured=device_parts(board, measured.flash, measured.ram)
        if isinstance(measured, DeviceReport)
        else None,
    )
    report = stages.run(
        "report",
        lambda: build_report(
            project=spec.name,
            board=board.id,
            quantization=spec.quantization.value,
            classes=classes,
            params=metrics.get("params"),
            model=model,
            arena=arena,
            arena_target=arena_target,
            verdict=verdict,
            notices=notices,
            stage_seconds=stages.seconds,
            float_accuracy=converted["float_accuracy"],
            int8_accuracy=converted["tflite_accuracy"]
            if spec.quantization.value == "int8"
            else None,
            tflm_accuracy=verified.tflm_accuracy,
            request=spec.request,
            task=spec.task.value,
            epochs_run=metrics.get("epochs_run"),
            samples=metrics.get("samples"),
            # "measured" once the device stage ran: every part but the Arduino core's baseline.
            figures="measured" if isinstance(measured, DeviceReport) else "estimated",
            device=measured,
            # Is the model any good (data, baselines, quantization)? See tinyforge.health.
            health=after_build(project_dir, spec, metrics, converted, data_health),
            history=metrics.get("history"),
        ),
    )
    # Once, after the report stage: its own seconds are in stage_seconds too.
    report.stage_seconds = dict(stages.seconds)
    write_report(project_dir, report)
    return BuildResult(project_dir, report, verdict, notices)


@dataclass(frozen=True)
class DeviceOptions:
    enabled: bool = True
    tflm: Path | None = None


def _on_device(
    project_dir: Path,
    board: Board,
    options: DeviceOptions,
    progress: Progress,
    cancel: threading.Event | None,
    verified: Verified,
) -> DeviceReport | DeviceNotMeasured:
    """The device section of report.json: measured figures, or why there are none."""
    from tinyforge.device.verify import device_unavailable_reason, verify_project

    if not options.enabled:
        return DeviceNotMeasured(reason="skipped (--no-device).")
    reason = device_unavailable_reason(board, options.tflm, project_dir)
    if reason is not None:
        progress.update(1.0, "skipped: " + reason)
        return DeviceNotMeasured(reason=reason)
    try:
        report = verify_project(
            project_dir,
            tflm=options.tflm,
            progress=progress,
            cancel=cancel,
            host_arena=verified.arena.arena_bytes,
            static_target=verified.arena_bytes_target,
        )
    except StageError as exc:
        # The model and the project are good; the firmware (often the user's own main.cpp)
        # is not: keep the build, say why, and let `tinyforge verify` check again after a fix.
        progress.update(1.0, f"failed: {exc}")
        return DeviceNotMeasured(failed=True, reason=str(exc))
    progress.update(
        1.0,
        f"{report.headline}: outputs {report.outputs_identical_percent:g}% identical to host TFLM",
    )
    return report


# It writes report.json and .tinyforge/device: not while a build rewrites them.
@locked("verify")
def verify_on_device(
    project_dir: Path,
    *,
    tflm: Path | None = None,
    kernels: str | None = None,
    core: str | None = None,
    samples: int | None = None,
    progress: Progress | None = None,
    cancel: threading.Event | None = None,
) -> BuildReport:
    """`tinyforge verify`: measure a built project on its emulated core, update report.json.

    The device section and the verdict (now on measured figures) are written back into the
    project's report.json; the updated report is returned.
    """
    from tinyforge.device.verify import DEFAULT_SAMPLES, verify_project

    project_dir = Path(project_dir).resolve()
    spec = ProjectSpec.load(project_dir)
    board = get_board(spec.board)
    stages = Stages(("device",), progress=progress, cancel=cancel)
    with stages.stage("device"):
        device = verify_project(
            project_dir,
            tflm=tflm,
            kernels=kernels,
            core_name=core,
            samples=samples or DEFAULT_SAMPLES,
            progress=stages.progress,
            cancel=cancel,
        )
    report = read_report(project_dir) or BuildReport(project=spec.name, board=board.id, notices=[])
    model = load_tflite(project_dir / MODEL_TFLITE)
    verdict = check_budget(
        board=board,
        budget=spec.budget,
        model_bytes=model.model_bytes,
        arena_bytes_target=report.arena_bytes_target or 0,
        ops=[op.op for op in model.ops],
        largest_tensor=model.largest_activation(),
        measured=device_parts(board, device.flash, device.ram),
    )
    report.figures = "measured"
    report.device = device
    report.set_verdict(verdict)
    write_report(project_dir, report)
    return report


def _fit_input_shape_to_csv(
    spec: ProjectSpec, summary: datasets.DatasetSummary, project_dir: Path
) -> ProjectSpec:
    """A CSV's feature count is only known once the file is there: the spec follows the data."""
    if spec.dataset.kind is not DatasetKind.CSV or not summary.features:
        return spec
    if len(spec.input_shape) == 1 and spec.input_shape[0] != summary.features:
        before = spec
        spec = spec.model_copy(update={"input_shape": [summary.features]})
        spec.assumptions = [
            *before.assumptions,
            f"input_shape set to [{summary.features}] from the CSV's feature columns.",
        ]
        # Patched in place (tomlkit): the user's comments and layout in tinyforge.toml stay.
        save_spec_changes(project_dir, before, spec)
    return spec


def _convert(
    project_dir: Path, spec: ProjectSpec, progress: Progress, cancel: threading.Event | None
) -> dict[str, Any]:
    def on_line(line: str) -> None:
        progress.log(line)
        if not is_library_noise(line):  # library warnings go to the log (-v), not the status
            progress.update(None, line)

    result = jobs.run(
        jobs.python_command(
            "-m",
            "tinyforge.convert.keras_worker",
            str(project_dir.resolve()),
            "--quantization",
            spec.quantization.value,
            "--artifacts",
            ARTIFACTS_DIR,
        ),
        cwd=jobs.neutral_cwd(),  # the worker reads only the paths it is given
        env={"TF_CPP_MIN_LOG_LEVEL": "2"},
        on_line=on_line,
        cancel=cancel,
        timeout=spec.timeouts.convert if spec.timeouts else None,
    )
    if not result.ok:
        from tinyforge.train import failure_sentence

        raise StageError(
            "convert",
            f"Conversion to TFLite failed: {failure_sentence(result.tail)}",
            result.tail_text(),
        )
    return _artifact(project_dir, CONVERT_FILE)


@dataclass(frozen=True)
class Verified:
    """What the verify stage measured in the TFLM interpreter (host build) for the report."""

    arena: ArenaMeasurement
    arena_bytes_target: int  # the arena on a 32-bit target (memory.target)
    tflm_accuracy: float  # on the test split, from TFLM's outputs


def _verify(project_dir: Path, model: TfliteModel, progress: Progress) -> Verified:
    tflite_path = project_dir / MODEL_TFLITE
    progress.update(0.1, "measuring the tensor arena in the TFLM interpreter")
    arena = measure_arena(tflite_path)
    progress.update(0.5, f"arena {arena.arena_bytes} bytes; running the test set in TFLM")
    x_test = np.load(project_dir / ARTIFACTS_DIR / "test_inputs.npy")
    y_test = np.load(project_dir / ARTIFACTS_DIR / "splits.npz")["y_test"]
    outputs = run_tflm(tflite_path, x_test, arena.arena_bytes).reshape(len(x_test), -1)
    out = model.output_tensors[0]
    if out.scale and out.dtype in ("int8", "uint8", "int16"):
        outputs = (outputs.astype(np.float32) - out.zero_point[0]) * out.scale[0]
    metrics = _artifact(project_dir, METRICS_FILE)
    tflm_accuracy = float(np.mean(decide(outputs, metrics.get("threshold")) == y_test))
    progress.update(1.0, f"TFLM accuracy {tflm_accuracy:.4f}")
    return Verified(arena, target_arena_bytes(arena, model), tflm_accuracy)


def _artifact(project_dir: Path, name: str) -> dict[str, Any]:
    """A JSON file the training or the conversion left in ARTIFACTS_DIR (metrics, convert)."""
    data: dict[str, Any] = json.loads((project_dir / ARTIFACTS_DIR / name).read_text("utf-8"))
    return data


# Locked before the spec is read, as `build`.
@locked("train")
def train_only(
    project_dir: Path,
    *,
    progress: Progress | None = None,
    cancel: threading.Event | None = None,
) -> dict[str, Any]:
    """Just the training stage (the editor's Train command)."""
    project_dir = Path(project_dir).resolve()
    spec = ProjectSpec.load(project_dir)
    spec = reconcile_with_data(spec, project_dir)
    datasets.validate(spec, project_dir)
    before_training(spec, project_dir)
    stages = Stages(("train",), progress=progress, cancel=cancel)
    try:
        with stages.transaction(project_dir, command="train"):
            generate.write_project(spec, project_dir)
            return stages.run("train", lambda: run_training(project_dir, stages.progress, cancel))
    except StageError as exc:
        record_failure(project_dir, exc)
        raise
