"""The data decides: a spec's classes and inputs reconciled with the dataset they train on.

A request names classes and inputs in everyday words ("apples, bananas and oranges", "soil
moisture, temperature and light readings"); the dataset has its own spelling ("apple", the
column `soil_moisture`). Wherever the data exists — when a project is planned and again when
it is built — its labels and columns win, each mapping is written into the spec's
`assumptions`, and only a class the data does not have at all stops the build, in one sentence
that shows both lists (with `tinyforge repair` and an editor quick fix to take the data's).
"""

from __future__ import annotations

import csv
import os
import re
from collections.abc import Callable, MutableMapping
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tinyforge.datasets import MAX_CSV_BYTES
from tinyforge.errors import StageError
from tinyforge.spec import SPEC_FILENAME, DatasetKind, ProjectSpec, Task

if TYPE_CHECKING:
    from tinyforge.repair.fixes import Fix

# The stage a mismatch is recorded under (.tinyforge/last-failure.json), for `tinyforge repair`.
STAGE = "data"
DIAGNOSTIC_CODE = "data.label-mismatch"
REPAIR_RULE = "dataset-labels"
# How a plan-time mismatch starts in the assumptions (the fix removes it).
MISMATCH_WARNING = "Warning (classes vs data):"

# Obvious pairs: a request's "yes" is a data's "1" or "true", and so on.
_TRUE = {"yes", "y", "true", "t", "1", "on", "positive", "pos"}
_FALSE = {"no", "n", "false", "f", "0", "off", "negative", "neg"}
# Colour words a request uses for a colour sensor's channels.
_COLOUR_NAMES = {"r": "red", "g": "green", "b": "blue", "c": "clear"}


class LabelMismatchError(StageError):
    """The spec names a class the dataset does not have: nothing was trained."""

    def __init__(self, message: str) -> None:
        super().__init__(STAGE, message)


# -- the data ---------------------------------------------------------------------------------


@dataclass
class DataFacts:
    """What a dataset says about itself: its labels (sorted) and, for a CSV, its columns."""

    path: Path
    labels: list[str] | None
    columns: list[str] = field(default_factory=list)  # CSV: every column but the label
    label_column: str | None = None
    text_columns: list[str] = field(default_factory=list)  # CSV columns that are not numbers


def dataset_path(spec: ProjectSpec, base: Path) -> Path | None:
    if not spec.dataset.path:
        return None
    path = Path(os.path.expanduser(spec.dataset.path))
    return path if path.is_absolute() else base / path


def read_facts(spec: ProjectSpec, base: Path) -> DataFacts | None:
    """The dataset's labels and columns, or None when it is not there (yet) or unreadable:
    then nothing is reconciled and the build's own dataset checks speak."""
    path = dataset_path(spec, base)
    if path is None or spec.dataset.kind in (DatasetKind.DIGITS, DatasetKind.NPY):
        return None
    try:
        if spec.dataset.kind is DatasetKind.FOLDER:
            if not path.is_dir():
                return None
            names = sorted(
                p.name for p in path.iterdir() if p.is_dir() and not p.name.startswith(".")
            )
            return DataFacts(path, names or None)
        if not path.is_file():
            return None
        stat = path.stat()
        if stat.st_size > MAX_CSV_BYTES:
            return None  # the build says why in one sentence (datasets.check_csv_size)
        header, labels, text = _read_csv(str(path), stat.st_mtime_ns, stat.st_size, _label(spec))
    except (OSError, UnicodeDecodeError, csv.Error, ValueError):
        return None
    if not header:
        return None
    column = _label(spec) if _label(spec) in header else None
    columns = [c for c in header if c != column]
    return DataFacts(path, labels if column else None, columns, column, sorted(text))


def _label(spec: ProjectSpec) -> str:
    return spec.dataset.label_column or "label"


@lru_cache(maxsize=16)
def _read_csv(
    path: str, _mtime: int, _size: int, label: str
) -> tuple[list[str], list[str], frozenset[str]]:
    """Header (as train.py's csv.DictReader sees it), sorted distinct labels, and the columns
    holding text rather than numbers; cached per file version (the editor asks often)."""
    with open(path, newline="", encoding="utf-8-sig") as handle:
        reader = csv.reader(handle)
        header = next(reader, [])
        index = header.index(label) if label in header else None
        labels: set[str] = set()
        words = [0] * len(header)
        rows = 0
        for row in reader:
            rows += 1
            if index is not None and index < len(row) and row[index].strip():
                labels.add(row[index].strip())
            for i, value in enumerate(row[: len(header)]):
                words[i] += i != index and not _is_number(value)
    # Text in most rows (a date, an id) is a text column; a stray bad value in a numeric
    # column is not, and the build's check names its line.
    text = frozenset(header[i] for i, n in enumerate(words) if rows and n > rows / 2)
    return header, sorted(labels), text


