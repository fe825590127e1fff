"""Checks on the dataset: before training (the raw CSV rows, image files or digits) and after
(the splits train.py saved).

Before training: class counts and imbalance, classes too small for the split, duplicate and
contradicting rows or images, unreadable image files, constant features and feature ranges
that call for scaling. Non-numeric CSV features never get here: datasets.validate already
stops the build on them with the line and column. After training: classes missing from a
split, and test samples that also sit in the training split (with the accuracy on the rest).

numpy only at import time; PIL and scikit-learn (digits) are imported where they are needed.
"""

from __future__ import annotations

import csv
import hashlib
import math
import re
from array import array
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from tinyforge.datasets import AUDIO_SUFFIXES, IMAGE_SUFFIXES, check_csv_size, resolve_path
from tinyforge.health import Finding, pct
from tinyforge.spec import DatasetKind, ProjectSpec, Task

# A class needs one sample in each of training, validation and test: below this no split can
# hold it everywhere, and training on it is pointless.
MIN_PER_CLASS = 3
# Largest-to-smallest class ratio from which accuracy stops saying much about the small class.
IMBALANCE_RATIO = 3.0
# Repeated rows below this share of the data are noted, from it on warned about.
DUPLICATE_SHARE = 0.01
# Test samples that also sit in the training split: from this share on the test accuracy is
# partly a memory test.
LEAK_SHARE = 0.10
# A feature is on a scale a network trains well from when its spread is within this range and
# its offset is not much larger than its spread (standardised features: spread 1, offset 0).
SPREAD_RANGE = (0.1, 10.0)
OFFSET_TO_SPREAD = 10.0
SPREAD_RATIO = 10.0
# Names in a training script that show it scales its inputs (Keras layers, scikit-learn scalers).
_SCALING_NAMES = re.compile(
    r"\b(Normalization|Rescaling|StandardScaler|MinMaxScaler|RobustScaler|MaxAbsScaler)\b"
)


@dataclass
class DataReport:
    """What the checks before training found, with the class counts they were based on."""

    source: str
    samples: int
    class_counts: dict[str, int]
    findings: list[Finding] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"source": self.source, "samples": self.samples, "class_counts": self.class_counts}


# -- before training --------------------------------------------------------------------------


def check_dataset(
    spec: ProjectSpec, project_dir: Path, *, train_script: str | None = None
) -> DataReport:
    """Check the raw dataset a spec names (run after datasets.validate accepted it).

    `train_script` is the text of the project's train.py, when there is one: the scaling check
    stays quiet when the script visibly scales its inputs (the generated ones do, for CSVs).
    """
    kind = spec.dataset.kind
    fractions = (spec.training.test_fraction, spec.training.validation_fraction)
    if kind is DatasetKind.DIGITS:
        from sklearn.datasets import load_digits

        digits = load_digits()
        digit_labels = [str(t) for t in digits.target]
        x = digits.data.astype(np.float32)
        return check_table(x, digit_labels, source="scikit-learn digits", fractions=fractions)
    path = resolve_path(spec, project_dir)
    assert path is not None  # the spec guarantees a path for folder and CSV datasets
    relabel = gathered_by(spec)
    if kind is DatasetKind.FOLDER:
        return check_folder(
            path, fractions=fractions, audio=spec.task is Task.KEYWORD_SPOTTING, relabel=relabel
        )
    header, x, labels = read_csv(path, spec.dataset.label_column or "label", spec.dataset.features)
    if labels is not None and relabel is not None:
        labels = [relabel(label) for label in labels]
    scaled = train_script is None or scales_inputs(train_script)
    # An anomaly detector's labels are optional and rare by design: class counts say nothing.
    anomaly = spec.task is Task.ANOMALY_DETECTION
    return check_table(
        x,
        labels if labels is not None else ["normal"] * len(x),
        source=path.name,
        fractions=fractions,
        feature_names=header,
        tabular=True,
        scaled=scaled,
        class_checks=not anomaly,
    )


def read_csv(
    path: Path, label_column: str, features: list[str] | None = None
) -> tuple[list[str], np.ndarray, list[str] | None]:
    """Feature names, features (one row per data row) and labels (None without the column).

    `features` are the columns the model reads (the spec's selection); None: all but the label.
    Streamed: each row's selected values go straight into one float array, and each label is
    one shared string per class (a dict per row took some 30 times the file's size).
    """
    check_csv_size(path)
    values = array("d")
    labels: list[str] = []
    classes: dict[str, str] = {}
    rows = 0
    with path.open(newline="", encoding="utf-8-sig") as f:
        # Blank lines are no rows, as for csv.DictReader (which datasets.validate reads with).
        reader = (row for row in csv.reader(f) if row)
        fields = next(reader, [])
        header = list(features) if features else [c for c in fields if c != label_column]
        columns = [fields.index(c) for c in header]
        label = fields.index(label_column) if label_column in fields else None
        for row in reader:
            rows += 1
            values.extend(float(row[i]) for i in columns)
            if label is not None:
                text = row[label].strip()
                labels.append(classes.setdefault(text, text))
    x = np.frombuffer(values, dtype=np.float64) if values else np.zeros(0)
    return header, x.reshape(rows, len(header)), labels if label is not None else None


