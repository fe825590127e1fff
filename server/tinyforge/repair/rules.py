"""Offline repair rules for the common failures, keyed on the text the tools really print.

- unsupported op: TFLM's "Didn't find op for builtin opcode 'GELU'" (the verify stage says
  "it uses op GELU, which this TFLM build ... does not implement") → the activation that
  produces it is replaced by one TFLM runs, in train.py.
- float model where int8 is needed: a float32 spec over budget (or a float type error) →
  `quantization = "int8"` in tinyforge.toml (a quarter of the weights and of the arena).
- arena/RAM or flash overflow: report.json's violations, or a linker's "region `RAM'
  overflowed by N bytes" → train.py's filters/units scaled until the static estimator,
  calibrated on the build's measured figures, says the model fits.
- classes the data does not have: the build's "... name 'kiwi', which is not in the data"
  (or train.py's "has labels not in CLASSES") → tinyforge.toml's classes become the dataset's
  labels.
- missing TFLM library: the compiler's "fatal error: TensorFlowLite.h: No such file or
  directory", or a platformio.ini whose lib_deps has no TFLM library → the board's library
  is added to lib_deps.

A rule returns None when the failure is not its kind, and a Fix without edits when it knows the
cause but no edit can cure it (e.g. the runtime alone is over the budget).
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tinyforge.boards import Board, get_board
from tinyforge.check import kb
from tinyforge.errors import TinyForgeError
from tinyforge.repair.edits import (
    Shrunk,
    activation_op,
    needs_tflm_library,
    replace_activations,
    shrink,
)
from tinyforge.repair.failure import Failure
from tinyforge.repair.fixes import FileEdit, Fix
from tinyforge.report import BuildReport, read_report
from tinyforge.spec import SPEC_FILENAME, ProjectSpec, Quantization

TRAIN = "train.py"
INI = "platformio.ini"
EDITABLE = (TRAIN, SPEC_FILENAME, INI)

# The tables (activations, shrinkable layers, TFLM libraries) are repair/edits.py's, shared
# with the editor's quick fixes.
# Aim a little below the room left, so that the retrained model (whose size the estimate only
# approximates) still fits.
MARGIN = 0.95

_MISSING_OP = (
    re.compile(r"uses op (\w+), which this TFLM build"),
    re.compile(r"Didn't find op for builtin opcode '(\w+)'"),
    re.compile(r"becomes the (?:TFLite )?op (\w+), which TFLite Micro cannot run"),
)
_MISSING_HEADER = re.compile(
    r"(?:fatal error: )?((?:TensorFlowLite\w*|Chirale_TensorFlowLite|tensorflow/lite/micro/[\w/]+)"
    r"\.h): No such file or directory"
)
_LINKER_OVERFLOW = re.compile(
    r"region [`'\"]?(?P<region>[\w.]+)['\"]? overflowed by (?P<bytes>\d+) bytes", re.IGNORECASE
)
_FLOAT_TYPE = re.compile(
    r"(?i)hybrid models are not supported|type float32 \(1\) (?:is )?not supported|"
    r"only int8.*supported|float32 model"
)


@dataclass
class Project:
    """What the rules read: the project's files as they are now, its spec, board, report."""

    root: Path
    files: dict[str, str] = field(default_factory=dict)
    spec: ProjectSpec | None = None
    board: Board | None = None
    report: BuildReport | None = None
    problems: list[str] = field(default_factory=list)

    @classmethod
    def load(cls, root: Path) -> Project:
        project = cls(Path(root))
        for name in EDITABLE:
            path = project.root / name
            if path.is_file():
                try:
                    project.files[name] = path.read_text(encoding="utf-8")
                except (OSError, UnicodeDecodeError) as exc:
                    project.problems.append(f"cannot read {name}: {exc}")
        if SPEC_FILENAME in project.files:
            try:
                project.spec = ProjectSpec.from_toml_text(project.files[SPEC_FILENAME])
                project.board = get_board(project.spec.board)
            except TinyForgeError as exc:
                project.problems.append(str(exc))
        project.report = read_report(project.root)
        return project


Rule = Callable[[Failure, Project], Fix | None]


# -- unsupported op ---------------------------------------------------------------------------


