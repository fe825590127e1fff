"""ProjectSpec: the one structure that flows through the pipeline, saved as tinyforge.toml."""

from __future__ import annotations

import tomllib
from enum import StrEnum
from pathlib import Path
from typing import Any

import tomli_w
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from tinyforge.errors import TinyForgeError

SPEC_FILENAME = "tinyforge.toml"
# What tomllib's RecursionError means, said as the other TOML errors are.
TOO_DEEP = "arrays or inline tables nested too deeply"


class Task(StrEnum):
    IMAGE_CLASSIFICATION = "image_classification"
    SENSOR_CLASSIFICATION = "sensor_classification"
    KEYWORD_SPOTTING = "keyword_spotting"
    ANOMALY_DETECTION = "anomaly_detection"


class DatasetKind(StrEnum):
    DIGITS = "digits"
    FOLDER = "folder"
    CSV = "csv"
    # A NumPy array of model inputs (N samples): calibrates a model the user brings.
    NPY = "npy"


class Quantization(StrEnum):
    INT8 = "int8"
    FLOAT32 = "float32"


class _Strict(BaseModel):
    # defer_build: validators are built on first use, not when the language server starts.
    model_config = ConfigDict(extra="forbid", use_enum_values=False, defer_build=True)


class Dataset(_Strict):
    kind: DatasetKind
    path: str | None = Field(
        default=None, description="Image folder (one sub-folder per class) or CSV file."
    )
    label_column: str | None = Field(default=None, description="CSV column holding the label.")
    features: list[str] | None = Field(
        default=None,
        description="CSV columns the model reads, in the file's order; unset: every column "
        "except the label.",
    )
    other_class: str | None = Field(
        default=None,
        description="A class of `classes` (e.g. 'unknown') that gathers every label (CSV value "
        "or class folder) of the data that `classes` does not name.",
    )

    @model_validator(mode="after")
    def _path_matches_kind(self) -> Dataset:
        if self.kind is not DatasetKind.DIGITS and not self.path:
            raise ValueError(f"a '{self.kind.value}' dataset needs a path")
        return self


class ModelSource(_Strict):
    """A model the user brings (`tinyforge convert`) instead of one TinyForge trains."""

    source: str = Field(description="The model file (.onnx), relative to the project folder.")
    input_shape: list[int] | None = Field(
        default=None,
        description="The fixed input shape the model is converted for, in its own layout "
        "(batch 1 first), when the file leaves dimensions open.",
    )


class Budget(_Strict):
    """Effective limits: the user's when the request states one, otherwise the board's."""

    ram_bytes: int = Field(gt=0)
    flash_bytes: int = Field(gt=0)


class Training(_Strict):
    epochs: int = Field(default=40, ge=1, le=10_000)
    batch_size: int = Field(default=32, ge=1)
    seed: int = 0
    test_fraction: float = Field(default=0.2, gt=0.0, lt=0.9)
    validation_fraction: float = Field(default=0.1, gt=0.0, lt=0.9)


class Timeouts(_Strict):
    """Longest run of each stage, in seconds (None: no limit): a stage that runs out is stopped,
    its process tree killed, the project restored, and the error names the stage."""

    train: float | None = Field(default=None, gt=0)
    convert: float | None = Field(default=None, gt=0)


class ProjectSpec(_Strict):
    name: str = Field(default="tinyml_project", pattern=r"^[A-Za-z0-9_\-]+$")
    request: str = ""
    task: Task
    board: str
    input_shape: list[int] = Field(min_length=1, max_length=4)
    classes: list[str] | None = None
    num_classes: int | None = Field(default=None, ge=2)
    dataset: Dataset
    budget: Budget
    quantization: Quantization = Quantization.INT8
    assumptions: list[str] = Field(default_factory=list)
    training: Training = Field(default_factory=Training)
    timeouts: Timeouts | None = None
    # None: TinyForge writes and trains the model (train.py). Set: the user's own model file.
    model: ModelSource | None = None

    @model_validator(mode="after")
    def _consistent(self) -> ProjectSpec:
        if any(d <= 0 for d in self.input_shape):
            raise ValueError("input_shape dimensions must be positive")
        if self.classes is not None:
            if len(set(self.classes)) != len(self.classes):
                raise ValueError("classes must be distinct")
            if self.num_classes is None:
                self.num_classes = len(self.classes)
            elif self.num_classes != len(self.classes):
                raise ValueError(
                    f"num_classes is {self.num_classes} but {len(self.classes)} classes are named"
                )
        other = self.dataset.other_class
        if other is not None and other not in (self.classes or []):
            raise ValueError(f"dataset.other_class '{other}' must be one of the classes")
        return self

    # -- persistence -----------------------------------------------------------------

    def to_toml(self) -> str:
        data = self.model_dump(mode="json", exclude_none=True)
        header = (
            "# TinyForge project spec. Edit freely: `tinyforge build` reads it.\n"
            "# Schema: `tinyforge plan --schema`.\n\n"
        )
        return header + tomli_w.dumps(data)

    def save(self, project_dir: Path) -> Path:
        path = Path(project_dir) / SPEC_FILENAME
        path.write_text(self.to_toml(), encoding="utf-8")
        return path

    @classmethod
    def from_toml_text(cls, text: str, source: str = SPEC_FILENAME) -> ProjectSpec:
        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise SpecError(f"{source} is not valid TOML: {exc}") from exc
        except RecursionError:  # tomllib recurses per nested array or inline table
            raise SpecError(f"{source} is not valid TOML: {TOO_DEEP}.") from None
        return cls.from_dict(data, source)

    @classmethod
    def from_dict(cls, data: dict[str, Any], source: str = "spec") -> ProjectSpec:
        try:
            return cls.model_validate(data)
        except ValidationError as exc:
            raise SpecError(f"{source} is invalid: {describe_validation_error(exc)}") from exc

    @classmethod
    def load(cls, project_dir: Path) -> ProjectSpec:
        path = Path(project_dir) / SPEC_FILENAME
        if not path.is_file():
            raise SpecError(
                f"No {SPEC_FILENAME} in {project_dir}: create one with `tinyforge new`."
            )
        try:
            text = path.read_text(encoding="utf-8")
        except UnicodeDecodeError as exc:
            raise SpecError(
                f"{path} is not UTF-8 text (byte {exc.start}): save it as UTF-8."
            ) from None
        except OSError as exc:
            raise SpecError(f"Cannot read {path}: {exc.strerror or exc}.") from None
        return cls.from_toml_text(text, str(path))


class SpecError(TinyForgeError):
    """tinyforge.toml is missing or does not describe a valid project."""


def describe_validation_error(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors():
        loc = ".".join(str(p) for p in err["loc"]) or "spec"
        parts.append(f"{loc}: {err['msg']}")
    return "; ".join(parts)


def json_schema() -> dict[str, Any]:
    return ProjectSpec.model_json_schema()
