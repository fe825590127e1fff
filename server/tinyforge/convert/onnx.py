"""Bring your own model: ONNX (and PyTorch through ONNX) → int8 TFLite Micro, verified.

`convert_onnx` is `tinyforge convert model.onnx --board B`: check the ONNX file (checker,
opset, one input and output, dynamic dimensions fixed from --input-shape or the calibration
data), convert it with onnx2tf in a child process (`onnx_worker`) to float32 and full-int8
TFLite calibrated on the user's data, verify both against onnxruntime and the int8 model in
the real TFLM interpreter, measure its arena against the board, and — with an output folder —
write the same project a Keras build writes (C array, main.cpp, platformio.ini, report.json)
plus a tinyforge.toml whose `model.source` names the ONNX file, so `tinyforge build` converts
it again.

It is the pipeline's second front end: the same stage runner (stages.py), transaction
(transaction.py), firmware emission (generate/emit.py) and report (report.py) as a Keras build,
and it imports nothing of pipeline.py, which calls it for a brought model's `tinyforge build`.

This module imports `onnx` and numpy only; onnx2tf and TensorFlow stay in the worker.
"""

from __future__ import annotations

import contextlib
import json
import math
import re
import shutil
import tempfile
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from tinyforge import generate, jobs
from tinyforge.boards import Board, get_board
from tinyforge.check import Verdict, check_budget
from tinyforge.convert.onnx_contract import (
    ConversionResult,
    OnnxJob,
    OnnxNode,
    OutputComparison,
)
from tinyforge.convert.onnx_worker import (
    FLOAT_TFLITE,
    INT8_TFLITE,
    JOB_FILE,
    RESULT_FILE,
    channels_last_shape,
    compare,
    to_onnx_layout,
)
from tinyforge.datasets import IMAGE_SUFFIXES
from tinyforge.errors import DatasetError, ModelFileError, StageError, TinyForgeError
from tinyforge.generate import (
    ARTIFACTS_DIR,
    CONVERT_FILE,
    GITIGNORE,
    MAIN_CPP,
    MODEL_DATA_CC,
    MODEL_DATA_H,
    MODEL_TFLITE,
    PLATFORMIO_INI,
    REPORT_FILE,
    SAMPLE_INPUT,
)
from tinyforge.generate.emit import emit_firmware
from tinyforge.journal import STATE_DIR
from tinyforge.lock import project_lock
from tinyforge.progress import NullProgress, Progress
from tinyforge.report import BuildReport, build_report, write_report
from tinyforge.spec import (
    SPEC_FILENAME,
    Budget,
    Dataset,
    DatasetKind,
    ModelSource,
    ProjectSpec,
    Quantization,
    Task,
)
from tinyforge.stages import Stages

# The stages of this front end of the pipeline (pipeline.BUILD_STAGES: the Keras one's).
STAGES = ("check", "convert", "verify", "inspect", "emit", "report")
DEFAULT_MIN_AGREEMENT = 0.99
# Below this int8 agreement the report says so loudly (it does not fail: int8 rounding moves
# close calls, and how many is the user's call).
INT8_NOTICE_AGREEMENT = 0.9
MAX_SAMPLES = 200  # calibration and verification inputs; more adds time, not confidence
RANDOM_SAMPLES = 64
MODEL_FILE = "model.onnx"
RANDOM_CALIBRATION_FILE = "calibration.npy"
RANDOM_WARNING = (
    "NO CALIBRATION DATA: the int8 model was calibrated, and verified, on random inputs in "
    "[0, 1). Its quantization ranges may not fit real inputs and its agreement figures say "
    "little: pass --calibration (a .npy of real inputs, an image folder or a TinyForge project)."
)
_SAFE_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


# --- the ONNX file ---------------------------------------------------------------------------


