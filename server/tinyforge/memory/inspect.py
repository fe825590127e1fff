"""`tinyforge inspect`: one report of what a model needs on a microcontroller.

`inspect_model` returns one `InspectReport` (report.py) for a .tflite, .onnx or Keras
(.keras/.h5) file:
ops and the ones the installed TFLM cannot run, model bytes, the tensor arena (measured in the
real TFLM interpreter, estimated statically, floor, 32-bit target), flash and RAM estimates,
a per-layer table and, with a board or project, the budget verdict. Bad input ends in a
TinyForgeError with one sentence, or in the report's `problems`, never in a traceback.

TFLM runs only in child processes (memory.measure / memory.ops); Keras files are loaded and
converted in a child process too (memory._keras_child), so this module never imports
TensorFlow.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tinyforge.boards import Board, get_board
from tinyforge.check import check_budget, runtime_costs
from tinyforge.errors import ModelFileError, StageError, TinyForgeError, UnknownBoardError
from tinyforge.memory.estimate import estimate_model
from tinyforge.memory.tflite_model import TfliteModel, load_tflite
from tinyforge.report import Comparison, InspectReport, LayerRow
from tinyforge.spec import SPEC_FILENAME, Budget, ProjectSpec

PLATFORMIO_INI = "platformio.ini"
_HDF5_MAGIC = b"\x89HDF\r\n\x1a\n"


@dataclass
class BudgetChoice:
    board: Board
    budget: Budget
    source: str  # where the limits come from, in words


# --- budgets ---------------------------------------------------------------------------------


def resolve_budget(board: str | None = None, project: Path | str | None = None) -> BudgetChoice:
    """Board and limits from `--board`, or from a project's tinyforge.toml / platformio.ini.

    In a project, the spec's budget is the user's; PlatformIO's `board_upload.maximum_size` /
    `board_upload.maximum_ram_size` overrides in platformio.ini tighten it (PlatformIO's own
    size check enforces them), so the smaller figure of each resource is used.
    """
    if project is None:
        if board is None:
            raise TinyForgeError("Give a board (--board) or a project folder (--project).")
        found = get_board(board)
        return BudgetChoice(
            found,
            Budget(ram_bytes=found.ram_bytes, flash_bytes=found.flash_bytes),
            f"board {found.id}",
        )
    root = Path(project)
    if not root.is_dir():
        raise TinyForgeError(f"Project folder '{root}' does not exist.")
    spec_path, ini_path = root / SPEC_FILENAME, root / PLATFORMIO_INI
    if not spec_path.is_file() and not ini_path.is_file():
        raise TinyForgeError(
            f"'{root}' has neither {SPEC_FILENAME} nor {PLATFORMIO_INI}: give --board instead."
        )
    choice: BudgetChoice | None = None
    if spec_path.is_file():
        spec = ProjectSpec.load(root)
        found = get_board(board or spec.board)
        choice = BudgetChoice(found, spec.budget, f"{spec_path.name} (board {found.id})")
    if ini_path.is_file():
        from tinyforge.project import read_platformio_ini

        env = read_platformio_ini(ini_path).env()
        if env is None:
            if choice is None:
                raise TinyForgeError(f"{ini_path} has no [env:...] section.")
        else:
            ram = env.int_option("board_upload.maximum_ram_size")
            flash = env.int_option("board_upload.maximum_size")
            if choice is None:
                name = board or env.board
                if not name:
                    raise TinyForgeError(f"{ini_path} [env:{env.name}] names no board.")
                found = _project_board(root, name, ram, flash)
                choice = BudgetChoice(
                    found,
                    Budget(ram_bytes=found.ram_bytes, flash_bytes=found.flash_bytes),
                    f"{ini_path.name} [env:{env.name}] (board {found.id})",
                )
            if ram or flash:
                choice.budget = Budget(
                    ram_bytes=min(choice.budget.ram_bytes, ram or choice.budget.ram_bytes),
                    flash_bytes=min(choice.budget.flash_bytes, flash or choice.budget.flash_bytes),
                )
                choice.source += " with board_upload.maximum_* overrides"
    assert choice is not None
    return choice


def _project_board(root: Path, name: str, ram: int | None, flash: int | None) -> Board:
    """A board of the database, or a custom one from the project's boards/<id>.json."""
    try:
        return get_board(name)
    except UnknownBoardError:
        manifest = root / "boards" / f"{name}.json"
        data: dict[str, Any] = {}
        if manifest.is_file():
            try:
                data = json.loads(manifest.read_text(encoding="utf-8"))
            except (OSError, ValueError) as exc:
                raise TinyForgeError(f"Cannot read board manifest {manifest}: {exc}") from None
        upload = data.get("upload", {}) if isinstance(data, dict) else {}
        ram = ram or _int_or_none(upload.get("maximum_ram_size"))
        flash = flash or _int_or_none(upload.get("maximum_size"))
        if not ram or not flash:
            raise
        build = data.get("build", {}) if isinstance(data, dict) else {}
        return Board(
            id=name,
            name=str(data.get("name", name)),
            vendor=str(data.get("vendor", "")),
            platform="",
            framework="",
            mcu=str(build.get("mcu", "")),
            f_cpu=0,
            flash_bytes=flash,
            ram_bytes=ram,
            psram_bytes=0,
            family="custom",  # no runtime costs of its own: the defaults apply
            cpu=str(build.get("cpu", "")),
            tflm_library="",
            aliases=(),
        )


