"""Generate: spec → project files (training script, PlatformIO project, firmware sources).

Templates are Jinja2 files beside this module; this package only gathers what they need.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING

from tinyforge.boards import Board, get_board
from tinyforge.generate import firmware
from tinyforge.generate.architecture import (
    ARENA_SHARE,
    FLASH_SHARE,
    Architecture,
    choose_architecture,
)
from tinyforge.generate.files import WriteResult, write_generated
from tinyforge.generate.render_cpp import cpp_comment, cpp_string
from tinyforge.generate.render_python import ini_value, py_comment, py_docstring, py_literal
from tinyforge.spec import SPEC_FILENAME, DatasetKind, ProjectSpec, Task

if TYPE_CHECKING:
    import jinja2

ARTIFACTS_DIR = "artifacts"
TRAIN_SCRIPT = "train.py"
PLATFORMIO_INI = "platformio.ini"
MAIN_CPP = "src/main.cpp"
MODEL_DATA_H = "lib/model/model_data.h"
MODEL_DATA_CC = "lib/model/model_data.cc"
GITIGNORE = ".gitignore"
# What a build leaves in the project besides the sources: the trained model, the deployed one,
# and in ARTIFACTS_DIR the figures the training and the conversion wrote for the later stages.
MODEL_KERAS = "model.keras"
MODEL_TFLITE = "model.tflite"
METRICS_FILE = "metrics.json"
CONVERT_FILE = "convert.json"
SAMPLE_INPUT = "sample_input.npy"
# What the build found (report.py: the one builder of it).
REPORT_FILE = "report.json"


@cache
def _env() -> jinja2.Environment:
    # Imported here: the language server reads this package's names at start, not templates.
    import jinja2

    env = jinja2.Environment(
        loader=jinja2.PackageLoader("tinyforge.generate", "templates"),
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
        undefined=jinja2.StrictUndefined,
    )
    # Values in C++ files: literals and comments no label can break out of (render_cpp.py).
    env.filters["cpp_string"] = cpp_string
    env.filters["cpp_comment"] = cpp_comment
    # Values in train.py and platformio.ini: literals, docstrings, comments (render_python.py).
    env.filters["py"] = py_literal
    env.filters["py_docstring"] = py_docstring
    env.filters["py_comment"] = py_comment
    env.filters["ini"] = ini_value
    return env


def render(template: str, **context: object) -> str:
    return _env().get_template(template).render(**context)


def render_main_cpp(
    *,
    board: Board,
    model_bytes: int,
    quantization: str,
    labels: list[str],
    arena_bytes: int,
    arena_target_bytes: int,
    resolver_methods: list[str],
    threshold: float | None = None,
) -> str:
    """src/main.cpp for a measured arena (`arena_bytes`, the host TFLM measurement); an
    anomaly detector's `threshold` makes it print normal/anomaly instead of a class."""
    arena_size = firmware.firmware_arena_bytes(arena_bytes)
    return render(
        "main.cpp.j2",
        board=board,
        umbrella_header=firmware.umbrella_header(board),
        model_bytes=model_bytes,
        quantization=quantization,
        labels=labels,
        arena_bytes=arena_bytes,
        arena_margin_bytes=firmware.arena_margin_bytes(arena_bytes),
        arena_size=arena_size,
        arena_target_bytes=arena_target_bytes,
        arena_in_heap=firmware.arena_in_heap(board, arena_size),
        static_arena_limit=firmware.static_arena_limit(board),
        heap_macro=firmware.ARENA_HEAP_MACRO,
        resolver_methods=resolver_methods,
        threshold=threshold,
    )


def expected_classes(spec: ProjectSpec, project_dir: Path) -> list[str] | None:
    """Class names known before training: the spec's, or the dataset folder's sub-folders."""
    if spec.classes:
        return list(spec.classes)
    if spec.dataset.kind is DatasetKind.DIGITS:
        return [str(d) for d in range(10)]
    if spec.dataset.kind is DatasetKind.FOLDER and spec.dataset.path:
        folder = (project_dir / spec.dataset.path).resolve()
        if folder.is_dir():
            names = sorted(
                p.name for p in folder.iterdir() if p.is_dir() and not p.name.startswith(".")
            )
            return names or None
    return None


@dataclass
class ModelPlan:
    architecture: Architecture
    num_classes: int
    ram_for_model: int
    flash_for_model: int


def plan_model(spec: ProjectSpec, project_dir: Path) -> ModelPlan:
    classes = expected_classes(spec, project_dir)
    num_classes = spec.num_classes or (len(classes) if classes else 2)
    ram = int(spec.budget.ram_bytes * ARENA_SHARE)
    flash = int(spec.budget.flash_bytes * FLASH_SHARE)
    return ModelPlan(choose_architecture(spec, num_classes, ram, flash), num_classes, ram, flash)