def _is_number(value: str) -> bool:
    try:
        float(value)
    except ValueError:
        return False
    return True


# -- matching words to the data's names -------------------------------------------------------


def _squash(text: str) -> str:
    """Case, spacing and punctuation do not matter: "Speed-limit" == "speed limit"."""
    return re.sub(r"[\W_]+", "", text.casefold())


def _forms(text: str) -> set[str]:
    """A squashed name and its singular candidates: "berries" → berry, "boxes" → box."""
    word = _squash(text)
    forms = {word}
    if len(word) > 3 and word.endswith("ies"):
        forms.add(word[:-3] + "y")
    if len(word) > 3 and word.endswith("ves"):
        forms |= {word[:-3] + "f", word[:-3] + "fe"}
    if len(word) > 2 and word.endswith("es"):
        forms.add(word[:-2])
    if len(word) > 1 and word.endswith("s") and not word.endswith("ss"):
        forms.add(word[:-1])
    return {f for f in forms if f}


def match_label(word: str, labels: list[str]) -> str | None:
    """The data's label a request's word means, or None. Exact first, then case/spacing/
    punctuation, then singular/plural, then the yes/true/1 and no/false/0 pairs; a word that
    could mean two labels matches neither."""
    if word in labels:
        return word
    checks: tuple[Callable[[str], bool], ...] = (
        lambda label: _squash(label) == _squash(word),
        lambda label: bool(_forms(label) & _forms(word)),
        lambda label: _boolean(label) is not None and _boolean(label) == _boolean(word),
    )
    for same in checks:
        found = [label for label in labels if same(label)]
        if len(found) == 1:
            return found[0]
        if len(found) > 1:
            return None
    return None


def _boolean(text: str) -> bool | None:
    word = _squash(text)
    if word in _TRUE:
        return True
    if word in _FALSE:
        return False
    return None


def _tokens(text: str) -> list[str]:
    """Words of a name: "soilMoisture_pct" → soil, moisture, pct."""
    spaced = re.sub(r"(?<=[a-z])(?=[A-Z])", " ", text)
    return [t for t in re.split(r"[\W_]+", spaced.casefold()) if t]


def match_column(word: str, columns: list[str]) -> str | None:
    """The CSV column a request's input name means ("soil moisture" → soil_moisture_pct,
    "temperature" → temp_c, "red" → R), or None when none or several fit."""
    found = match_label(word, columns)
    if found is not None:
        return found
    words = [_singular(t) for t in _tokens(word)]
    if not words:
        return None

    def covers(column: str) -> bool:
        parts = [_singular(t) for t in _tokens(column)]
        # Every word of the request's name is a column word or starts with one ("temp").
        return all(any(w == p or (len(p) >= 4 and w.startswith(p)) for p in parts) for w in words)

    found_all = [c for c in columns if covers(c)]
    if len(found_all) == 1:
        return found_all[0]
    if not found_all and len(words) == 1 and len(words[0]) > 1:
        # A colour name against single-letter channel columns: red → R.
        initial = [
            c for c in columns if _squash(c) == words[0][0] and words[0] in _COLOUR_NAMES.values()
        ]
        if len(initial) == 1:
            return initial[0]
    return None


def _singular(word: str) -> str:
    forms = sorted(_forms(word), key=len)
    return forms[0] if word.endswith("s") and len(forms) > 1 else word


# -- reconciliation ---------------------------------------------------------------------------


@dataclass
class Reconciled:
    spec: ProjectSpec
    notes: list[str] = field(default_factory=list)  # new assumptions, in plain English
    missing: list[str] = field(default_factory=list)  # the spec's classes the data lacks
    facts: DataFacts | None = None

    @property
    def changed(self) -> bool:
        return bool(self.notes)