def scales_inputs(script: str) -> bool:
    """Whether a training script scales its inputs (comments do not count)."""
    code = "\n".join(line.split("#", 1)[0] for line in script.splitlines())
    return bool(_SCALING_NAMES.search(code))


def check_table(
    x: np.ndarray,
    labels: list[str],
    *,
    source: str,
    fractions: tuple[float, float] = (0.2, 0.1),
    feature_names: list[str] | None = None,
    tabular: bool = False,
    scaled: bool = True,
    class_checks: bool = True,
) -> DataReport:
    """Checks on samples in memory: one row of x (any shape) per label.

    `tabular`: the columns are separate measurements (a CSV), so constant columns and their
    ranges mean something; image pixels are not checked that way.
    """
    counts = dict(sorted(Counter(labels).items()))
    report = DataReport(source, len(labels), counts)
    if class_checks:
        report.findings += class_findings(counts, *fractions)
    rows = np.ascontiguousarray(x.reshape(len(labels), -1))
    keys = [hashlib.blake2b(row.tobytes(), digest_size=16).digest() for row in rows]
    unit = "rows" if tabular else "samples"
    report.findings += _duplicate_findings(keys, labels, unit, line_offset=2 if tabular else 0)
    if tabular and rows.size:
        names = feature_names or [f"feature {i}" for i in range(rows.shape[1])]
        report.findings += _feature_findings(rows.astype(np.float64), names, scaled)
    return report


def gathered_by(spec: ProjectSpec) -> Callable[[str], str] | None:
    """Label → class, when the spec's `dataset.other_class` gathers the labels `classes` does
    not name (as train.py does), so counts and splits are judged per class trained."""
    other, classes = spec.dataset.other_class, set(spec.classes or [])
    if other is None:
        return None
    return lambda label: label if label in classes else other


def check_folder(
    path: Path,
    *,
    fractions: tuple[float, float] = (0.2, 0.1),
    audio: bool = False,
    relabel: Callable[[str], str] | None = None,
) -> DataReport:
    """Image or WAV folder (one sub-folder per class): readable files, counts, repeats."""
    suffixes = AUDIO_SUFFIXES if audio else IMAGE_SUFFIXES
    what = "WAV clips" if audio else "images"
    labels: list[str] = []
    keys: list[bytes] = []
    unreadable: list[str] = []
    total = 0
    classes = sorted(p.name for p in path.iterdir() if p.is_dir() and not p.name.startswith("."))
    for name in classes:
        for file in sorted((path / name).rglob("*")):
            if file.suffix.lower() not in suffixes or not file.is_file():
                continue
            total += 1
            data = file.read_bytes()
            if not _readable(file, audio):
                unreadable.append(file.relative_to(path).as_posix())
                continue
            labels.append(relabel(name) if relabel else name)
            keys.append(hashlib.blake2b(data, digest_size=16).digest())
    if relabel is not None:
        classes = sorted({relabel(name) for name in classes})
    counts = {name: labels.count(name) for name in classes}
    report = DataReport(path.name, len(labels), counts)
    if unreadable:
        report.findings.append(
            Finding(
                "warning",
                "data.unreadable-files",
                f"{len(unreadable)} of {total} files in {path.name} cannot be read as "
                f"{what} (e.g. {unreadable[0]}); training skips them.",
                "Delete or replace the broken files.",
                where=unreadable[0],
            )
        )
    report.findings += class_findings(counts, *fractions)
    report.findings += _duplicate_findings(keys, labels, what, line_offset=None)
    return report


def _readable(file: Path, audio: bool) -> bool:
    """Whether the file opens as what its suffix says (the header and, for images, the data)."""
    if audio:
        import wave

        try:
            with wave.open(str(file), "rb") as clip:
                return clip.getnframes() > 0
        except (OSError, EOFError, wave.Error):
            return False
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(file) as img:
            img.verify()
    except (OSError, UnidentifiedImageError, SyntaxError, ValueError):
        return False
    return True