@dataclass
class OnnxModelInfo:
    """What the check found: the one input (its shape fixed), the one output, the ops."""

    path: Path
    opset: int
    producer: str
    input_name: str
    declared_shape: list[int | str]  # as in the file: a name or '?' for open dimensions
    input_shape: list[int]  # fixed, batch 1 first, in the model's own layout
    output_name: str
    nodes: list[OnnxNode]
    params: int
    fixed: Any  # onnx.ModelProto with the fixed shape and a TensorFlow-safe input name
    fixed_input_name: str
    notes: list[str] = field(default_factory=list)
    reference: Any = None  # the user's model with only its IR version lowered, if it had to be

    @property
    def sample_shape(self) -> tuple[int, ...]:
        return tuple(self.input_shape[1:])

    @property
    def open_dims(self) -> bool:
        return any(not isinstance(d, int) for d in self.declared_shape[1:])

    def op_counts(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for node in self.nodes:
            counts[node["op_type"]] = counts.get(node["op_type"], 0) + 1
        return counts


def _describe(shape: Sequence[int | str | None]) -> str:
    return "[" + ", ".join("?" if d is None else str(d) for d in shape) + "]"


def check_onnx(
    path: Path,
    *,
    input_shape: Sequence[int] | None = None,
    hint: Sequence[int] | None = None,
) -> OnnxModelInfo:
    """Check an .onnx file and fix its input shape; ModelFileError/TinyForgeError otherwise.

    `input_shape` is the user's (with or without the batch of 1); `hint` a per-sample shape
    the calibration data suggests (in the model's layout or channels-last; for images, just
    height × width), used for dimensions the file leaves open.
    """
    import onnx
    from onnx import checker, shape_inference

    from tinyforge.memory.onnx_inspect import load_onnx

    path = Path(path)
    model = load_onnx(path)
    try:
        checker.check_model(model)
    except checker.ValidationError as exc:
        raise ModelFileError(
            f"'{path.name}' is not a valid ONNX model: the ONNX checker says {_first_line(exc)}"
        ) from None
    opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), None)
    if opset is None or opset < 7:
        raise ModelFileError(
            f"'{path.name}' uses ONNX opset {opset or 'none'}; onnx2tf converts opset 7 and "
            "newer: export it again with a newer opset (torch.onnx.export(..., opset_version=13))."
        )
    graph = model.graph
    for node in graph.node:
        if node.domain not in ("", "ai.onnx"):
            raise ModelFileError(
                f"'{path.name}' uses op {node.domain}:{node.op_type} (node {node.name or '?'}) "
                "from a custom ONNX domain, which onnx2tf cannot convert: export the model "
                "without that op (e.g. without runtime-specific optimisation)."
            )
    initializers = {init.name for init in graph.initializer}
    inputs = [i for i in graph.input if i.name not in initializers]
    if len(inputs) != 1:
        names = ", ".join(i.name for i in inputs) or "none"
        raise ModelFileError(
            f"'{path.name}' has {len(inputs)} inputs ({names}): TinyForge converts models with "
            "one input, the tensor the firmware fills."
        )
    if len(graph.output) != 1:
        names = ", ".join(o.name for o in graph.output)
        raise ModelFileError(
            f"'{path.name}' has {len(graph.output)} outputs ({names}): TinyForge converts "
            "models with one output; export the model with only the output the device needs."
        )
    graph_input = inputs[0]
    tensor_type = graph_input.type.tensor_type
    if tensor_type.elem_type != onnx.TensorProto.FLOAT:
        kind = onnx.TensorProto.DataType.Name(tensor_type.elem_type).lower()
        raise ModelFileError(
            f"Input '{graph_input.name}' of '{path.name}' is {kind}: TinyForge converts models "
            "with a float32 input (it becomes the int8 input of the converted model)."
        )
    declared: list[int | str] = [
        d.dim_value if d.HasField("dim_value") and d.dim_value > 0 else (d.dim_param or "?")
        for d in tensor_type.shape.dim
    ]
    if not declared:
        raise ModelFileError(f"Input '{graph_input.name}' of '{path.name}' has no shape.")
    fixed_shape, notes = _fix_shape(graph_input.name, path.name, declared, input_shape, hint)

    fixed = onnx.ModelProto()
    fixed.CopyFrom(model)
    reference = None
    compatible_ir = _compatible_ir_version(model)
    if compatible_ir is not None:
        # onnx writes IR versions newer than onnxruntime reads ("Unsupported model IR
        # version"); the graph itself needs only what its opsets need.
        fixed.ir_version = compatible_ir
        reference = onnx.ModelProto()
        reference.CopyFrom(model)
        reference.ir_version = compatible_ir
        notes.append(f"IR version {model.ir_version} lowered to {compatible_ir} for onnxruntime")
    fixed_input = next(i for i in fixed.graph.input if i.name == graph_input.name)
    for dim, size in zip(fixed_input.type.tensor_type.shape.dim, fixed_shape, strict=True):
        dim.Clear()
        dim.dim_value = size
    safe_name = _safe_input_name(graph_input.name, fixed)
    try:
        fixed = shape_inference.infer_shapes(fixed, strict_mode=True)
    except Exception as exc:  # onnx raises InferenceError and others, all with the node named
        raise TinyForgeError(
            f"'{path.name}' does not work with the input shape {fixed_shape}: ONNX shape "
            f"inference fails ({_first_line(exc)}). Give the shape it was exported for with "
            "--input-shape."
        ) from None
    nodes: list[OnnxNode] = [
        {"name": n.name, "op_type": n.op_type, "inputs": list(n.input), "outputs": list(n.output)}
        for n in graph.node
    ]
    params = sum(math.prod(init.dims) for init in graph.initializer)
    return OnnxModelInfo(
        path=path,
        opset=int(opset),
        producer=" ".join(p for p in (model.producer_name, model.producer_version) if p),
        input_name=graph_input.name,
        declared_shape=declared,
        input_shape=fixed_shape,
        output_name=graph.output[0].name,
        nodes=nodes,
        params=int(params),
        fixed=fixed,
        fixed_input_name=safe_name,
        notes=notes,
        reference=reference,
    )


# Newest IR version every onnxruntime TinyForge supports reads (onnxruntime 1.18+).
_MAX_SAFE_IR = 10


def _compatible_ir_version(model: Any) -> int | None:
    """A lower IR version for a model newer than onnxruntime may read; None if it is fine."""
    from onnx import helper

    if model.ir_version <= _MAX_SAFE_IR:
        return None
    try:
        needed = helper.find_min_ir_version_for(list(model.opset_import), ignore_unknown=True)
    except Exception:  # an opset onnx does not know: leave the model as it is
        return None
    return max(needed, _MAX_SAFE_IR) if max(needed, _MAX_SAFE_IR) < model.ir_version else None


def _first_line(exc: BaseException) -> str:
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    text = lines[0] if lines else type(exc).__name__
    text = re.sub(r"^\[[A-Za-z]+\]\s*", "", text)
    return text if len(text) <= 240 else text[:240] + "…"


def _fix_shape(
    name: str,
    file: str,
    declared: list[int | str],
    given: Sequence[int] | None,
    hint: Sequence[int] | None,
) -> tuple[list[int], list[str]]:
    notes: list[str] = []
    rank = len(declared)
    if given is not None:
        shape = [int(d) for d in given]
        if len(shape) == rank - 1:
            shape = [1, *shape]
        if len(shape) != rank:
            raise TinyForgeError(
                f"--input-shape {_describe(list(given))} has {len(list(given))} dimensions; "
                f"input '{name}' of {file} has {rank}: {_describe(declared)}."
            )
        if shape[0] != 1 or any(d <= 0 for d in shape):
            raise TinyForgeError(
                f"--input-shape {_describe(shape)} must have a batch of 1 and positive sizes: "
                "the device runs one sample at a time."
            )
        for position, (want, have) in enumerate(zip(shape, declared, strict=True)):
            if position and isinstance(have, int) and want != have:
                raise TinyForgeError(
                    f"--input-shape {_describe(shape)} conflicts with input '{name}' of {file}, "
                    f"whose dimension {position} is fixed at {have} ({_describe(declared)})."
                )
        if any(not isinstance(d, int) for d in declared[1:]):
            notes.append(f"input shape fixed at {_describe(shape)} (--input-shape)")
    else:
        sample: list[int | None] = [d if isinstance(d, int) else None for d in declared[1:]]
        if None in sample and hint:
            filled = _fill_from_hint(sample, list(hint))
            if filled is not None:
                fixed_at = _describe([1, *filled])
                notes.append(
                    f"open input dimensions {_describe(declared)} fixed at {fixed_at} from the "
                    "calibration data"
                )
                sample = list(filled)
        if None in sample:
            example = [1, *(d or 96 for d in sample)]
            raise TinyForgeError(
                f"Input '{name}' of {file} has open dimensions {_describe(declared)}: give the "
                f"shape to convert for with --input-shape, e.g. --input-shape "
                f"{','.join(str(d) for d in example)}."
            )
        shape = [1, *(int(d) for d in sample if d is not None)]
    if declared[0] != 1:
        notes.append(
            f"batch dimension {declared[0]!r} fixed at 1: the device runs one sample at a time"
        )
    return shape, notes