def reconcile(spec: ProjectSpec, base: Path) -> Reconciled:
    """The spec with its classes and inputs taken from the data at `base`/dataset.path.

    Never raises for a mismatch: `missing` lists the classes the data does not have, and the
    caller decides (a plan says so, a build stops).
    """
    facts = read_facts(spec, base)
    if facts is None:
        return Reconciled(spec)
    notes: list[str] = []
    update: dict[str, object] = {}
    dataset_update: dict[str, object] = {}
    where = spec.dataset.path or facts.path.name

    # Inputs: named quantities select CSV columns; the model reads them in the file's order.
    if spec.dataset.kind is DatasetKind.CSV and facts.columns:
        wanted = spec.dataset.features
        if wanted and wanted != [c for c in facts.columns if c in wanted]:
            matched = {w: match_column(w, facts.columns) for w in wanted}
            unmatched = [w for w, c in matched.items() if c is None]
            if unmatched:
                notes.append(
                    f"The request names input{'s' if len(unmatched) > 1 else ''} "
                    f"{_quoted(unmatched)}, not among the columns of {where} "
                    f"({', '.join(facts.columns)}): the model reads every column but the label."
                )
                dataset_update["features"] = None
            else:
                chosen = [c for c in facts.columns if c in matched.values()]
                unused = [c for c in facts.columns if c not in chosen]
                renamed = [f"'{w}' is column '{c}'" for w, c in matched.items() if w != c]
                dataset_update["features"] = None if chosen == facts.columns else chosen
                notes.append(
                    f"Inputs from {where}: {', '.join(chosen)}"
                    + (f" ({'; '.join(renamed)})" if renamed else "")
                    + (f"; not used: {', '.join(unused)}." if unused else ".")
                )
        numeric = [c for c in facts.columns if c not in facts.text_columns]
        if (
            "features" not in dataset_update
            and not spec.dataset.features
            and facts.text_columns
            and numeric
        ):
            # A date or an id in text is no input: the model reads the numeric columns.
            dataset_update["features"] = numeric
            several = len(facts.text_columns) > 1
            notes.append(
                f"Column{'s' if several else ''} {_quoted(facts.text_columns)} of {where} "
                f"hold{'' if several else 's'} text, not numbers: not an input; the model "
                f"reads {', '.join(numeric)}."
            )
        columns = dataset_update.get("features", spec.dataset.features) or facts.columns
        if len(spec.input_shape) == 1 and spec.input_shape[0] != len(columns):  # type: ignore[arg-type]
            update["input_shape"] = [len(columns)]  # type: ignore[arg-type]
            notes.append(
                f"input_shape is [{len(columns)}]: one value per feature column of {where}."  # type: ignore[arg-type]
            )

    # Classes: the data's labels, in the data's (sorted) order; the request's words map onto them.
    missing: list[str] = []
    labels = facts.labels
    if labels and len(labels) >= 2 and spec.task is not Task.ANOMALY_DETECTION:
        if spec.classes:
            mapping = {c: match_label(c, labels) for c in spec.classes}
            missing = [c for c, label in mapping.items() if label is None]
            other = _gathering_class(spec, mapping, labels)
            if other is not None:
                # The data's spelling when it has a folder or label of that name too.
                other_label = mapping.get(other) or other
                missing = [c for c in missing if c != other]
                named = {v for c, v in mapping.items() if c != other and v is not None}
                gathered = [v for v in labels if v not in named and v != other_label]
                if not missing:
                    update["classes"] = [v for v in labels if v in named] + [other_label]
                    dataset_update["other_class"] = other_label
                    notes.append(
                        f"{where} also has {_quoted(gathered)}, which the request does not "
                        f"name: gathered into the class '{other_label}'."
                    )
                    renamed = [
                        f"'{c}' is the data's '{v}'"
                        for c, v in mapping.items()
                        if v is not None and c != v
                    ]
                    if renamed:
                        notes.append(f"Classes follow the labels in {where}: {'; '.join(renamed)}.")
            elif not missing:
                renamed = [
                    f"'{c}' is the data's '{label}'" for c, label in mapping.items() if c != label
                ]
                if renamed:
                    notes.append(f"Classes follow the labels in {where}: {'; '.join(renamed)}.")
                unnamed = [label for label in labels if label not in mapping.values()]
                if unnamed:
                    notes.append(
                        f"{where} also has {_quoted(unnamed)}, which the request does not name: "
                        + (
                            "kept as classes of their own"
                            if len(unnamed) > 1
                            else "kept as a class of its own"
                        )
                        + f", so the model tells all {len(labels)} labels apart."
                    )
                if list(spec.classes) != labels:
                    update["classes"] = list(labels)
                    if not renamed and not unnamed:
                        notes.append(f"Classes in the order of {where}: {', '.join(labels)}.")
        elif spec.dataset.kind is DatasetKind.CSV:
            update["classes"] = list(labels)
            source = f"column '{facts.label_column}' of {where}"
            if spec.num_classes is not None and spec.num_classes != len(labels):
                notes.append(
                    f"The request says {spec.num_classes} classes but {source} has "
                    f"{len(labels)}: using the data's ({', '.join(labels)})."
                )
            else:
                notes.append(f"Classes from {source}: {', '.join(labels)}.")
        elif spec.num_classes is not None and spec.num_classes != len(labels):
            update["classes"] = list(labels)
            notes.append(
                f"The request says {spec.num_classes} classes but {where} has {len(labels)} "
                f"class folders: using them ({', '.join(labels)})."
            )
    if "classes" in update:
        update["num_classes"] = None  # follows the classes
        if "other_class" not in dataset_update and spec.dataset.other_class:
            dataset_update["other_class"] = None  # nothing left to gather
    if dataset_update:
        update["dataset"] = spec.dataset.model_copy(update=dataset_update)
    if not update:
        return Reconciled(spec, notes, missing, facts)
    data = spec.model_dump()
    data.update(update)
    data["assumptions"] = [*spec.assumptions, *(n for n in notes if n not in spec.assumptions)]
    return Reconciled(ProjectSpec.model_validate(data), notes, missing, facts)