def class_findings(
    counts: dict[str, int], test_fraction: float = 0.2, validation_fraction: float = 0.1
) -> list[Finding]:
    """Classes too small for the training/validation/test split, and imbalance."""
    found: list[Finding] = []
    if not counts:
        return found
    train_share = (1 - test_fraction) * (1 - validation_fraction)
    val_share = (1 - test_fraction) * validation_fraction
    split = f"{pct(train_share)}/{pct(val_share)}/{pct(test_fraction)}"
    # With fewer than this, the smallest part of the split gets on average less than one.
    need = math.ceil(1 / min(test_fraction, val_share) - 1e-9)
    tiny = {name: n for name, n in counts.items() if n < MIN_PER_CLASS}
    if tiny:
        listed = ", ".join(f"'{name}' has {n}" for name, n in tiny.items())
        found.append(
            Finding(
                "error",
                "data.too-few-samples",
                f"Too few samples to train on: {listed} "
                f"(the split into training/validation/test, {split}, needs at least "
                f"{MIN_PER_CLASS} of each class, one per part).",
                f"Collect more of {_names(tiny)} (at least {need}, better 50 or more), or "
                "remove the class.",
                where=f"class '{next(iter(tiny))}'",
            )
        )
    small = {name: n for name, n in counts.items() if MIN_PER_CLASS <= n < need}
    if small:
        listed = ", ".join(f"'{name}' has {n}" for name, n in small.items())
        found.append(
            Finding(
                "warning",
                "data.few-samples",
                f"Small classes: {listed}; the {split} split leaves less than one of each for "
                "validation or test on average, so their accuracy cannot be measured.",
                f"Collect at least {need} samples per class (better 50 or more).",
                where=f"class '{next(iter(small))}'",
            )
        )
    largest = max(counts, key=lambda k: counts[k])
    smallest = min(counts, key=lambda k: counts[k])
    if counts[smallest] and counts[largest] / counts[smallest] >= IMBALANCE_RATIO:
        ratio = counts[largest] / counts[smallest]
        found.append(
            Finding(
                "warning",
                "data.imbalance",
                f"Classes are imbalanced: '{largest}' has {counts[largest]} samples, "
                f"'{smallest}' {counts[smallest]} ({ratio:.0f}:1); overall accuracy can look "
                f"good while '{smallest}' is rarely recognised.",
                "Collect more of the small classes, or weight them in training "
                "(class_weight in model.fit).",
                where=f"class '{smallest}'",
            )
        )
    return found


def _names(counts: dict[str, int]) -> str:
    return ", ".join(f"'{n}'" for n in counts)


def _duplicate_findings(
    keys: list[bytes], labels: list[str], unit: str, line_offset: int | None
) -> list[Finding]:
    """Exact repeats of a sample, and samples that repeat one with a different label."""
    found: list[Finding] = []
    n = len(keys)
    if n == 0:
        return found
    by_key: dict[bytes, list[int]] = defaultdict(list)
    for index, key in enumerate(keys):
        by_key[key].append(index)
    repeats = sum(
        len(idx) - len({labels[i] for i in idx}) for idx in by_key.values() if len(idx) > 1
    )
    conflicts = [idx for idx in by_key.values() if len({labels[i] for i in idx}) > 1]
    if repeats:
        distinct = len({(k, labels[i]) for k, idxs in by_key.items() for i in idxs})
        share = repeats / n
        example = next(idx for idx in by_key.values() if len(idx) > 1)
        where = _where(example[:2], unit, line_offset)
        found.append(
            Finding(
                "warning" if share >= DUPLICATE_SHARE else "info",
                "data.duplicates",
                f"{repeats} of {n} {unit} ({pct(share)}) repeat another one exactly "
                f"({distinct} distinct, e.g. {where}); repeats that land in both the training "
                "and the test split make the test accuracy look better than it is.",
                "Remove the repeats, unless the sensor really gives identical readings; the "
                "build reports the accuracy on test samples not seen in training.",
                where=where,
            )
        )
    if conflicts:
        count = sum(len(idx) for idx in conflicts)
        # One sample per label, so that the example shows the contradiction.
        first = list({labels[i]: i for i in reversed(conflicts[0])}.values())[::-1][:2]
        where = _where(sorted(first), unit, line_offset)
        shown = " and ".join(f"'{labels[i]}'" for i in sorted(first))
        found.append(
            Finding(
                "warning",
                "data.conflicting-labels",
                f"{count} {unit} are identical to one with a different label (e.g. {where}: "
                f"{shown}); for those the label cannot follow from the data.",
                "Fix the labels, or drop the contradicting samples.",
                where=where,
            )
        )
    return found


def _where(indices: list[int], unit: str, line_offset: int | None) -> str:
    if line_offset is not None and unit == "rows":
        return "lines " + " and ".join(str(i + line_offset) for i in indices)
    return f"{unit} " + " and ".join(f"#{i}" for i in indices)