def _fill_from_hint(sample: list[int | None], hint: list[int]) -> list[int] | None:
    def fits(candidate: list[int]) -> bool:
        return len(candidate) == len(sample) and all(
            s is None or s == c for s, c in zip(sample, candidate, strict=True)
        )

    if fits(hint):
        return hint
    if len(hint) == len(sample) and len(hint) >= 2:
        onnx_layout = [hint[-1], *hint[:-1]]  # channels-last data → channels-first model
        if fits(onnx_layout):
            return onnx_layout
    if len(hint) == 2 and len(sample) == 3:  # an image's height × width
        height, width = hint
        if sample[0] is not None or (sample[2] is None and sample[0] is None):
            candidate = [sample[0] or 3, height, width]
        else:
            candidate = [height, width, sample[2] or 3]
        if fits(candidate):
            return candidate
    return None


def _safe_input_name(name: str, model: Any) -> str:
    """Rename the input when TensorFlow would not accept its name (e.g. 'onnx::Conv_0')."""
    if _SAFE_NAME.match(name):
        return name
    safe = re.sub(r"[^A-Za-z0-9_]", "_", name).strip("_") or "input"
    if not safe[0].isalpha():
        safe = "input_" + safe
    for graph_input in model.graph.input:
        if graph_input.name == name:
            graph_input.name = safe
    for node in model.graph.node:
        for index, value in enumerate(node.input):
            if value == name:
                node.input[index] = safe
    return safe


# --- calibration data ------------------------------------------------------------------------


@dataclass
class Calibration:
    inputs: np.ndarray  # (N, *sample shape) float32, in the ONNX model's layout
    kind: str  # "npy" | "images" | "dataset" | "random"
    source: str  # in words, for the report
    path: Path | None = None
    classes: list[str] | None = None
    dataset: Dataset | None = None  # how a project spec names it
    warning: str | None = None


def calibration_hint(source: Path | None) -> list[int] | None:
    """A per-sample shape the calibration data suggests, read without loading it."""
    if source is None:
        return None
    source = Path(source)
    if source.is_file() and source.suffix.lower() == ".npy":
        try:
            array = np.load(source, mmap_mode="r", allow_pickle=False)
        except (OSError, ValueError):
            return None
        return [int(d) for d in array.shape[1:]] if array.ndim >= 2 else None
    if source.is_dir() and (source / SPEC_FILENAME).is_file():
        try:
            spec = ProjectSpec.load(source)
        except TinyForgeError:
            return None
        return list(spec.input_shape)
    if source.is_dir():
        from PIL import Image, UnidentifiedImageError

        for image_path in _image_files(source)[:1]:
            try:
                with Image.open(image_path) as image:
                    return [image.height, image.width]
            except (OSError, UnidentifiedImageError):
                return None
    return None


def load_calibration(
    source: Path | None,
    info: OnnxModelInfo,
    *,
    project: ProjectSpec | None = None,
    project_dir: Path | None = None,
) -> Calibration:
    """The calibration inputs: a .npy, an image folder, a project's dataset, or random."""
    sample = info.sample_shape
    if source is None and project is not None and project_dir is not None:
        return _project_calibration(project, project_dir, sample)
    if source is None:
        rng = np.random.default_rng(0)
        return Calibration(
            rng.random((RANDOM_SAMPLES, *sample), dtype=np.float32),
            "random",
            f"{RANDOM_SAMPLES} random inputs in [0, 1)",
            warning=RANDOM_WARNING,
        )
    source = Path(source)
    if not source.exists():
        raise DatasetError(f"Calibration data {source} does not exist.")
    if source.is_dir() and (source / SPEC_FILENAME).is_file():
        return _project_calibration(ProjectSpec.load(source), source, sample)
    if source.is_dir():
        inputs, classes = _load_images(source, sample)
        return Calibration(
            inputs,
            "images",
            f"{len(inputs)} images from {source}",
            path=source,
            classes=classes,
            dataset=Dataset(kind=DatasetKind.FOLDER, path=str(source)),
        )
    if source.suffix.lower() != ".npy":
        raise DatasetError(
            f"Calibration data {source} is not a .npy file, an image folder or a TinyForge "
            "project folder."
        )
    try:
        array = np.load(source, allow_pickle=False)
    except (OSError, ValueError) as exc:
        raise DatasetError(f"Cannot read {source} as a NumPy array: {exc}.") from None
    if not np.issubdtype(array.dtype, np.number):
        raise DatasetError(f"{source} holds {array.dtype} values, not numbers.")
    inputs = _match_layout(array.astype(np.float32), sample, str(source))
    return Calibration(
        _subsample(inputs),
        "npy",
        f"{min(len(inputs), MAX_SAMPLES)} inputs from {source.name}",
        path=source,
        dataset=Dataset(kind=DatasetKind.NPY, path=str(source)),
    )


def _subsample(x: np.ndarray) -> np.ndarray:
    if len(x) <= MAX_SAMPLES:
        return x
    pick = np.sort(np.random.default_rng(0).permutation(len(x))[:MAX_SAMPLES])
    return x[pick]


def _match_layout(array: np.ndarray, sample: tuple[int, ...], what: str) -> np.ndarray:
    """(N, *sample) in the model's layout, from data in that layout or channels-last."""
    if array.shape == sample:
        array = array[np.newaxis]
    if array.shape[1:] == sample:
        return array
    if len(sample) >= 2 and array.shape[1:] == (*sample[1:], sample[0]):
        return np.moveaxis(array, -1, 1)
    if (
        len(sample) >= 2
        and array.ndim == len(sample)
        and array.shape[1:] == tuple(d for d in sample if d != 1)
    ):
        # A single channel left out, e.g. (N, 28, 28) for a (1, 28, 28) input.
        return array.reshape(len(array), *sample)
    channels_last = (*sample[1:], sample[0]) if len(sample) >= 2 else sample
    raise DatasetError(
        f"Calibration data {what} has samples of shape {tuple(array.shape[1:])}; the model's "
        f"input takes {sample} (or {channels_last} channels-last), one sample per row."
    )