def unsupported_op(failure: Failure, project: Project) -> Fix | None:
    from tinyforge.memory.ops import tflm_supported_ops

    text = failure.text()
    missing = {m.group(1) for rx in _MISSING_OP for m in rx.finditer(text)}
    if not missing:
        return None
    source = project.files.get(TRAIN)
    if source is None or project.spec is None:
        return None
    layers = [
        layer
        for layer, act in _activation_layers(source, project.spec)
        if activation_op(act) in missing
    ]
    after, changes = replace_activations(source, layers, tflm_supported_ops())
    if after == source:
        return None
    ops = ", ".join(sorted(missing))
    return Fix(
        rule="unsupported-op",
        title=f"Replace what TFLite Micro cannot run ({ops}) in {TRAIN}",
        explanation=(
            f"TFLM reported the op{'s' if len(missing) > 1 else ''} {ops} missing "
            f"({failure.source or failure.stage}). In {TRAIN}: {'; '.join(changes)}. "
            "Retrain with `tinyforge build`."
        ),
        edits=[FileEdit(TRAIN, source, after)],
    )


def _activation_layers(source: str, spec: ProjectSpec) -> list[tuple[Any, str]]:
    from tinyforge.check.proposal import spec_hints
    from tinyforge.memory.keras_source import find_models

    try:
        models = find_models(source, spec_hints(spec))
    except (SyntaxError, ValueError, RecursionError):
        return []
    found = []
    for model in models:
        for layer in model.layers:
            act = layer.config.get("activation")
            if isinstance(act, str):
                found.append((layer, act))
    return found


# -- float → int8 -----------------------------------------------------------------------------


def quantize_int8(failure: Failure, project: Project) -> Fix | None:
    spec = project.spec
    toml = project.files.get(SPEC_FILENAME)
    if spec is None or toml is None or spec.quantization is not Quantization.FLOAT32:
        return None
    over = failure.stage == "check" or _LINKER_OVERFLOW.search(failure.text())
    if not over and not _FLOAT_TYPE.search(failure.text()):
        return None
    after, count = re.subn(
        r'^(\s*quantization\s*=\s*)["\']float32["\']', r'\1"int8"', toml, flags=re.M
    )
    if not count:
        return None
    figures = ""
    report = project.report
    model_bytes = report.model_bytes if report else None
    arena = report.arena_bytes_target if report else None
    if model_bytes and arena:
        figures = (
            f" This build: model {kb(model_bytes)}, arena "
            f"{kb(arena)} in float32; int8 stores a weight in 1 byte "
            f"instead of 4 and activations likewise: about {kb(model_bytes // 4)} "
            f"and {kb(arena // 4)}."
        )
    return Fix(
        rule="quantize-int8",
        title=f'Quantize to int8 (tinyforge.toml quantization = "int8") for {spec.board}',
        explanation=(
            f"The model is float32 and {failure.message.rstrip('.')}.{figures} "
            "Full-int8 is what TFLM's optimized kernels run; `tinyforge build` converts again."
        ),
        edits=[FileEdit(SPEC_FILENAME, toml, after)],
    )


# -- shrink to fit ----------------------------------------------------------------------------


