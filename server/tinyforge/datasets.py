"""Check a spec's dataset before anything runs, so bad input costs one clear sentence."""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

from tinyforge.errors import DatasetError
from tinyforge.spec import DatasetKind, ProjectSpec, Task

AUDIO_SUFFIXES = {".wav"}
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".pgm", ".ppm"}


@dataclass
class DatasetSummary:
    classes: list[str] | None
    samples: int | None
    features: int | None = None


def resolve_path(spec: ProjectSpec, project_dir: Path) -> Path | None:
    if not spec.dataset.path:
        return None
    path = Path(spec.dataset.path).expanduser()
    return path if path.is_absolute() else (project_dir / path).resolve()


def validate(spec: ProjectSpec, project_dir: Path) -> DatasetSummary:
    kind = spec.dataset.kind
    if kind is DatasetKind.DIGITS:
        return DatasetSummary([str(d) for d in range(10)], 1797)
    path = resolve_path(spec, project_dir)
    assert path is not None  # the spec guarantees a path for folder and CSV datasets
    if kind is DatasetKind.FOLDER:
        audio = spec.task is Task.KEYWORD_SPOTTING
        return _validate_folder(path, AUDIO_SUFFIXES if audio else IMAGE_SUFFIXES)
    if kind is DatasetKind.NPY:
        return _validate_npy(path)
    label = spec.dataset.label_column or "label"
    # An anomaly detector learns from normal rows alone: labels are optional there.
    return _validate_csv(path, label, required=spec.task is not Task.ANOMALY_DETECTION)


def _validate_folder(path: Path, suffixes: set[str]) -> DatasetSummary:
    if not path.exists():
        raise DatasetError(f"Dataset folder {path} does not exist.")
    if not path.is_dir():
        raise DatasetError(f"Dataset {path} is not a folder (expected one sub-folder per class).")
    kind = "WAV clips" if suffixes is AUDIO_SUFFIXES else "images"
    counts: dict[str, int] = {}
    for sub in sorted(p for p in path.iterdir() if p.is_dir() and not p.name.startswith(".")):
        counts[sub.name] = sum(1 for f in sub.rglob("*") if f.suffix.lower() in suffixes)
    with_images = [name for name, n in counts.items() if n > 0]
    if len(with_images) < 2:
        raise DatasetError(
            f"Dataset folder {path} needs at least two class sub-folders with {kind}; "
            f"found {len(with_images)}"
            + (f" ({', '.join(with_images)})" if with_images else "")
            + "."
        )
    empty = [name for name, n in counts.items() if n == 0]
    if empty:
        raise DatasetError(f"Class folder(s) {', '.join(empty)} in {path} hold no {kind}.")
    return DatasetSummary(with_images, sum(counts.values()))


def _validate_npy(path: Path) -> DatasetSummary:
    import numpy as np

    if not path.is_file():
        raise DatasetError(f"Dataset file {path} does not exist.")
    try:
        # Memory-mapped: only the header is read to check it is a numeric array.
        array = np.load(path, mmap_mode="r", allow_pickle=False)
    except (OSError, ValueError) as exc:
        raise DatasetError(f"Cannot read {path} as a NumPy array (.npy): {exc}.") from None
    if not isinstance(array, np.ndarray) or array.ndim < 2 or not len(array):
        raise DatasetError(f"{path} must hold an array of samples, shaped (N, *input shape).")
    if not np.issubdtype(array.dtype, np.number):
        raise DatasetError(f"{path} holds {array.dtype} values, not numbers.")
    return DatasetSummary(None, int(array.shape[0]))


def _validate_csv(path: Path, label_column: str, required: bool = True) -> DatasetSummary:
    if not path.is_file():
        raise DatasetError(f"Dataset file {path} does not exist.")
    try:
        with path.open(newline="", encoding="utf-8-sig") as f:
            reader = csv.DictReader(f)
            header = reader.fieldnames
            rows = list(reader)
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise DatasetError(f"Cannot read {path} as CSV: {exc}.") from exc
    if not header or len(header) < 2:
        raise DatasetError(f"{path} is not a CSV with a header row and at least two columns.")
    if label_column not in header and not required:
        label_column = ""
    elif label_column not in header:
        raise DatasetError(
            f"{path} has no label column '{label_column}'; its columns are {', '.join(header)}."
        )
    if not rows:
        raise DatasetError(f"{path} has a header but no data rows.")
    features = [c for c in header if c != label_column]
    for number, row in enumerate(rows, start=2):
        for column in features:
            value = row.get(column)
            try:
                float(value)  # type: ignore[arg-type]
            except (TypeError, ValueError):
                raise DatasetError(
                    f"{path} line {number}: column '{column}' holds {value!r}, not a number; "
                    "every column except the label must be numeric."
                ) from None
    if not label_column:
        return DatasetSummary(None, len(rows), len(features))
    classes = sorted({str(r[label_column]).strip() for r in rows})
    if len(classes) < 2 and required:
        raise DatasetError(f"{path}: column '{label_column}' has fewer than two classes.")
    return DatasetSummary(classes, len(rows), len(features))