def _image_files(folder: Path) -> list[Path]:
    return sorted(
        p
        for p in folder.rglob("*")
        if p.suffix.lower() in IMAGE_SUFFIXES and not any(x.startswith(".") for x in p.parts)
    )


def _load_images(folder: Path, sample: tuple[int, ...]) -> tuple[np.ndarray, list[str] | None]:
    """Images scaled to [0, 1], resized to the input (as the generated train.py loads them)."""
    from PIL import Image, UnidentifiedImageError

    if len(sample) != 3 or not (sample[0] in (1, 3) or sample[2] in (1, 3)):
        raise DatasetError(
            f"An image folder calibrates models whose input is an image (channels × height × "
            f"width); this one takes {sample}: give a .npy of its inputs instead."
        )
    channels_first = sample[0] in (1, 3)
    channels, height, width = sample if channels_first else (sample[2], sample[0], sample[1])
    files = _image_files(folder)
    if not files:
        raise DatasetError(f"Calibration folder {folder} holds no images.")
    if len(files) > MAX_SAMPLES:
        pick = np.sort(np.random.default_rng(0).permutation(len(files))[:MAX_SAMPLES])
        files = [files[i] for i in pick]
    mode = "L" if channels == 1 else "RGB"
    images = []
    for path in files:
        try:
            with Image.open(path) as image:
                resized = image.convert(mode).resize((width, height), Image.Resampling.BILINEAR)
                pixels = np.asarray(resized, dtype=np.float32).reshape(height, width, channels)
        except (OSError, UnidentifiedImageError):
            continue
        images.append(pixels / 255.0)
    if not images:
        raise DatasetError(f"None of the images in {folder} could be read.")
    x = np.stack(images)
    if channels_first:
        x = np.moveaxis(x, -1, 1)
    subfolders = sorted(
        p.name for p in folder.iterdir() if p.is_dir() and not p.name.startswith(".")
    )
    # Class names in sorted sub-folder order: what torchvision's ImageFolder and TinyForge's
    # own training scripts number them by.
    return x, subfolders if len(subfolders) >= 2 else None


def _project_calibration(
    spec: ProjectSpec, project_dir: Path, sample: tuple[int, ...]
) -> Calibration:
    from tinyforge.datasets import resolve_path

    dataset = spec.dataset
    path = resolve_path(spec, project_dir)
    classes = list(spec.classes) if spec.classes else None
    if dataset.kind is DatasetKind.DIGITS:
        from sklearn.datasets import load_digits

        digits = load_digits()
        x = (digits.images.astype(np.float32) / 16.0)[..., np.newaxis]
        inputs = _match_layout(_subsample(x), sample, "scikit-learn's digits")
        classes = classes or [str(d) for d in range(10)]
    elif dataset.kind is DatasetKind.FOLDER:
        assert path is not None
        if spec.task is Task.KEYWORD_SPOTTING:
            raise DatasetError(
                f"The project's dataset {path} holds WAV clips: give the model's own inputs "
                "(e.g. spectrograms) as a .npy with --calibration."
            )
        inputs, found = _load_images(path, sample)
        classes = classes or found
    elif dataset.kind is DatasetKind.CSV:
        assert path is not None
        x = _csv_features(path, dataset.label_column or "label", dataset.features)
        inputs = _match_layout(_subsample(x.astype(np.float32)), sample, str(path))
    else:
        assert path is not None
        calibration = load_calibration(path, _shape_only(sample))
        inputs = calibration.inputs
    if dataset.kind is DatasetKind.DIGITS:
        words = "scikit-learn's digits"
    elif (
        dataset.kind is DatasetKind.NPY
        and path is not None
        and path.name == RANDOM_CALIBRATION_FILE
        and "random" in " ".join(spec.assumptions)
    ):
        words = f"{len(inputs)} random inputs in [0, 1) saved with the project"
    else:
        words = str(path)
    calibration = Calibration(
        _subsample(inputs),
        "dataset",
        f"{min(len(inputs), MAX_SAMPLES)} inputs from the project's dataset ({words})",
        path=path,
        classes=classes,
        dataset=dataset.model_copy(update={"path": str(path) if path else None}),
    )
    if "random" in words:
        calibration.warning = RANDOM_WARNING
    return calibration


def _csv_features(path: Path, label_column: str, features: list[str] | None = None) -> np.ndarray:
    """The numeric columns of a CSV (the spec's `features`, else all but the label), as the
    generated train.py reads them."""
    import csv

    try:
        with path.open(newline="", encoding="utf-8-sig") as handle:
            rows = list(csv.DictReader(handle))
        columns = (
            list(features)
            if features
            else [c for c in (rows[0].keys() if rows else []) if c != label_column]
        )
        return np.array([[float(row[c]) for c in columns] for row in rows], dtype=np.float32)
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise DatasetError(f"Cannot read {path} for calibration: {exc}.") from None


def _shape_only(sample: tuple[int, ...]) -> OnnxModelInfo:
    """An info that carries just a sample shape (for loading a .npy the same way)."""
    return OnnxModelInfo(
        path=Path(),
        opset=0,
        producer="",
        input_name="",
        declared_shape=[1, *sample],
        input_shape=[1, *sample],
        output_name="",
        nodes=[],
        params=0,
        fixed=None,
        fixed_input_name="",
    )


# --- the conversion --------------------------------------------------------------------------


@dataclass
class ConvertResult:
    report: BuildReport
    verdict: Verdict
    tflite_path: Path  # the deployed model: int8 (or float32) TFLite
    out: Path | None
    notices: list[str] = field(default_factory=list)

    @property
    def runs_on_tflm(self) -> bool:
        return not self.report.unsupported_ops

    @property
    def fits(self) -> bool:
        return self.verdict.fits and self.runs_on_tflm