def render_project(spec: ProjectSpec, project_dir: Path) -> dict[str, str]:
    """Files `tinyforge new` writes: the spec, the training script, the PlatformIO project."""
    board = get_board(spec.board)
    return {
        SPEC_FILENAME: spec.to_toml(),
        TRAIN_SCRIPT: render_train_script(spec, project_dir),
        PLATFORMIO_INI: render_platformio_ini(spec, board),
        GITIGNORE: render("gitignore.j2"),
    }


def render_train_script(
    spec: ProjectSpec,
    project_dir: Path,
    architecture: Architecture | None = None,
    summary: str | None = None,
) -> str:
    """train.py with TinyForge's own sizing, or with `architecture` (e.g. a model `tinyforge
    fit` chose), whose `summary` then becomes build_model's docstring."""
    board = get_board(spec.board)
    if architecture is None:
        model = plan_model(spec, project_dir)
        arch = model.architecture
        shape = tuple(spec.input_shape)
        summary = (
            f"{arch.family}, ~{arch.params:,} parameters, chosen by TinyForge for {board.id}: "
            f"estimated int8 arena {math.ceil(arch.arena_estimate(shape) / 1024)} KB of the "
            f"{model.ram_for_model // 1024} KB it allowed the model, weights "
            f"{math.ceil(arch.flash_estimate() / 1024)} KB of {model.flash_for_model // 1024} KB."
        )
        if arch.notes:
            summary += " Note: " + "; ".join(arch.notes) + "."
    else:
        arch = architecture
        summary = summary or f"{arch.family}, ~{arch.params:,} parameters."
    classes = spec.classes or (
        [str(d) for d in range(10)] if spec.dataset.kind is DatasetKind.DIGITS else None
    )
    anomaly = spec.task is Task.ANOMALY_DETECTION
    layers = [layer for layer in arch.layers if layer.code] if anomaly else arch.layers
    return render(
        "train_anomaly.py.j2" if anomaly else "train.py.j2",
        spec=spec,
        board=board,
        request=spec.request,
        artifacts_dir=ARTIFACTS_DIR,
        # Raw values: the templates render each one with the `py` filter (render_python.py).
        input_shape=tuple(spec.input_shape),
        classes=[str(c) for c in classes] if classes else None,
        dataset_path=spec.dataset.path,
        label_column=spec.dataset.label_column or "label",
        features=[str(f) for f in spec.dataset.features] if spec.dataset.features else None,
        # The class that gathers the data's other labels, or None.
        other_class=str(spec.dataset.other_class) if spec.dataset.other_class else None,
        layers=layers,
        uses_normalizer=any(layer.kind == "Normalization" for layer in arch.layers),
        normalizer_axis=None if spec.task is Task.KEYWORD_SPOTTING else -1,
        audio=spec.task is Task.KEYWORD_SPOTTING,
        arch_summary=_wrap_docstring(summary),  # lines; the template escapes each
    )


def render_platformio_ini(spec: ProjectSpec, board: Board) -> str:
    ram = spec.budget.ram_bytes if spec.budget.ram_bytes < board.ram_bytes else None
    flash = spec.budget.flash_bytes if spec.budget.flash_bytes < board.flash_bytes else None
    return render(
        "platformio.ini.j2",
        board=board,
        ram_override=ram,
        flash_override=flash,
        tflm_lib_deps=firmware.tflm_lib_deps(board),
        tflm_bundled_in=firmware.BUNDLED_TFLM.get(firmware.tflm_package(board)),
        extra_flags=firmware.extra_build_flags(board),
    )


def _wrap_docstring(text: str, width: int = 92) -> list[str]:
    words, lines, line = text.split(), [], ""
    for word in words:
        if line and len(line) + 1 + len(word) > width:
            lines.append(line)
            line = word
        else:
            line = f"{line} {word}".strip()
    lines.append(line)
    return lines


def write_project(spec: ProjectSpec, project_dir: Path, *, force: bool = False) -> WriteResult:
    return write_generated(project_dir, render_project(spec, project_dir), force=force)


__all__ = [
    "MAIN_CPP",
    "MODEL_DATA_CC",
    "MODEL_DATA_H",
    "PLATFORMIO_INI",
    "TRAIN_SCRIPT",
    "ModelPlan",
    "WriteResult",
    "plan_model",
    "render",
    "render_main_cpp",
    "render_project",
    "render_train_script",
    "write_generated",
    "write_project",
]