def shrink_model(failure: Failure, project: Project) -> Fix | None:
    spec, board, report = project.spec, project.board, project.report
    source = project.files.get(TRAIN)
    if spec is None or board is None or source is None or report is None:
        return None
    if spec.quantization is Quantization.FLOAT32:
        return None  # quantizing comes first: it is 4x for free
    rooms = _rooms(failure, report, spec)
    if rooms is None:
        return None
    arena_room, model_room, why, over_ram, over_flash = rooms
    # _rooms found these figures in the report.
    assert report.arena_bytes_target is not None and report.model_bytes is not None
    fixed_ram = sum(report.ram_parts.values()) - report.ram_parts["tensor arena"]
    if arena_room <= 0 or model_room <= 0:
        resource, fixed, limit = (
            ("RAM", fixed_ram, spec.budget.ram_bytes)
            if arena_room <= 0
            else (
                "flash",
                sum(report.flash_parts.values()) - report.flash_parts["model"],
                spec.budget.flash_bytes,
            )
        )
        return Fix(
            rule="shrink-model",
            title=f"No model fits: the runtime alone needs {kb(fixed)} of {resource}",
            explanation=(
                f"{why}. The TFLM runtime and the application take {kb(fixed)} of the "
                f"{kb(limit)} {resource} budget on {board.id}, so no model can fit: raise the "
                "budget in tinyforge.toml or choose a board with more memory."
            ),
        )
    from tinyforge.check.proposal import spec_hints
    from tinyforge.memory.keras_layers import CannotInfer, ModelEstimate, estimate
    from tinyforge.memory.keras_source import find_models

    try:
        models = find_models(source, spec_hints(spec))
    except (SyntaxError, ValueError, RecursionError):
        return None
    if len(models) != 1:
        return None
    model = models[0]
    try:
        base = estimate(model)
    except CannotInfer:
        return None
    # The static estimate, offset to this build's measured figures: the change comes from the
    # estimator, the level from the measurement (what the estimate misses is mostly fixed
    # overhead, which does not shrink with the layers).
    arena_offset = report.arena_bytes_target - base.arena_bytes_target
    model_offset = report.model_bytes - base.model_bytes_estimate

    def fits(est: ModelEstimate) -> bool:
        arena = est.arena_bytes_target + arena_offset
        weights = est.model_bytes_estimate + model_offset
        arena_ok = arena <= arena_room * (MARGIN if over_ram else 1.0)
        return arena_ok and weights <= model_room * (MARGIN if over_flash else 1.0)

    shrunk = shrink(source, model, fits)
    if shrunk is None:
        return None
    if shrunk.fits:
        arena = shrunk.estimate.arena_bytes_target + arena_offset
        weights = shrunk.estimate.model_bytes_estimate + model_offset
        return _shrink_fix(source, shrunk, why, arena, weights, arena_room, model_room)
    return Fix(
        rule="shrink-model",
        title="Shrinking the layers is not enough to fit",
        explanation=(
            f"{why}. Even with filters/units at 5% the estimate does not fit: lower the input "
            "resolution or window in tinyforge.toml, or choose a board with more memory."
        ),
    )


def _rooms(
    failure: Failure, report: BuildReport, spec: ProjectSpec
) -> tuple[int, int, str, bool, bool] | None:
    """Bytes the arena and the model may take, why they must shrink, and which is over
    (RAM, flash); None when the failure is not an overflow or the report lacks the figures."""
    arena_now, model_now = report.arena_bytes_target, report.model_bytes
    arena_part = report.ram_parts.get("tensor arena")
    model_part = report.flash_parts.get("model")
    if arena_now is None or model_now is None or arena_part is None or model_part is None:
        return None
    ram_fixed = sum(report.ram_parts.values()) - arena_part
    flash_fixed = sum(report.flash_parts.values()) - model_part
    arena_room = spec.budget.ram_bytes - ram_fixed
    model_room = spec.budget.flash_bytes - flash_fixed
    if failure.stage == "check":
        kinds = {str(v.get("resource")) for v in failure.violations}
        return (
            arena_room,
            model_room,
            failure.message.rstrip("."),
            "ram" in kinds or not kinds,
            "flash" in kinds,
        )
    overflow = _LINKER_OVERFLOW.search(failure.text())
    if overflow is None:
        return None
    over = int(overflow.group("bytes"))
    region = overflow.group("region")
    why = f"the linker's {region} region overflowed by {over} bytes"
    if re.search(r"(?i)flash|rom|text", region):
        return arena_room, min(model_room, model_now - over), why, False, True
    return min(arena_room, arena_now - over), model_room, why, True, False


def _shrink_fix(
    source: str,
    shrunk: Shrunk,
    why: str,
    arena: float,
    weights: float,
    arena_room: int,
    model_room: int,
) -> Fix:
    return Fix(
        rule="shrink-model",
        title=f"Shrink the model to fit (filters/units × {shrunk.factor:.2f})",
        explanation=(
            f"{why}. In {TRAIN}: {', '.join(shrunk.changes)}. Estimated after the change (static "
            f"estimate offset to this build's measurement): arena ≈ {kb(int(arena))} of "
            f"{kb(arena_room)} left for it, model ≈ {kb(int(weights))} of {kb(model_room)}. "
            "Retrain with `tinyforge build` to measure it."
        ),
        edits=[FileEdit(TRAIN, source, shrunk.after)],
    )