def convert_onnx(
    model_path: Path | str,
    *,
    board: str | None = None,
    calibration: Path | str | None = None,
    out: Path | str | None = None,
    input_shape: Sequence[int] | None = None,
    quantization: str = "int8",
    min_agreement: float = DEFAULT_MIN_AGREEMENT,
    force: bool = False,
    progress: Progress | None = None,
    cancel: threading.Event | None = None,
    timeout: float | None = None,
) -> ConvertResult:
    """`tinyforge convert MODEL.onnx --board B [--calibration DATA] [--out DIR]`.

    Without `out`, the deployed model is written beside the ONNX file as <stem>_int8.tflite
    (or _float32); with it, DIR becomes a project (see the module docstring). Raises
    ModelFileError/DatasetError/StageError with one sentence; a model TFLM cannot run or that
    does not fit comes back with `fits` False and the report saying why. `timeout` (seconds,
    `--convert-timeout`) stops the onnx2tf run; else an existing project's timeouts.convert.

    DIR is locked for the whole conversion (lock.py), a new one too: a second conversion into
    it, or a build, fit or deploy of it, gets one sentence naming this one.
    """
    model_path = Path(model_path).resolve()
    if not model_path.is_file():
        raise ModelFileError(f"Model file '{model_path}' does not exist.")
    if model_path.suffix.lower() != ".onnx":
        raise ModelFileError(
            f"'{model_path.name}' is not an .onnx file: `tinyforge convert` takes ONNX models "
            "(`tinyforge inspect` reads .tflite and Keras files)."
        )
    out_dir = Path(out).resolve() if out is not None else None
    # Taken before the folder is looked at: a second conversion must not decide it is new (or
    # remove it on its own failure) while this one writes it.
    lock = project_lock(out_dir, "convert") if out_dir is not None else contextlib.nullcontext()
    with lock:
        existing = _existing_project(out_dir, model_path, force)
        if board is None and existing is not None:
            board = existing.board
        if not board:
            raise TinyForgeError(
                "Give the board to convert for with --board (e.g. nano33ble); `tinyforge "
                "boards` lists them."
            )
        the_board = get_board(board)
        if existing is not None and input_shape is None and existing.model is not None:
            input_shape = existing.model.input_shape
        if timeout is None and existing is not None and existing.timeouts is not None:
            timeout = existing.timeouts.convert
        source = Path(calibration).resolve() if calibration is not None else None
        stages = Stages(
            STAGES if out_dir is not None else tuple(s for s in STAGES if s != "emit"),
            progress=progress,
            cancel=cancel,
            limits={"convert": timeout},  # onnx2tf's run; the other stages bound their own
        )
        run = _Run(
            model_path, the_board, source, out_dir, existing, input_shape, quantization, timeout
        )
        if out_dir is not None and out_dir.exists():
            with stages.transaction(out_dir, _PROJECT_OUTPUTS, command="convert"):
                return _convert(run, stages, min_agreement)
        try:
            return _convert(run, stages, min_agreement)
        except BaseException:
            if out_dir is not None:
                shutil.rmtree(out_dir, ignore_errors=True)
            raise


# Everything a conversion writes into a project: restored when it fails or is cancelled.
_PROJECT_OUTPUTS = (
    SPEC_FILENAME,
    MODEL_FILE,
    RANDOM_CALIBRATION_FILE,
    MODEL_TFLITE,
    REPORT_FILE,
    ARTIFACTS_DIR,
    PLATFORMIO_INI,
    GITIGNORE,
    MAIN_CPP,
    MODEL_DATA_H,
    MODEL_DATA_CC,
    STATE_DIR,
)


def _existing_project(out: Path | None, model_path: Path, force: bool) -> ProjectSpec | None:
    if out is None or not out.exists():
        return None
    if not out.is_dir():
        raise TinyForgeError(f"{out} exists and is not a folder.")
    if (out / SPEC_FILENAME).is_file():
        spec = ProjectSpec.load(out)
        if spec.model is None:
            raise TinyForgeError(
                f"{out} is a project whose model TinyForge trains (train.py): convert "
                f"{model_path.name} into another folder."
            )
        return spec
    if any(out.iterdir()) and not force:
        raise TinyForgeError(
            f"{out} is not empty: choose another folder, or pass --force to write the project "
            "into it (files you changed are kept)."
        )
    return None


@dataclass(frozen=True)
class _Run:
    """What one conversion was asked: the model, for which board, from which data, into where."""

    model_path: Path
    board: Board
    source: Path | None  # the calibration data (None: a project's dataset, else random)
    out: Path | None  # the project folder, or None: the .tflite beside the ONNX file
    existing: ProjectSpec | None  # the project `out` already is
    input_shape: Sequence[int] | None
    quantization: str
    timeout: float | None  # of the onnx2tf run (--convert-timeout, timeouts.convert)


def _convert(run: _Run, stages: Stages, min_agreement: float) -> ConvertResult:
    progress, out, existing = stages.progress, run.out, run.existing
    notices: list[str] = []

    def check() -> tuple[OnnxModelInfo, Calibration]:
        progress.update(0.1, f"checking {run.model_path.name}")
        hint = calibration_hint(run.source)
        if hint is None and run.source is None and existing is not None:
            hint = list(existing.input_shape)
        info = check_onnx(run.model_path, input_shape=run.input_shape, hint=hint)
        progress.update(0.5, f"input {info.input_name} {_describe(info.input_shape)}")
        calib = load_calibration(
            run.source, info, project=existing, project_dir=out if existing is not None else None
        )
        progress.update(1.0, calib.source)
        return info, calib

    info, calib = stages.run("check", check)
    notices += info.notes
    if calib.warning:
        notices.insert(0, calib.warning)

    with tempfile.TemporaryDirectory(prefix="tinyforge-onnx-") as tmp:
        work = Path(tmp)
        result = stages.run(
            "convert",
            lambda: _run_worker(
                work, info, calib, run.quantization, min_agreement, progress, stages.cancel,
                run.timeout,
            ),
        )  # fmt: skip
        int8 = run.quantization == "int8"
        deployed = work / (INT8_TFLITE if int8 else FLOAT_TFLITE)
        verified = stages.run(
            "verify", lambda: _verify(work, result, info, deployed, min_agreement, progress)
        )
        memory = stages.run(
            "inspect",
            lambda: _inspect(deployed, run.board, existing, info, progress, work, result),
        )
        if verified["int8"] is not None and verified["int8"]["agreement"] < INT8_NOTICE_AGREEMENT:
            notices.append(
                f"int8 agrees with ONNX on only {100 * verified['int8']['agreement']:.1f}% of "
                "the inputs: "
                + (
                    "calibrate with real data (--calibration)."
                    if calib.kind == "random"
                    else "the model may be sensitive to int8 rounding; check its accuracy."
                )
            )
        if memory["problem"]:
            notices.append(memory["problem"])
        classes = _classes(calib, existing, result)
        if out is None:
            suffix = "int8" if int8 else "float32"
            target = run.model_path.with_name(f"{run.model_path.stem}_{suffix}.tflite")
            shutil.copyfile(deployed, target)
        else:
            notices += stages.run(
                "emit",
                lambda: _emit_project(
                    out, run, info, calib, result, memory, work, classes, progress
                ),
            )
            target = out / MODEL_TFLITE
        report = stages.run(
            "report",
            lambda: _report(
                run, info, calib, result, verified, memory, min_agreement, classes, notices,
                stages.seconds, target,
            ),
        )  # fmt: skip
        # After the report stage: its own seconds too (the model holds a copy of the dict).
        report.stage_seconds = dict(stages.seconds)
        if out is not None:
            write_report(out, report)
    return ConvertResult(report, memory["verdict"], target, out, notices)