def _int_or_none(value: Any) -> int | None:
    try:
        return int(value) if value is not None else None
    except (TypeError, ValueError):
        return None


# --- model kinds -----------------------------------------------------------------------------


def model_format(path: Path) -> str:
    """'tflite', 'onnx' or 'keras', from the file's contents first and its name second."""
    try:
        with path.open("rb") as handle:
            start = handle.read(16)
    except FileNotFoundError:
        raise ModelFileError(f"Model file '{path}' does not exist.") from None
    except IsADirectoryError:
        raise ModelFileError(f"'{path}' is a directory, not a model file.") from None
    except OSError as exc:
        raise ModelFileError(f"Model file '{path}' cannot be read ({exc.strerror}).") from None
    suffix = path.suffix.lower()
    if start[4:8] == b"TFL3":
        return "tflite"
    if start.startswith(_HDF5_MAGIC):
        return "keras"
    if start.startswith(b"PK\x03\x04") and suffix == ".keras":
        return "keras"
    if suffix == ".onnx":
        return "onnx"
    if suffix in (".tflite", ".keras", ".h5", ".hdf5"):
        kind = {".tflite": "TensorFlow Lite model", ".keras": "Keras model archive"}.get(
            suffix, "Keras HDF5 model"
        )
        what = "is empty" if not start else "does not have its file signature"
        raise ModelFileError(f"'{path}' is not a {kind}: the file {what}.")
    raise ModelFileError(
        f"'{path}' is not a model TinyForge can inspect: give a .tflite, .onnx, .keras or .h5 file."
    )


# --- the report ------------------------------------------------------------------------------


def inspect_model(
    path: Path | str,
    *,
    board: str | None = None,
    project: Path | str | None = None,
    measure: bool = True,
    quantization: str = "int8",
    convert: bool = False,
    calibration: Path | str | None = None,
) -> InspectReport:
    """The inspect report of one model file (see the module docstring).

    `convert` (for .onnx): convert it with onnx2tf first (calibrated on `calibration`, random
    with a warning otherwise) and inspect the converted .tflite, instead of mapping its ops.
    """
    started = time.monotonic()
    model_path = Path(path)
    choice = resolve_budget(board, project) if (board or project) else None
    kind = model_format(model_path)
    if kind == "onnx" and convert:
        report = _onnx_converted_report(
            model_path, measure=measure, quantization=quantization, calibration=calibration
        )
    elif kind == "onnx":
        from tinyforge.memory.onnx_inspect import onnx_report

        report = onnx_report(model_path)
    elif kind == "keras":
        report = _keras_report(model_path, measure=measure, quantization=quantization)
    else:
        report = tflite_report(load_tflite(model_path), model_path, measure=measure)
        # Quantization health (degenerate scales, ops TFLM aborts on) of the user's .tflite; a
        # Keras file is converted here with random calibration data, so its scales say nothing.
        from tinyforge.health.quant import check_tflite

        report.health = check_tflite(model_path)
    report.model = str(model_path)
    report.format = kind
    _add_budget(report, choice)
    report.seconds = {**report.seconds, "total": round(time.monotonic() - started, 3)}
    return report


def tflite_report(model: TfliteModel, path: Path | None, *, measure: bool = True) -> InspectReport:
    """Report fields of a parsed .tflite model: static estimate, TFLM op check, measurement."""
    static = estimate_model(model)
    report = InspectReport.unmeasured(
        model_bytes=model.model_bytes,
        ops=model.op_counts(),
        arena_head_bytes=static.head.head_bytes,
        arena_tail_bytes_estimate=static.host.tail_bytes,
        arena_tail_parts_estimate=static.host.tail_parts,
        layers=[LayerRow.model_validate(layer.to_dict()) for layer in static.layers],
        largest_tensor=static.largest_live_tensor(),
        problems=list(static.problems),
        notes=list(static.notes),
        seconds={"static": round(static.seconds, 4)},
    )
    if not static.problems:
        report.arena_bytes_estimate = static.arena_bytes
        report.arena_bytes_target_estimate = static.arena_bytes_target
        report.arena_bytes_target = static.arena_bytes_target
        report.arena_floor_bytes = static.floor_bytes
    _check_ops(report, model)
    if measure and path is not None and not static.problems and not report.unsupported_ops:
        _measure(report, model, path)
    elif measure and report.unsupported_ops:
        report.notes.append(
            "Not measured in TFLM: the interpreter cannot run the unsupported op(s)."
        )
    return report