def _feature_findings(rows: np.ndarray, names: list[str], scaled: bool) -> list[Finding]:
    found: list[Finding] = []
    std = rows.std(axis=0)
    mean = rows.mean(axis=0)
    constant = [names[i] for i in np.flatnonzero(std == 0)]
    if constant:
        every = len(constant) == len(names)
        why = (
            "no feature varies, so there is nothing to learn from"
            if every
            else "they carry no information but still cost inputs and weights on the device"
        )
        found.append(
            Finding(
                "error" if every else "warning",
                "data.constant-feature",
                f"Column(s) {', '.join(repr(c) for c in constant)} hold one value in every "
                f"row: {why}.",
                "Drop them, or fix how the data was recorded.",
                where=f"column '{constant[0]}'",
            )
        )
    varying = np.flatnonzero(std > 0)
    if scaled or len(varying) == 0:
        return found
    s, m = std[varying], mean[varying]
    lo, hi = SPREAD_RANGE
    off = (s < lo) | (s > hi) | (np.abs(m) > OFFSET_TO_SPREAD * s)
    uneven = s.max() / s.min() > SPREAD_RATIO
    if off.any() or uneven:
        shown = [int(varying[i]) for i in np.flatnonzero(off)] or [
            int(varying[np.argmax(s)]),
            int(varying[np.argmin(s)]),
        ]
        described = ", ".join(f"'{names[i]}' {mean[i]:.3g} ± {std[i]:.2g}" for i in shown[:3])
        found.append(
            Finding(
                "warning",
                "data.needs-scaling",
                f"Feature ranges call for scaling ({described}) and the training script does not "
                "scale them; a network on raw features like these trains poorly.",
                "Standardise the features: put a keras.layers.Normalization layer, adapted to "
                "the training data, first in the model (it scales on the device too).",
                where=f"column '{names[shown[0]]}'",
            )
        )
    return found


# -- after training ---------------------------------------------------------------------------


def check_splits(
    splits: dict[str, np.ndarray],
    classes: list[str],
    predictions: np.ndarray | None = None,
) -> tuple[list[Finding], dict[str, Any]]:
    """Checks on the splits train.py saved (x_/y_ train, val, test).

    `predictions` are the shipped model's class indices for x_test, to give the accuracy on
    the test samples that are not in the training split. Returns findings and figures.
    """
    found: list[Finding] = []
    figures: dict[str, Any] = {}
    names = {"train": "training", "val": "validation", "test": "test"}
    for part, word in names.items():
        y = splits.get(f"y_{part}")
        if y is None:
            continue
        present = set(np.unique(y).tolist())
        missing = [name for i, name in enumerate(classes) if i not in present]
        figures[f"{part}_samples"] = len(y)
        if missing:
            found.append(
                Finding(
                    "error" if part == "train" else "warning",
                    "data.split-missing-class",
                    f"The {word} split has no sample of {', '.join(repr(m) for m in missing)}"
                    + (
                        ": the model cannot learn it."
                        if part == "train"
                        else ": accuracy on it is not measured."
                    ),
                    "Collect more samples of that class, or stratify the split in train.py.",
                    where=f"class '{missing[0]}'",
                )
            )
    x_train, x_test = splits.get("x_train"), splits.get("x_test")
    y_test = splits.get("y_test")
    if x_train is None or x_test is None or y_test is None or not len(x_test):
        return found, figures
    seen_keys = {_row_key(row) for row in x_train}
    seen = np.array([_row_key(row) in seen_keys for row in x_test], dtype=bool)
    figures["test_seen_in_train"] = int(seen.sum())
    if predictions is not None and len(predictions) == len(y_test):
        correct = np.asarray(predictions) == y_test
        figures["accuracy_unseen"] = float(correct[~seen].mean()) if (~seen).any() else None
        figures["accuracy_seen"] = float(correct[seen].mean()) if seen.any() else None
    share = seen.mean()
    if seen.any():
        unseen = int((~seen).sum())
        detail = ""
        accuracy = figures.get("accuracy_unseen")
        if accuracy is not None:
            overall = float((np.asarray(predictions) == y_test).mean())
            detail = (
                f"; on the {unseen} unseen test samples the model scores {pct(accuracy)} "
                f"({pct(overall)} overall)"
            )
        elif unseen == 0:
            detail = "; no test sample is new to the model"
        found.append(
            Finding(
                "warning" if share >= LEAK_SHARE else "info",
                "data.test-leak",
                f"{int(seen.sum())} of {len(seen)} test samples ({pct(share)}) also appear in "
                f"the training split, so the test accuracy partly measures memory{detail}.",
                "Remove repeated samples before splitting (or split by recording session), "
                "and judge the model by the unseen figure.",
                where="test split",
            )
        )
    return found, figures


def _row_key(row: np.ndarray) -> bytes:
    return hashlib.blake2b(np.ascontiguousarray(row).tobytes(), digest_size=16).digest()