def convert_to_tflite(
    model_path: Path | str,
    work: Path,
    *,
    calibration: Path | str | None = None,
    input_shape: Sequence[int] | None = None,
    quantization: str = "int8",
    cancel: threading.Event | None = None,
) -> tuple[Path, ConversionResult]:
    """Just check and convert (no TFLM, no project): the deployed .tflite in `work` and the
    worker's figures, with `notices` (e.g. the random-calibration warning). For
    `tinyforge inspect model.onnx --convert`."""
    model_path = Path(model_path).resolve()
    source = Path(calibration).resolve() if calibration is not None else None
    info = check_onnx(model_path, input_shape=input_shape, hint=calibration_hint(source))
    calib = load_calibration(source, info)
    result = _run_worker(
        work, info, calib, quantization, DEFAULT_MIN_AGREEMENT, NullProgress(), cancel
    )
    result["notices"] = [n for n in (calib.warning, *info.notes) if n]
    result["calibration"] = calib.source
    result["onnx_ops"] = info.op_counts()
    return work / (INT8_TFLITE if quantization == "int8" else FLOAT_TFLITE), result


def _run_worker(
    work: Path,
    info: OnnxModelInfo,
    calib: Calibration,
    quantization: str,
    min_agreement: float,
    progress: Progress,
    cancel: threading.Event | None,
    timeout: float | None = None,
) -> ConversionResult:
    import onnx

    onnx.save(info.fixed, str(work / "model.fixed.onnx"))
    original = str(info.path)
    if info.reference is not None:
        onnx.save(info.reference, str(work / "model.reference.onnx"))
        original = str(work / "model.reference.onnx")
    np.save(work / "calibration.npy", calib.inputs.astype(np.float32))
    np.save(work / "verify.npy", calib.inputs.astype(np.float32))
    job: OnnxJob = {
        "model_name": info.path.name,
        "original_model": original,
        "original_input_name": info.input_name,
        "fixed_model": "model.fixed.onnx",
        "input_name": info.fixed_input_name,
        "input_shape": info.input_shape,
        "calibration": "calibration.npy",
        "verify": "verify.npy",
        "quantization": quantization,
        "min_agreement": min_agreement,
        "nodes": info.nodes,
    }
    (work / JOB_FILE).write_text(json.dumps(job), encoding="utf-8")
    steps = ("converting", "float32 TFLite", "full-int8 TFLite", "converted in", "vs ONNX")
    seen: set[str] = set()

    def on_line(line: str) -> None:
        progress.log(line)
        if line.startswith("[tinyforge]"):
            text = line.removeprefix("[tinyforge]").strip()
            seen.update(step for step in steps if step in text)
            progress.update(min(0.1 + 0.17 * len(seen), 0.95), text)

    # A timeout raises TimeoutError once the worker's process tree is gone: the stage runner
    # (stages.py) turns it into the sentence naming the convert stage.
    run = jobs.run(
        jobs.python_command("-m", "tinyforge.convert.onnx_worker", str(work)),
        cwd=work,
        env={"TF_CPP_MIN_LOG_LEVEL": "3", "CUDA_VISIBLE_DEVICES": "-1"},
        on_line=on_line,
        cancel=cancel,
        timeout=timeout,
    )
    result_path = work / RESULT_FILE
    if not result_path.is_file():
        from tinyforge.train import failure_sentence

        raise StageError(
            "convert",
            f"The onnx2tf conversion of {info.path.name} crashed: {failure_sentence(run.tail)}",
            run.tail_text(),
        )
    result: ConversionResult = json.loads(result_path.read_text(encoding="utf-8"))
    if not result.get("ok"):
        raise StageError("convert", str(result.get("error")), run.tail_text())
    result["log_tail"] = run.tail_text(40)
    return result


def _verify(
    work: Path,
    result: ConversionResult,
    info: OnnxModelInfo,
    deployed: Path,
    min_agreement: float,
    progress: Progress,
) -> dict[str, Any]:
    float_cmp = result["float"]
    if float_cmp["agreement"] < min_agreement:
        raise StageError("verify", _divergence_sentence(info, float_cmp, result, min_agreement))
    progress.update(
        0.5,
        f"float32 agrees with ONNX on {100 * float_cmp['agreement']:.1f}% ({float_cmp['measure']})",
    )
    return {"float": float_cmp, "int8": result.get("int8")}


def _divergence_sentence(
    info: OnnxModelInfo, cmp: OutputComparison, result: ConversionResult, threshold: float
) -> str:
    head = (
        f"The float32 TFLite model agrees with ONNX on only {100 * cmp['agreement']:.1f}% of "
        f"{cmp['samples']} inputs ({cmp['measure']}; {100 * threshold:.0f}% needed), max abs "
        f"difference {cmp['max_abs_diff']:.3g}"
    )
    first = cmp["disagreements"][0] if cmp["disagreements"] else None
    if first and "reference_top1" in first:
        head += (
            f"; e.g. input #{first['sample']}: ONNX says class {first['reference_top1']}, "
            f"TFLite {first['converted_top1']}"
        )
    where = result.get("divergence") or {}
    if where.get("node"):
        error = where.get("max_abs_error")
        size = f", max abs error {error:.3g}" if isinstance(error, float) else ""
        inputs = where.get("matching_inputs") or []
        before = (
            f"; its input{'s' if len(inputs) > 1 else ''} {', '.join(inputs)} still "
            f"match{'' if len(inputs) > 1 else 'es'}"
            if inputs
            else ""
        )
        return (
            f"{head}. The outputs first diverge at ONNX node {where['node']} "
            f"({where['op_type']}, output {where['tensor']}{size}){before}: onnx2tf converts "
            "that node's layout wrongly; change how the model computes it (e.g. reshape "
            "before the op) and export again."
        )
    if where.get("tensor") is None and where.get("checked"):
        return (
            f"{head}. onnx2tf's TensorFlow graph matches ONNX at every node, so the difference "
            "comes from the TFLite conversion itself."
        )
    return f"{head}."


