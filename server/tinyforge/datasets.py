"""Check a spec's dataset before anything runs, so bad input costs one clear sentence."""

from __future__ import annotations

import csv
import itertools
from dataclasses import dataclass
from pathlib import Path

from tinyforge.errors import DatasetError
from tinyforge.scaffold import (
    DEFAULT_DATA_DIR,
    README,
    class_content,
    is_default_data,
    recording,
)
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
        return _validate_folder(path, AUDIO_SUFFIXES if audio else IMAGE_SUFFIXES, spec)
    if kind is DatasetKind.NPY:
        return _validate_npy(path)
    label = spec.dataset.label_column or "label"
    if not path.exists() and is_default_data(spec):
        raise DatasetError(
            f"{spec.dataset.path} does not exist yet: record {recording(spec).format} "
            f"(see {DEFAULT_DATA_DIR}/{README})."
        )
    # An anomaly detector learns from normal rows alone: labels are optional there.
    return _validate_csv(
        path,
        label,
        required=spec.task is not Task.ANOMALY_DETECTION,
        features=spec.dataset.features,
    )


def _shown(path: Path, spec: ProjectSpec) -> str:
    """A class folder as the user knows it: relative to the project when it is inside."""
    base = (spec.dataset.path or "").rstrip("/\\")
    return f"{base}/{path.name}" if base else str(path)


def folder_ready(spec: ProjectSpec, project_dir: Path, scan: int = 2000) -> None:
    """The folder checks of `validate`, bounded for the editor (it asks on every change): at
    most `scan` entries are looked at per class folder. Raises DatasetError as the build would."""
    path = resolve_path(spec, project_dir)
    if spec.dataset.kind is not DatasetKind.FOLDER or path is None:
        return
    audio = spec.task is Task.KEYWORD_SPOTTING
    _validate_folder(path, AUDIO_SUFFIXES if audio else IMAGE_SUFFIXES, spec, scan)


def _validate_folder(
    path: Path, suffixes: set[str], spec: ProjectSpec, scan: int | None = None
) -> DatasetSummary:
    kind = "WAV clips" if suffixes is AUDIO_SUFFIXES else "images"
    if not path.exists():
        if is_default_data(spec):
            raise DatasetError(
                f"Dataset folder {spec.dataset.path} does not exist yet: create one sub-folder "
                f"per class and put {recording(spec).format} in each (see "
                f"{DEFAULT_DATA_DIR}/{README})."
            )
        raise DatasetError(f"Dataset folder {path} does not exist.")
    if not path.is_dir():
        raise DatasetError(f"Dataset {path} is not a folder (expected one sub-folder per class).")
    counts: dict[str, int] = {}
    for sub in sorted(p for p in path.iterdir() if p.is_dir() and not p.name.startswith(".")):
        # `scan` bounds the walk (the editor needs "any file?", not the count).
        found = (f for f in itertools.islice(sub.rglob("*"), scan) if f.suffix.lower() in suffixes)
        counts[sub.name] = sum(1 for _ in itertools.islice(found, 1 if scan else None))
    # The classes the spec names must each have a filled folder: name the empty or missing
    # ones and what belongs in them (a freshly scaffolded project is all empty folders).
    wanted = list(spec.classes) if spec.classes else list(counts)
    other = spec.dataset.other_class
    if other in wanted:
        # The class that gathers the sub-folders no class names (as train.py does).
        counts[other] = counts.get(other, 0) + sum(
            n for name, n in counts.items() if name not in wanted
        )
    empty = [name for name in wanted if counts.get(name, 0) == 0]
    if empty and (spec.classes or counts):
        where = ", ".join(_shown(path / name, spec) for name in empty)
        rec = recording(spec)
        if len(empty) == 1:
            what = f"put {rec.format} of {class_content(spec, empty[0])} there"
        else:
            shown = "; ".join(
                f"{class_content(spec, n)} in {_shown(path / n, spec)}" for n in empty[:4]
            )
            more = f"; and {len(empty) - 4} more" if len(empty) > 4 else ""
            what = f"put {rec.format} in each ({shown}{more})"
        readme = path / README
        see = f" See {_shown(readme, spec)}." if readme.is_file() else ""
        verb = "holds" if len(empty) == 1 else "hold"
        raise DatasetError(
            f"Class folder{'s' if len(empty) > 1 else ''} {where} {verb} no {kind}: {what}, "
            f"{rec.per_class} or more per class to start.{see}"
        )
    with_files = [name for name in wanted if counts.get(name, 0) > 0]
    if len(with_files) < 2:
        raise DatasetError(
            f"Dataset folder {path} needs at least two class sub-folders with {kind}; "
            f"found {len(with_files)}" + (f" ({', '.join(with_files)})" if with_files else "") + "."
        )
    return DatasetSummary(with_files, sum(counts[name] for name in with_files))


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


def _validate_csv(
    path: Path, label_column: str, required: bool = True, features: list[str] | None = None
) -> DatasetSummary:
    """Checks the CSV row by row (streamed: memory does not grow with the file)."""
    if not path.is_file():
        raise DatasetError(f"Dataset file {path} does not exist.")
    check_csv_size(path)
    try:
        with path.open(newline="", encoding="utf-8-sig") as f:
            reader = csv.DictReader(f)
            header = reader.fieldnames
            if not header or len(header) < 2:
                raise DatasetError(
                    f"{path} is not a CSV with a header row and at least two columns."
                )
            if label_column not in header and not required:
                label_column = ""
            elif label_column not in header:
                raise DatasetError(
                    f"{path} has no label column '{label_column}'; its columns are "
                    f"{', '.join(header)}."
                )
            if features:
                absent = [c for c in features if c not in header]
                if absent:
                    raise DatasetError(
                        f"{path} has no column{'s' if len(absent) > 1 else ''} "
                        f"{', '.join(absent)} (the spec's [dataset] features); its columns are "
                        f"{', '.join(header)}."
                    )
            else:
                features = [c for c in header if c != label_column]
            rows = 0
            classes: set[str] = set()
            for number, row in enumerate(reader, start=2):
                rows += 1
                for column in features:
                    value = row.get(column)
                    try:
                        float(value)  # type: ignore[arg-type]
                    except (TypeError, ValueError):
                        raise DatasetError(
                            f"{path} line {number}: column '{column}' holds {value!r}, not a "
                            "number; every feature column must be numeric."
                        ) from None
                if label_column:
                    classes.add(str(row[label_column]).strip())
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise DatasetError(f"Cannot read {path} as CSV: {exc}.") from exc
    if not rows:
        raise DatasetError(f"{path} has a header but no data rows.")
    if not label_column:
        return DatasetSummary(None, rows, len(features))
    if len(classes) < 2 and required:
        raise DatasetError(f"{path}: column '{label_column}' has fewer than two classes.")
    return DatasetSummary(sorted(classes), rows, len(features))


# A CSV the training script can load whole (train.py reads it into memory) and the editor can
# read in a moment; larger data needs its own loader in train.py.
MAX_CSV_BYTES = 1 << 30


def check_csv_size(path: Path) -> None:
    """One sentence for a CSV too large to train on from train.py as generated."""
    size = path.stat().st_size
    if size > MAX_CSV_BYTES:
        raise DatasetError(
            f"{path} is {size / (1 << 30):.1f} GB, over the {MAX_CSV_BYTES >> 30} GB TinyForge "
            "trains on from a CSV: sample it down, or load it in train.py yourself."
        )