def _check_ops(report: InspectReport, model: TfliteModel) -> None:
    from tinyforge.memory import measure as measure_module
    from tinyforge.memory import ops

    try:
        report.unsupported_ops = ops.unsupported_ops(model)
        report.tflite_micro_version = measure_module.tflm_package_version()
    except StageError as exc:
        report.notes.append(f"Could not ask TFLM which ops it runs: {exc}")
    unsupported = report.unsupported_ops
    if unsupported:
        report.problems.append(
            f"TFLM (tflite-micro {measure_module.tflm_package_version()}) cannot run "
            f"{', '.join(unsupported)}: replace those layers or add a custom kernel."
        )


def _measure(report: InspectReport, model: TfliteModel, path: Path) -> None:
    from tinyforge.memory.measure import measure_arena
    from tinyforge.memory.target import target_arena_bytes

    started = time.monotonic()
    try:
        measured = measure_arena(path)
    except StageError as exc:
        report.problems.append(str(exc))
        return
    finally:
        report.seconds["measure"] = round(time.monotonic() - started, 3)
    report.arena_bytes = measured.arena_bytes
    report.arena_bytes_recorded = measured.recorded_total
    report.arena_bytes_target = target_arena_bytes(measured, model)
    report.arena_measured_parts = measured.breakdown
    if not measured.invoke_ok:
        report.notes.append(
            "TFLM allocated the model but failed to invoke it on zeros; the measured arena "
            "covers allocation only."
        )


def _add_budget(report: InspectReport, choice: BudgetChoice | None) -> None:
    """Flash and RAM estimates for the board family (or the defaults), and the verdict."""
    family = choice.board.family if choice else "default"
    costs = runtime_costs(family)
    ops = list(report.ops)
    arena = report.arena_bytes_target
    model_bytes = report.model_bytes
    report.board = choice.board.id if choice else None
    report.runtime_costs_family = costs.family
    if model_bytes is None or arena is None:
        report.flash_bytes_estimate = None
        report.ram_bytes_estimate = None
        if choice is not None:
            report.budget = choice.budget
            report.budget_source = choice.source
            report.fits = None  # no figures, no verdict (see problems)
            report.violations = []
        return
    if choice is None:
        report.ram_parts = {
            "tensor arena": arena,
            "TFLM runtime": costs.tflm_ram,
            "application and framework": costs.app_ram,
        }
        report.flash_parts = {
            "model": model_bytes,
            "TFLM runtime and kernels": costs.tflm_flash + costs.ops_flash(ops),
            "application and framework": costs.app_flash,
        }
        report.ram_bytes_estimate = sum(report.ram_parts.values())
        report.flash_bytes_estimate = sum(report.flash_parts.values())
        return
    verdict = check_budget(
        board=choice.board,
        budget=choice.budget,
        model_bytes=model_bytes,
        arena_bytes_target=arena,
        ops=ops,
        largest_tensor=report.largest_tensor,
    )
    report.set_verdict(verdict)
    report.budget_source = choice.source


# --- Keras -----------------------------------------------------------------------------------


def _keras_report(path: Path, *, measure: bool, quantization: str) -> InspectReport:
    """Load and convert the Keras model in a child process, then inspect the .tflite."""
    import tempfile

    from tinyforge.memory.keras_estimate import estimate_from_description, run_keras_child

    with tempfile.TemporaryDirectory(prefix="tinyforge-inspect-") as tmp:
        result = run_keras_child(path, Path(tmp), quantization=quantization)
        tflite_path = Path(tmp) / "model.tflite"
        model = load_tflite(tflite_path)
        report = tflite_report(model, tflite_path, measure=measure)
    report.notes.insert(
        0,
        f"Converted to {quantization} TFLite for inspection"
        + (" with random calibration data (memory figures only)" if quantization == "int8" else "")
        + f" in {result.get('seconds', 0):.1f} s.",
    )
    description = result.get("description")
    if description is not None:
        try:
            definition = estimate_from_description(description)
        except TinyForgeError as exc:
            report.keras_estimate = {"error": str(exc)}
        else:
            report.keras_estimate = definition.to_dict()
    return report


# --- ONNX, converted ---------------------------------------------------------------------------


def _onnx_converted_report(
    path: Path, *, measure: bool, quantization: str, calibration: Path | str | None
) -> InspectReport:
    """Convert the ONNX model with onnx2tf in a child process, then inspect the .tflite."""
    import tempfile

    from tinyforge.convert.onnx import convert_to_tflite

    with tempfile.TemporaryDirectory(prefix="tinyforge-inspect-") as tmp:
        tflite_path, result = convert_to_tflite(
            path, Path(tmp), calibration=calibration, quantization=quantization
        )
        report = tflite_report(load_tflite(tflite_path), tflite_path, measure=measure)
    float_cmp = result["float"]
    report.onnx_ops = result["onnx_ops"]
    int8_cmp = result.get("int8")
    report.agreement = {
        "float": Comparison.model_validate(float_cmp),
        "int8": Comparison.model_validate(int8_cmp) if int8_cmp is not None else None,
    }
    report.notes[:0] = [
        *result["notices"],
        f"Converted to {quantization} TFLite with onnx2tf ({result['calibration']}) in "
        f"{result.get('onnx2tf_seconds', 0):.1f} s; float32 agrees with ONNX on "
        f"{100 * float_cmp['agreement']:.1f}% ({float_cmp['measure']}).",
    ]
    return report