def _inspect(
    deployed: Path,
    board: Board,
    existing: ProjectSpec | None,
    info: OnnxModelInfo,
    progress: Progress,
    work: Path,
    result: ConversionResult,
) -> dict[str, Any]:
    """Memory truth for the deployed model: TFLM's op check, measured arena, budget verdict,
    and the deployed model's agreement with ONNX in the real TFLM interpreter."""
    from tinyforge.memory import ops
    from tinyforge.memory.estimate import estimate_model
    from tinyforge.memory.measure import measure_arena, tflm_package_version
    from tinyforge.memory.target import target_arena_bytes
    from tinyforge.memory.tflite_model import load_tflite

    model = load_tflite(deployed)
    progress.update(0.1, "asking TFLM which ops it runs")
    unsupported = ops.unsupported_ops(model)
    budget = (
        existing.budget
        if existing is not None and existing.board == board.id
        else Budget(ram_bytes=board.ram_bytes, flash_bytes=board.flash_bytes)
    )
    memory: dict[str, Any] = {
        "model": model,
        "unsupported": unsupported,
        "arena": None,
        "problem": None,
        "arena_estimate": None,
        "tflm": None,
    }
    if unsupported:
        users = _onnx_sources(unsupported, info)
        memory["problem"] = (
            f"TFLM (tflite-micro {tflm_package_version()}) cannot run "
            f"{', '.join(unsupported)}{users} so the converted model works in TFLite but "
            "not on the device: replace that op in the model."
        )
        static = estimate_model(model)
        arena_target = static.arena_bytes_target if not static.problems else 0
        memory["arena_estimate"] = static.arena_bytes if not static.problems else None
    else:
        progress.update(0.3, "measuring the tensor arena in the TFLM interpreter")
        arena = measure_arena(deployed)
        memory["arena"] = arena
        arena_target = target_arena_bytes(arena, model)
        progress.update(0.6, f"arena {arena.arena_bytes:,} bytes; running the inputs in TFLM")
        memory["tflm"] = _tflm_agreement(deployed, work, result, arena.arena_bytes)
        progress.update(1.0, f"TFLM agrees with ONNX on {100 * memory['tflm']['agreement']:.1f}%")
    memory["arena_target"] = arena_target
    memory["verdict"] = check_budget(
        board=board,
        budget=budget,
        model_bytes=model.model_bytes,
        arena_bytes_target=arena_target,
        ops=[op.op for op in model.ops],
        largest_tensor=model.largest_activation(),
    )
    if unsupported:
        memory["verdict"] = replace(memory["verdict"], fits=False)
    return memory


def _onnx_sources(tflite_ops: list[str], info: OnnxModelInfo) -> str:
    """', which ONNX node /Tile (Tile) became,' for the ONNX nodes behind these TFLite ops."""
    from tinyforge.memory.onnx_inspect import ONNX_TO_TFLITE

    wanted = set(tflite_ops)
    names = [
        f"{node['name'] or '?'} ({node['op_type']})"
        for node in info.nodes
        if wanted & set(ONNX_TO_TFLITE.get(node["op_type"], ()))
    ]
    if not names:
        return ""
    more = f" and {len(names) - 3} more" if len(names) > 3 else ""
    nodes = "node" if len(names) == 1 else "nodes"
    return f", which ONNX {nodes} {', '.join(names[:3])}{more} became,"


def _tflm_agreement(
    deployed: Path, work: Path, result: ConversionResult, arena_bytes: int
) -> OutputComparison:
    from tinyforge.memory.measure import run_tflm
    from tinyforge.memory.tflite_model import load_tflite

    model = load_tflite(deployed)
    inputs = np.load(work / "device_inputs.npy")
    outputs = run_tflm(deployed, inputs, arena_bytes)
    out = model.output_tensors[0]
    outputs = outputs.astype(np.float32)
    if out.scale and out.dtype in ("int8", "uint8", "int16"):
        outputs = (outputs - out.zero_point[0]) * out.scale[0]
    outputs = outputs.reshape(len(inputs), *(d for d in out.shape[1:]))
    reference = np.load(work / "onnx_outputs.npy")
    tolerance = 0.05 if out.dtype in ("int8", "uint8", "int16") else 1e-3
    return compare(
        reference, to_onnx_layout(outputs, result["output_shape"]), scalar_tolerance=tolerance
    )


def _classes(
    calib: Calibration, existing: ProjectSpec | None, result: ConversionResult
) -> list[str]:
    outputs = math.prod(result["output_shape"][1:])
    if existing is not None and existing.classes and len(existing.classes) == outputs:
        return list(existing.classes)
    if calib.classes and len(calib.classes) == outputs:
        return list(calib.classes)
    return [str(i) for i in range(outputs)] if outputs > 1 else ["score"]


