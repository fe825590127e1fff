"""The planner itself: one request read step by step into a ProjectSpec.

Each step masks what it understood before the next looks (text.py): paths first, then a CSV's
label column, the board, the task, the dataset, the inputs, the classes, the shape, the budget
and the number format. Every default filled in is written to the spec's assumptions.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from pydantic import ValidationError

from tinyforge.boards import (
    Board,
    board_words,
    find_board_mentions,
    get_board,
    suggest_boards,
)
from tinyforge.errors import DatasetError, PlanError, UnknownBoardError
from tinyforge.plan.offline.budgets import budget
from tinyforge.plan.offline.classes import find_class_count, find_classes
from tinyforge.plan.offline.columns import (
    LABEL_NAMES,
    CsvHead,
    find_label_column,
    guess_label_column,
    read_csv_head,
)
from tinyforge.plan.offline.inputs import find_inputs
from tinyforge.plan.offline.lexicon import lexicon
from tinyforge.plan.offline.paths import (
    PathRef,
    existing_path,
    find_paths,
    folder_content_kind,
    subfolders,
)
from tinyforge.plan.offline.shapes import input_shape
from tinyforge.plan.offline.tasks import TASK_ORDER, TASK_SHORT, cue_score, task_scores
from tinyforge.plan.offline.text import mask
from tinyforge.plan.offline.unknown_boards import unknown_board_phrase, unknown_next_to
from tinyforge.scaffold import DEFAULT_CSV, DEFAULT_DATA_DIR, NO_DATASET_NOTE
from tinyforge.spec import (
    Dataset,
    DatasetKind,
    ProjectSpec,
    Quantization,
    Task,
    describe_validation_error,
)

DEFAULT_BOARD = "nano33ble"

EXAMPLE_REQUEST = "Recognize handwritten digits on an Arduino Nano 33 BLE Sense"

_LEX = lexicon()
_DIGITS_CUE = _LEX.cue("data.digits")
_FLOAT = _LEX.cue("quantization.float")
_INT8 = _LEX.cue("quantization.int8")
_INT8_EXPLICIT = _LEX.cue("quantization.int8_explicit")


@dataclass
class _Plan:
    """Working state of one planning run."""

    request: str
    board_arg: str | None
    text: str = ""
    assumptions: list[str] = field(default_factory=list)
    inputs: list[str] = field(default_factory=list)

    def assume(self, sentence: str) -> None:
        if sentence not in self.assumptions:
            self.assumptions.append(sentence)

    # -- entry point -------------------------------------------------------------------------

    def run(self) -> ProjectSpec:
        self.text = self.request.replace("\r", " ").replace("\t", " ")
        if not re.search(r"[^\W_]", self.text):
            raise _nothing_usable(self.request)

        paths = find_paths(self.text)
        masked = mask(self.text, [(p.start, p.end) for p in paths])
        csv_ref = next((p for p in paths if p.is_csv), None)
        folder_ref = next((p for p in paths if not p.is_csv), None)

        label: tuple[str, tuple[int, int]] | None = None
        if csv_ref is not None:
            label = find_label_column(masked)
            if label is not None:
                masked = mask(masked, [label[1]])

        board, masked = self._board(masked)
        task = self._task(masked, csv_ref, folder_ref)
        dataset, head = self._dataset(task, masked, csv_ref, folder_ref, label)
        inputs = find_inputs(masked) if task is not Task.IMAGE_CLASSIFICATION else None
        if inputs is not None:
            self.inputs = inputs[0]
            if dataset.kind is DatasetKind.CSV:
                dataset = dataset.model_copy(update={"features": inputs[0]})
        # What the model reads is not what it tells apart: inputs never become classes.
        class_text = mask(masked, [inputs[1]]) if inputs is not None else masked
        classes, num_classes = self._classes(task, class_text, dataset)
        shape = input_shape(task, masked, dataset, head, board, self.inputs, self.assume)
        spec_budget = budget(masked, board, self.assume)
        quantization = self._quantization(masked)
        name = self._name(task, classes, dataset, board)
        try:
            return ProjectSpec(
                name=name,
                request=self.request,
                task=task,
                board=board.id,
                input_shape=shape,
                classes=classes,
                num_classes=num_classes,
                dataset=dataset,
                budget=spec_budget,
                quantization=quantization,
                assumptions=self.assumptions,
            )
        except ValidationError as exc:
            raise PlanError(
                f"The request led to an invalid spec ({describe_validation_error(exc)}); "
                "rephrase it or edit tinyforge.toml by hand."
            ) from exc

    # -- board -------------------------------------------------------------------------------

    def _board(self, masked: str) -> tuple[Board, str]:
        mentions = find_board_mentions(masked)
        without_known = mask(masked, [(m.start, m.end) for m in mentions])
        if self.board_arg is not None:
            board = get_board(self.board_arg)
            named = {m.board.id for m in mentions}
            if named and named != {board.id}:
                self.assume(
                    f"The board option ({board.id}) overrides the board named in the request "
                    f"({', '.join(sorted(named))})."
                )
            return board, without_known
        if mentions:
            adjacent = unknown_next_to(masked, mentions)
            if adjacent is not None:
                raise UnknownBoardError(adjacent, suggest_boards(adjacent))
            board = mentions[0].board
            others = sorted({m.board.id for m in mentions} - {board.id})
            if others:
                self.assume(
                    f"Several boards are named: using the first, {board.name} ({board.id}), "
                    f"not {', '.join(others)}."
                )
            return board, without_known
        phrase = unknown_board_phrase(without_known)
        if phrase is not None:
            if phrase.lower() in board_words().vague:
                board = get_board(DEFAULT_BOARD)
                self.assume(
                    f"'{phrase}' does not say which board exactly: assumed {board.name} "
                    f"({board.id})."
                )
                return board, without_known
            raise UnknownBoardError(phrase, suggest_boards(phrase))
        board = get_board(DEFAULT_BOARD)
        self.assume(f"No board named: assumed {board.name} ({board.id}).")
        return board, without_known

    def _task(self, masked: str, csv_ref: PathRef | None, folder_ref: PathRef | None) -> Task:
        scores = task_scores(masked)
        best = max(TASK_ORDER, key=lambda t: (scores[t], -TASK_ORDER.index(t)))
        if scores[best] > 0:
            # A CSV holds tabular data: weak image cues ("recognise") must not make it images.
            if csv_ref is not None and best is Task.IMAGE_CLASSIFICATION and scores[best] < 4:
                best = Task.SENSOR_CLASSIFICATION
                self.assume("The data is a CSV file, so this is read as sensor classification.")
            return best
        if csv_ref is not None:
            self.assume("Only a CSV file is named: read as sensor classification of its rows.")
            return Task.SENSOR_CLASSIFICATION
        if folder_ref is not None:
            existing = existing_path(folder_ref.path)
            kind = folder_content_kind(existing) if existing and existing.is_dir() else None
            if kind == "audio":
                self.assume("The folder holds audio clips: read as keyword spotting.")
                return Task.KEYWORD_SPOTTING
            if kind == "csv":
                self.assume("The folder holds CSV files: read as sensor classification.")
                return Task.SENSOR_CLASSIFICATION
            self.assume(
                "Only a folder is named: read as image classification (one sub-folder per class)."
            )
            return Task.IMAGE_CLASSIFICATION
        raise _nothing_usable(self.request)

    # -- dataset -----------------------------------------------------------------------------

    def _dataset(
        self,
        task: Task,
        masked: str,
        csv_ref: PathRef | None,
        folder_ref: PathRef | None,
        label: tuple[str, tuple[int, int]] | None,
    ) -> tuple[Dataset, CsvHead | None]:
        image_like = task is Task.IMAGE_CLASSIFICATION
        wants_digits = image_like and _DIGITS_CUE.search(masked) is not None
        if csv_ref is not None and not (image_like and folder_ref is not None):
            return self._csv_dataset(csv_ref, label, task)
        if folder_ref is not None:
            return Dataset(kind=DatasetKind.FOLDER, path=folder_ref.path), None
        if wants_digits:
            self.assume(
                "No dataset named: using the built-in 8x8 handwritten digits dataset "
                "(scikit-learn's load_digits)."
            )
            return Dataset(kind=DatasetKind.DIGITS), None
        return self._default_dataset(task, masked), None

    def _default_dataset(self, task: Task, masked: str) -> Dataset:
        """No data yet: the project's own data folder, to be filled (see scaffold)."""
        images = task is Task.IMAGE_CLASSIFICATION or (
            task is Task.ANOMALY_DETECTION and cue_score(Task.IMAGE_CLASSIFICATION, masked) > 0
        )
        if images or task is Task.KEYWORD_SPOTTING:
            what = "WAV clips" if task is Task.KEYWORD_SPOTTING else "images"
            self.assume(
                f"{NO_DATASET_NOTE} the project gets its own {DEFAULT_DATA_DIR}/ folder, one "
                f"sub-folder of {what} per class ({DEFAULT_DATA_DIR}/README.md says what to "
                "record)."
            )
            return Dataset(kind=DatasetKind.FOLDER, path=DEFAULT_DATA_DIR)
        label = None if task is Task.ANOMALY_DETECTION else "label"
        self.assume(
            f"{NO_DATASET_NOTE} readings go into {DEFAULT_CSV} in the project, one column per "
            "input"
            + (f" and the class in column '{label}'" if label else "")
            + f" ({DEFAULT_DATA_DIR}/README.md says what to record)."
        )
        return Dataset(kind=DatasetKind.CSV, path=DEFAULT_CSV, label_column=label)

    def _csv_dataset(
        self, ref: PathRef, label: tuple[str, tuple[int, int]] | None, task: Task | None = None
    ) -> tuple[Dataset, CsvHead | None]:
        existing = existing_path(ref.path)
        head = read_csv_head(existing) if existing is not None and existing.is_file() else None
        if existing is not None and existing.is_file() and head is None:
            self.assume(
                f"{ref.path} could not be read as CSV text at plan time; "
                "`tinyforge build` will check it again."
            )
        column: str
        if label is not None:
            column = label[0]
            if head is not None:
                lowered = {h.lower(): h for h in head.header}
                if column.lower() not in lowered:
                    raise DatasetError(
                        f"Column '{column}' is not in {ref.path}: its columns are "
                        f"{', '.join(h for h in head.header if h)}."
                    )
                column = lowered[column.lower()]
        elif task is Task.ANOMALY_DETECTION and (
            head is None or not {h.lower() for h in head.header} & set(LABEL_NAMES)
        ):
            # An anomaly detector learns from normal rows: a guessed label would lose a feature.
            self.assume(
                "No label column named: every row is treated as normal reading for training; "
                "name one (e.g. 'label column state') to check detection on known anomalies."
            )
            return Dataset(kind=DatasetKind.CSV, path=ref.path, label_column=None), head
        elif head is not None:
            column, why = guess_label_column(head)
            self.assume(f"No label column named: using '{column}' because {why}.")
        else:
            column = "label"
            self.assume("No label column named: assumed a column called 'label'.")
        return Dataset(kind=DatasetKind.CSV, path=ref.path, label_column=column), head

    # -- classes -----------------------------------------------------------------------------

    def _classes(
        self, task: Task, masked: str, dataset: Dataset
    ) -> tuple[list[str] | None, int | None]:
        if dataset.kind is DatasetKind.DIGITS:
            return [str(d) for d in range(10)], None
        classes = find_classes(masked)
        count = find_class_count(masked)
        if classes is None and dataset.kind is DatasetKind.FOLDER and dataset.path:
            folder = existing_path(dataset.path)
            names = subfolders(folder) if folder is not None and folder.is_dir() else []
            if len(names) >= 2:
                if count is not None and count != len(names):
                    self.assume(
                        f"The request says {count} classes but {dataset.path} has "
                        f"{len(names)} sub-folders: using the sub-folders."
                    )
                return names, None
        if classes is not None:
            if count is not None and count != len(classes):
                self.assume(
                    f"The request says {count} classes but names {len(classes)}: "
                    f"using the named ones ({', '.join(classes)})."
                )
            if task is Task.KEYWORD_SPOTTING and any(
                a.startswith(NO_DATASET_NOTE) for a in self.assumptions
            ):
                extra = [c for c in ("silence", "unknown") if c not in {n.lower() for n in classes}]
                if extra:
                    classes = [*classes, *extra]
                    self.assume(
                        "Keyword spotting also has to know when none of the words is said: "
                        f"added the usual {' and '.join(repr(c) for c in extra)} class"
                        f"{'es' if len(extra) > 1 else ''} (background noise, other words)."
                    )
            return classes, None
        if task is Task.ANOMALY_DETECTION:
            return None, None
        return None, count

    # -- input shape -------------------------------------------------------------------------

    def _quantization(self, masked: str) -> Quantization:
        if _FLOAT.search(masked) and not _INT8_EXPLICIT.search(masked):
            return Quantization.FLOAT32
        if _INT8.search(masked):
            return Quantization.INT8
        self.assume(
            "No number format given: int8 quantization, the usual choice on "
            "microcontrollers (4x smaller than float32)."
        )
        return Quantization.INT8

    @staticmethod
    def _name(task: Task, classes: list[str] | None, dataset: Dataset, board: Board) -> str:
        if dataset.kind is DatasetKind.DIGITS:
            subject = "digits"
        elif classes:
            subject = "_".join(classes[:3])
        elif dataset.path:
            subject = Path(dataset.path.replace("\\", "/").rstrip("/")).stem
        else:
            subject = TASK_SHORT[task]
        slug = _slug(subject)
        if not slug:
            slug = TASK_SHORT[task]
        return f"{slug[:40]}_{_slug(board.id)}"