# Names a request uses for "everything else": such a class gathers the data's unnamed labels.
_CATCH_ALL = {
    "other",
    "others",
    "unknown",
    "rest",
    "therest",
    "anythingelse",
    "everythingelse",
    "somethingelse",
    "background",
    "misc",
    "miscellaneous",
}


def _gathering_class(
    spec: ProjectSpec, mapping: dict[str, str | None], labels: list[str]
) -> str | None:
    """The class that gathers the data's labels the request does not name: the spec's
    `other_class`, or one catch-all name ("unknown", "other …") — when there is something
    to gather."""
    unnamed = [label for label in labels if label not in mapping.values()]
    if not unnamed:
        return None
    if spec.dataset.other_class in mapping:
        return spec.dataset.other_class
    catch = [c for c in mapping if _squash(c) in _CATCH_ALL or re.match(r"others?\b", c.casefold())]
    return catch[0] if len(catch) == 1 else None


def _quoted(names: list[str]) -> str:
    return ", ".join(f"'{n}'" for n in names)


def mismatch_sentence(spec: ProjectSpec, result: Reconciled) -> str:
    """One sentence with both lists, and the way out."""
    facts = result.facts
    assert facts is not None and facts.labels is not None
    where = spec.dataset.path or facts.path.name
    has = (
        f"column '{facts.label_column}' of {where} has {', '.join(facts.labels)}"
        if spec.dataset.kind is DatasetKind.CSV
        else f"{where} has the class folders {', '.join(facts.labels)}"
    )
    missing = result.missing
    return (
        f"The spec's classes ({', '.join(spec.classes or [])}) name "
        f"{_quoted(missing)}, which {'are' if len(missing) > 1 else 'is'} not in the data: "
        f"{has}; `tinyforge repair` sets classes to the data's labels, or rename the data."
    )


def at_plan(spec: ProjectSpec, base: Path) -> ProjectSpec:
    """A planned spec checked against data that already exists (paths as the request gave
    them, relative to `base`, where the request was typed). A class the data lacks does not
    stop a plan: the assumptions say so, and the build stops before training."""
    from tinyforge.scaffold import is_default_data

    if is_default_data(spec):
        return spec  # data/ of a project not written yet, not a data/ where the request was typed
    result = reconcile(spec, base)
    if not result.missing:
        return result.spec
    sentence = mismatch_sentence(spec, result)
    warning = f"{MISMATCH_WARNING} {sentence}"
    return spec.model_copy(update={"assumptions": [*spec.assumptions, warning]})