# -- TFLM library -----------------------------------------------------------------------------


def missing_tflm_library(failure: Failure, project: Project) -> Fix | None:
    header = _MISSING_HEADER.search(failure.text())
    if header is None and failure.stage != "static":
        return None
    ini = project.files.get(INI)
    if ini is None:
        return None
    from tinyforge.project import read_platformio_ini

    try:
        parsed = read_platformio_ini(project.root / INI, ini)
    except TinyForgeError:
        return None
    board = project.board
    after = ini
    added = []
    for env in parsed.envs:
        env_board = board
        if env.board:
            with contextlib.suppress(TinyForgeError):
                env_board = get_board(env.board)
        if env_board is None or not needs_tflm_library(env.options.get("lib_deps", ""), env_board):
            continue
        after = _add_lib_dep(after, env.name, env_board.tflm_library)
        added.append(f"[env:{env.name}] lib_deps += {env_board.tflm_library}")
    if not added:
        return None
    cause = f"the compiler cannot find {header.group(1)}" if header else failure.message
    return Fix(
        rule="add-tflm-library",
        title="Add the TensorFlow Lite Micro library to platformio.ini",
        explanation=(
            f"{cause[:1].upper() + cause[1:]}: platformio.ini does not pull in TFLM. "
            f"{'; '.join(added)} (the library TinyForge's board database gives for it)."
        ),
        edits=[FileEdit(INI, ini, after)],
    )


def _add_lib_dep(text: str, env: str, library: str) -> str:
    """Append `library` to [env:NAME]'s lib_deps (creating the key when absent)."""
    lines = text.splitlines(keepends=True)
    header = re.compile(rf"^\s*\[env:{re.escape(env)}\]\s*$")
    start = next((i for i, ln in enumerate(lines) if header.match(ln)), None)
    if start is None:
        return text
    end = next(
        (i for i in range(start + 1, len(lines)) if re.match(r"^\s*\[", lines[i])), len(lines)
    )
    for i in range(start + 1, end):
        if re.match(r"^lib_deps\s*=", lines[i]):
            j = i + 1
            while (
                j < end
                and re.match(r"^[ \t]+\S", lines[j])
                and not lines[j].lstrip().startswith(";")
            ):
                j += 1
            value = lines[i].split("=", 1)[1].strip()
            if not value and j == i + 1:
                lines[i] = f"lib_deps =\n    {library}\n"
            else:
                lines.insert(j, f"    {library}\n")
            return "".join(lines)
    # No lib_deps: after the last key of the section (before trailing blank/comment lines).
    insert = end
    while insert > start + 1 and (
        not lines[insert - 1].strip() or lines[insert - 1].lstrip().startswith(";")
    ):
        insert -= 1
    if insert > 0 and not lines[insert - 1].endswith("\n"):
        lines[insert - 1] += "\n"
    lines.insert(insert, f"lib_deps =\n    {library}\n")
    return "".join(lines)


# -- classes the data does not have -----------------------------------------------------------

# The build's own stop (reconcile), and what an older or hand-edited train.py prints.
_LABEL_FAILURE = re.compile(
    r"(?i)not in the data:|has labels not in CLASSES|has no sub-folder for class"
)


def dataset_labels(failure: Failure, project: Project) -> Fix | None:
    """The spec names a class the dataset lacks → classes = the data's labels."""
    from tinyforge.reconcile import STAGE, labels_fix

    spec, toml = project.spec, project.files.get(SPEC_FILENAME)
    if spec is None or toml is None:
        return None
    if failure.stage != STAGE and not _LABEL_FAILURE.search(failure.text()):
        return None
    return labels_fix(toml, spec, project.root)


RULES: tuple[Rule, ...] = (
    dataset_labels,
    unsupported_op,
    quantize_int8,
    shrink_model,
    missing_tflm_library,
)


def offline_fixes(failure: Failure, project: Project) -> list[Fix]:
    fixes = []
    for rule in RULES:
        fix = rule(failure, project)
        if fix is not None:
            fixes.append(fix)
    return fixes