def _report(
    run: _Run,
    info: OnnxModelInfo,
    calib: Calibration,
    result: ConversionResult,
    verified: dict[str, Any],
    memory: dict[str, Any],
    min_agreement: float,
    classes: list[str],
    notices: list[str],
    seconds: dict[str, float],
    tflite: Path,
) -> BuildReport:
    """The build's report (report.py) with what only a brought model has: the ONNX file, the
    calibration, and the agreement with onnxruntime at each step."""
    tflm = memory.get("tflm")
    int8 = verified["int8"]
    return build_report(
        project=_project_name(run.model_path),
        board=run.board.id,
        quantization=run.quantization,
        classes=classes,
        params=info.params,
        model=memory["model"],
        arena=memory["arena"],
        arena_target=memory["arena_target"],
        verdict=memory["verdict"],
        notices=notices,
        stage_seconds=seconds,
        # No labels come with a model the user brings: agreement with ONNX stands in for them.
        float_accuracy=None,
        int8_accuracy=None,
        tflm_accuracy=None,
        source_model=str(run.model_path),
        format="onnx",
        onnx={
            "opset": info.opset,
            "producer": info.producer,
            "input": {
                "name": info.input_name,
                "declared_shape": info.declared_shape,
                "shape": info.input_shape,
            },
            "output": {"name": info.output_name, "shape": result["output_shape"]},
            "ops": info.op_counts(),
            "params": info.params,
        },
        input=result.get("input"),
        output=result.get("output"),
        calibration={
            "kind": calib.kind,
            "source": calib.source,
            "samples": len(calib.inputs),
            "warning": calib.warning,
        },
        agreement={
            "threshold": min_agreement,
            "float": verified["float"],
            "int8": int8,
            "tflm": tflm,
        },
        float_agreement=verified["float"]["agreement"],
        float_max_abs_diff=verified["float"]["max_abs_diff"],
        int8_agreement=int8["agreement"] if int8 else None,
        int8_max_abs_diff=int8["max_abs_diff"] if int8 else None,
        tflm_agreement=tflm["agreement"] if tflm else None,
        conversion_seconds=result.get("onnx2tf_seconds"),
        model_bytes_float32=result.get("float_model_bytes"),
        unsupported_ops=memory["unsupported"],
        runs_on_tflm=not memory["unsupported"],
        arena_bytes_estimate=memory["arena_estimate"],
        tflite=str(tflite),
    )


def _project_name(model_path: Path) -> str:
    return re.sub(r"[^A-Za-z0-9_\-]", "_", model_path.stem) or "onnx_model"


def _emit_project(
    out: Path,
    run: _Run,
    info: OnnxModelInfo,
    calib: Calibration,
    result: ConversionResult,
    memory: dict[str, Any],
    work: Path,
    classes: list[str],
    progress: Progress,
) -> list[str]:
    """The project folder: spec, the ONNX file, model.tflite, firmware, platformio.ini."""
    out.mkdir(parents=True, exist_ok=True)
    notices: list[str] = []
    target = out / MODEL_FILE
    if run.model_path != target.resolve():
        shutil.copyfile(run.model_path, target)
    int8 = run.quantization == "int8"
    shutil.copyfile(work / (INT8_TFLITE if int8 else FLOAT_TFLITE), out / MODEL_TFLITE)
    artifacts = out / ARTIFACTS_DIR
    artifacts.mkdir(exist_ok=True)
    shutil.copyfile(work / FLOAT_TFLITE, artifacts / "model_float32.tflite")
    for name in (SAMPLE_INPUT, "device_inputs.npy", "onnx_outputs.npy"):
        shutil.copyfile(work / name, artifacts / name)
    worker = {k: v for k, v in result.items() if k != "log_tail"}
    (artifacts / CONVERT_FILE).write_text(json.dumps(worker, indent=2), "utf-8")

    spec = _project_spec(out, run, info, calib, classes)
    files = {
        SPEC_FILENAME: spec.to_toml(),
        PLATFORMIO_INI: generate.render_platformio_ini(spec, run.board),
        GITIGNORE: generate.render("gitignore.j2"),
    }
    written = generate.write_generated(out, files)
    notices += written.describe_kept()
    if memory["unsupported"]:
        notices.append(
            f"No firmware written ({MAIN_CPP}, {Path(MODEL_DATA_H).parent}/): TFLM cannot run "
            f"{', '.join(memory['unsupported'])}."
        )
        return notices
    arena = memory["arena"]
    progress.update(0.5, "writing the C array and main.cpp")
    firmware = emit_firmware(
        out,
        board=run.board,
        model=memory["model"],
        quantization=run.quantization,
        sample=np.load(work / SAMPLE_INPUT),
        sample_label_index=int(result["sample_label"]),
        labels=classes,
        arena_bytes=arena.arena_bytes,
        arena_target_bytes=memory["arena_target"],
    )
    notices += firmware.describe_kept()
    return notices


def _project_spec(
    out: Path, run: _Run, info: OnnxModelInfo, calib: Calibration, classes: list[str]
) -> ProjectSpec:
    model_path, board, existing = run.model_path, run.board, run.existing
    model = ModelSource(source=MODEL_FILE, input_shape=info.input_shape if info.open_dims else None)
    if calib.kind == "random":
        np.save(out / RANDOM_CALIBRATION_FILE, calib.inputs)
        dataset = Dataset(kind=DatasetKind.NPY, path=RANDOM_CALIBRATION_FILE)
    else:
        assert calib.dataset is not None
        dataset = calib.dataset
    device_shape = channels_last_shape(info.input_shape)[1:]
    if existing is not None:
        spec = existing.model_copy(
            update={"model": model, "board": board.id, "input_shape": device_shape}
        )
        if calib.kind != "dataset":
            spec = spec.model_copy(update={"dataset": _relative(dataset, out)})
        return spec
    assumptions = [f"model brought as {model_path.name} (ONNX opset {info.opset})"]
    assumptions += info.notes
    if calib.kind == "random":
        assumptions.append("calibrated on random inputs: no calibration data was given")
    elif calib.classes and classes == calib.classes:
        assumptions.append("class names are the calibration folder's sub-folders, in sorted order")
    image_like = len(info.input_shape) == 4
    spec = ProjectSpec(
        name=_project_name(model_path),
        request=f"Convert {model_path.name} for {board.name}",
        task=Task.IMAGE_CLASSIFICATION if image_like else Task.SENSOR_CLASSIFICATION,
        board=board.id,
        input_shape=device_shape[-4:],
        classes=classes if len(classes) >= 2 else None,
        dataset=_relative(dataset, out),
        budget=Budget(ram_bytes=board.ram_bytes, flash_bytes=board.flash_bytes),
        quantization=Quantization(run.quantization),
        assumptions=assumptions,
        model=model,
    )
    return spec


def _relative(dataset: Dataset, out: Path) -> Dataset:
    """The dataset's path relative to the project, as `tinyforge new` writes it."""
    import os

    if not dataset.path or not Path(dataset.path).is_absolute():
        return dataset
    relative = Path(os.path.relpath(dataset.path, out.resolve())).as_posix()
    return dataset.model_copy(update={"path": relative})