def at_build(spec: ProjectSpec, project_dir: Path) -> ProjectSpec:
    """Before anything trains: reconcile again (the data or the spec may have changed since
    `new`); the updated spec is saved to tinyforge.toml (its comments kept). A class the data
    lacks stops here, recorded for `tinyforge repair`."""
    result = reconcile(spec, project_dir)
    if result.missing:
        error = LabelMismatchError(mismatch_sentence(spec, result))
        from tinyforge.repair.failure import record_failure

        record_failure(project_dir, error)
        raise error
    if result.spec != spec:
        from tinyforge.datasets import validate

        # Saved only for data a build can use: a build that stops leaves the project as it was.
        validate(result.spec, project_dir)
        save_spec_changes(project_dir, spec, result.spec)
    return result.spec


# -- writing tinyforge.toml with its comments kept -----------------------------------------------


def patch_spec_text(text: str, before: ProjectSpec, after: ProjectSpec) -> str:
    """`text` (a tinyforge.toml) with the top-level and [dataset] values that differ between
    the two specs replaced; the rest of the file, comments included, stays as it was."""
    import tomlkit

    doc = tomlkit.parse(text)
    old, new = before.model_dump(mode="json"), after.model_dump(mode="json")
    for key in ("input_shape", "classes", "num_classes", "assumptions"):
        _set(doc, key, new.get(key), old.get(key))
    table = doc.get("dataset")
    if table is not None:
        for key in ("features", "label_column", "other_class"):
            _set(table, key, new["dataset"].get(key), old["dataset"].get(key))
    return tomlkit.dumps(doc)


def _set(table: MutableMapping[str, Any], key: str, value: object, old: object) -> None:
    """tinyforge.toml's `table[key] = value` (tomlkit: the file's comments and layout stay)."""
    import tomlkit

    if value == old:
        return
    if value is None:
        if key in table:
            del table[key]
        return
    if isinstance(value, list):
        array = tomlkit.array()
        array.extend(value)
        array.multiline(True)
        table[key] = array
    else:
        table[key] = value


def save_spec_changes(project_dir: Path, before: ProjectSpec, after: ProjectSpec) -> None:
    """A tinyforge.toml as TinyForge wrote it is rewritten whole (and stays TinyForge's, so the
    build's refresh does not mistake it for the user's); one the user edited is patched in
    place, their comments and layout kept."""
    from tinyforge.generate.files import is_pristine, write_atomic, write_generated

    project_dir = Path(project_dir)
    path = project_dir / SPEC_FILENAME
    text = path.read_text(encoding="utf-8") if path.is_file() else None
    # Edited values alone (tinyforge.toml still as TinyForge would write it): no layout to keep.
    if text is None or text == before.to_toml() or is_pristine(project_dir, SPEC_FILENAME):
        write_generated(project_dir, {SPEC_FILENAME: after.to_toml()}, force=True)
        return
    write_atomic(project_dir, SPEC_FILENAME, patch_spec_text(text, before, after))


# -- the one-step fix: take the data's labels ---------------------------------------------------


def labels_fix(toml_text: str, spec: ProjectSpec, project_dir: Path) -> Fix | None:
    """tinyforge.toml with `classes` set to the dataset's labels, when the spec names a class
    the data does not have: the `tinyforge repair` rule and the editor's quick fix."""
    from tinyforge.repair.fixes import FileEdit, Fix

    result = reconcile(spec, project_dir)
    if not result.missing or result.facts is None or not result.facts.labels:
        return None
    labels = list(result.facts.labels)
    note = (
        f"Classes set to the data's labels ({', '.join(labels)}): the data has no "
        f"{_quoted(result.missing)}."
    )
    # The plan's warning about this mismatch is answered by the fix: it goes.
    kept = [a for a in spec.assumptions if not a.startswith(MISMATCH_WARNING)]
    data = spec.model_dump()
    data.update(classes=labels, num_classes=None, assumptions=[*kept, note])
    data["dataset"] = {**data["dataset"], "other_class": None}  # every label is a class now
    fixed = ProjectSpec.model_validate(data)
    return Fix(
        rule=REPAIR_RULE,
        title=f"Use the dataset's labels as classes: {', '.join(labels)}",
        explanation=f"{mismatch_sentence(spec, result)} This sets classes (and num_classes) in "
        f"{SPEC_FILENAME} to the labels the data has; `tinyforge build` then trains on them.",
        edits=[FileEdit(SPEC_FILENAME, toml_text, patch_spec_text(toml_text, spec, fixed))],
    )