def _slug(text: str) -> str:
    ascii_only = text.encode("ascii", "ignore").decode()
    slug = re.sub(r"[^A-Za-z0-9_\-]+", "_", ascii_only).strip("_-").lower()
    return re.sub(r"_{2,}", "_", slug)


def _nothing_usable(request: str) -> PlanError:
    shown = " ".join(request.split())
    shown = shown if len(shown) <= 60 else shown[:57] + "..."
    what = f"'{shown}'" if shown else "an empty request"
    return PlanError(
        f"Nothing to build from {what}: say what to recognise, from which data and on which "
        f'board, e.g. "{EXAMPLE_REQUEST}" or "classify 3 gestures from gestures.csv on a '
        'Pi Pico".'
    )


# The planner's regexes are not all linear on pathological text (a 20,000-digit number took
# 11 s): a request is a sentence or a short paragraph, so longer text is refused up front.
MAX_REQUEST_CHARS = 2_000
MAX_NUMBER_DIGITS = 40
_LONG_NUMBER = re.compile(rf"\d{{{MAX_NUMBER_DIGITS + 1}}}")


def check_request(request: str) -> None:
    """PlanError for text too long (or numbers too large) to be a request, read or not."""
    if len(request) > MAX_REQUEST_CHARS:
        raise PlanError(
            f"The request has {len(request):,} characters; the offline planner reads up to "
            f"{MAX_REQUEST_CHARS:,}: say in a sentence or two what to recognise, from which data "
            "and on which board."
        )
    if _LONG_NUMBER.search(request):
        raise PlanError(
            f"The request holds a number of more than {MAX_NUMBER_DIGITS} digits, which no "
            "size, count or budget needs: rephrase it with the figures you mean."
        )


class OfflinePlanner:
    """Deterministic, rule-based planner; works without a network or an API key."""

    name = "offline"

    def plan(self, request: str, *, board: str | None = None) -> ProjectSpec:
        if not isinstance(request, str):
            raise PlanError("The request must be text.")
        check_request(request)
        # No catch-all: the errors a planner means (PlanError, DatasetError, UnknownBoardError)
        # reach the caller as the sentences they are, and anything else is a bug in a reader,
        # which must surface as one (tests/test_plan_offline.py fuzzes the readers for it).
        return _Plan(request, board).run()
