"""The typed contracts of what TinyForge reports: report.json, `convert`/`inspect --json`, and
the figures the editor shows.

One model per document, pydantic like the spec (spec.py), so that every producer (the Keras
pipeline, ONNX conversion, inspect, health, the device stage) writes the same fields and every
reader (CLI, language server, repair, deploy) reads attributes instead of string keys:

- `MemoryFigures`: model size, tensor arena, RAM and flash against the budget, the verdict.
  Every report below carries them.
- `BuildReport`: report.json of a build (a Keras model TinyForge trained, or an ONNX model the
  user brought: `tinyforge convert`, whose `--json` prints the same report).
- `InspectReport`: `tinyforge inspect --json` of one model file.
- `ProjectStatus`, `InspectView`: what the language server's `tinyforge.projectStatus` and
  `tinyforge.inspect` commands return to the editor.

The JSON is the same JSON the dicts before these models wrote: a field a producer did not set is
left out (a Keras build has no `onnx` section, a conversion no `health`), a field set to None is
written as null, and keys these models do not know (a newer or older TinyForge's) are kept on
load and written back. `json_schema()` (`tinyforge report --schema`) is the schema the VS Code
client's TypeScript types are generated from (client/schema/, `npm run types`).
"""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, ClassVar, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SerializerFunctionWrapHandler,
    ValidationError,
    model_serializer,
)
from pydantic.json_schema import GenerateJsonSchema, JsonSchemaValue, models_json_schema
from pydantic_core import core_schema

from tinyforge.check import Verdict, Violation
from tinyforge.device.report import DeviceReport
from tinyforge.generate import REPORT_FILE
from tinyforge.health import Finding
from tinyforge.spec import Budget

if TYPE_CHECKING:  # the language server imports this module: no TFLM or flatbuffers for it
    from tinyforge.memory.measure import ArenaMeasurement
    from tinyforge.memory.tflite_model import TfliteModel


class Contract(BaseModel):
    """Every field is written, set or not (DeviceReport's shape); unknown keys are kept."""

    # populate_by_name: fields whose JSON key is a Python keyword or type (`float`) take both.
    # validate_assignment: `report.device = {...}` stores the model, not the dict.
    # defer_build: a model's validator is built when first used, not when the language server
    # imports this module at start.
    model_config = ConfigDict(
        extra="allow", populate_by_name=True, validate_assignment=True, defer_build=True
    )


class Sparse(Contract):
    """Only the fields a producer set (or a loaded file held) are written.

    Assigning a field sets it; appending to a list field it did not set does not: producers
    pass every field they mean to write when they construct the model.
    """

    # Keys written first, for a person reading the file (the report's subject).
    json_lead: ClassVar[tuple[str, ...]] = ()
    # Fields written even when left at their default (a discriminator).
    json_always: ClassVar[tuple[str, ...]] = ()

    @model_serializer(mode="wrap")
    def _only_set(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        data: dict[str, Any] = handler(self)
        for name, info in type(self).model_fields.items():
            if name not in self.model_fields_set and name not in self.json_always:
                data.pop(name, None)
                if info.alias:
                    data.pop(info.alias, None)
        lead = {key: data.pop(key) for key in self.json_lead if key in data}
        return {**lead, **data}

    def to_json(self) -> dict[str, Any]:
        """The JSON-ready dict (keys as written in the files)."""
        return self.model_dump(mode="json", by_alias=True)


# --- the memory figures ----------------------------------------------------------------------


class MemoryFigures(Sparse):
    """What a model needs on the board, and whether it fits (check.check_budget)."""

    model_bytes: int | None = None  # the .tflite flatbuffer (an .onnx file's size, unconverted)
    ops: dict[str, int] = Field(default_factory=dict)  # TFLite builtin → count
    unsupported_ops: list[str] | None = None  # ops the installed TFLM cannot run (None: not asked)
    # The tensor arena: measured in the real TFLM (64-bit host build), RecordingMicroAllocator's
    # total, the static estimate, the 32-bit target figure, and kTensorArenaSize in main.cpp.
    arena_bytes: int | None = None
    arena_bytes_recorded: int | None = None
    arena_bytes_estimate: int | None = None
    arena_bytes_target: int | None = None
    arena_bytes_firmware: int | None = None
    ram_bytes_estimate: int | None = None
    flash_bytes_estimate: int | None = None
    ram_parts: dict[str, int] = Field(default_factory=dict)
    flash_parts: dict[str, int] = Field(default_factory=dict)
    budget: Budget | None = None
    fits: bool | None = None  # None: no figures, no verdict
    violations: list[Violation] = Field(default_factory=list)

    def set_verdict(self, verdict: Verdict) -> None:
        """The verdict's RAM and flash figures, parts, budget and violations."""
        self.ram_bytes_estimate = verdict.ram_bytes_estimate
        self.flash_bytes_estimate = verdict.flash_bytes_estimate
        self.ram_parts = verdict.ram_parts
        self.flash_parts = verdict.flash_parts
        self.budget = Budget.model_validate(verdict.budget)
        self.fits = verdict.fits
        self.violations = list(verdict.violations)


# --- report.json -----------------------------------------------------------------------------


class DeviceNotMeasured(Sparse):
    """report.json's `device` section when the firmware did not run on an emulated core."""

    json_always = ("measured",)  # what tells this section from a DeviceReport

    measured: Literal[False] = False
    reason: str | None = None  # ESP32, no toolchain or TFLM source, --no-device, the error
    failed: bool | None = None  # True: it was tried and the firmware failed (the build stays)


DeviceSection = Annotated[DeviceReport | DeviceNotMeasured, Field(discriminator="measured")]


class HealthSection(Sparse):
    """report.json's `health` section (health.report.after_build): findings, errors first."""

    json_lead = ("ok", "findings")  # for a reader of report.json

    ok: bool = True  # False: an error finding (the model is useless or will crash)
    findings: list[Finding] = Field(default_factory=list)
    data: dict[str, Any] | None = None  # health.data.DataReport: source, samples, class counts
    splits: dict[str, Any] | None = None
    baseline: dict[str, Any] | None = None  # health.baseline.Baseline
    quantization: dict[str, Any] | None = None
    seconds: float | None = None


class TensorIo(Sparse):
    """The deployed model's input or output tensor (onnx_worker)."""

    name: str | None = None
    shape: list[int] = Field(default_factory=list)
    dtype: str | None = None
    scale: float | None = None
    zero_point: int | None = None


class OnnxIo(Sparse):
    name: str
    declared_shape: list[int | str] | None = None  # as in the file: a name for open dimensions
    shape: list[int] = Field(default_factory=list)


class OnnxSection(Sparse):
    """What the ONNX file declared (convert.onnx.check_onnx)."""

    opset: int
    producer: str = ""
    input: OnnxIo
    output: OnnxIo
    ops: dict[str, int] = Field(default_factory=dict)
    params: int = 0


class CalibrationInfo(Sparse):
    kind: str  # "npy" | "images" | "dataset" | "random" | ...
    source: str  # in words
    samples: int
    warning: str | None = None


class Disagreement(Sparse):
    sample: int
    max_abs_diff: float
    element: int | None = None
    reference_top1: int | None = None
    converted_top1: int | None = None


class Comparison(Sparse):
    """One model's outputs against the reference's (onnx_worker.compare)."""

    measure: str  # "top-1" or "within 0.05"
    agreement: float  # share of inputs that agree
    agreeing: int | None = None
    samples: int | None = None
    max_abs_diff: float
    mean_abs_diff: float | None = None
    disagreements: list[Disagreement] = Field(default_factory=list)


class Agreement(Sparse):
    """A converted model's agreement with the ONNX model it came from."""

    threshold: float | None = None
    float_: Comparison | None = Field(default=None, alias="float")
    int8: Comparison | None = None
    tflm: Comparison | None = None


class BuildReport(MemoryFigures):
    """report.json: what a build measured, and whether the model is any good and fits."""

    json_lead = ("project", "request", "source_model", "format", "board", "task", "quantization")

    project: str
    request: str | None = None
    # A model the user brought (`tinyforge convert`): its file and format ("onnx").
    source_model: str | None = None
    format: str | None = None
    board: str | None = None
    task: str | None = None
    quantization: str | None = None
    onnx: OnnxSection | None = None
    classes: list[str] = Field(default_factory=list)
    params: int | None = None
    epochs_run: int | None = None
    samples: dict[str, int] | None = None  # per split: train, val, test
    input: TensorIo | None = None
    output: TensorIo | None = None
    calibration: CalibrationInfo | None = None
    agreement: Agreement | None = None
    float_agreement: float | None = None
    float_max_abs_diff: float | None = None
    int8_agreement: float | None = None
    int8_max_abs_diff: float | None = None
    tflm_agreement: float | None = None
    # On the test split (None for a brought model: no labels come with it).
    float_accuracy: float | None = None
    int8_accuracy: float | None = None
    tflm_accuracy: float | None = None
    conversion_seconds: float | None = None
    model_bytes_float32: int | None = None
    runs_on_tflm: bool | None = None
    # "measured" once the device stage ran: every part but the Arduino core's baseline.
    figures: Literal["measured", "estimated"] | None = None
    device: DeviceSection | None = None
    health: HealthSection | None = None
    history: dict[str, list[float]] | None = None  # Keras history: loss, val_loss, …
    tflite: str | None = None  # the deployed .tflite a conversion wrote
    stage_seconds: dict[str, float] = Field(default_factory=dict)
    notices: list[str] = Field(default_factory=list)

    @property
    def measured(self) -> bool:
        """The device stage ran: RAM and flash figures are of the image built for the core."""
        return isinstance(self.device, DeviceReport)

    @property
    def healthy(self) -> bool:
        """False when a health check found an error: e.g. accuracy at chance level."""
        return self.health is None or self.health.ok

    def write(self, project_dir: Path) -> Path:
        """report.json in the project, replaced atomically (a reader never sees half of it)."""
        path = Path(project_dir) / REPORT_FILE
        tmp = path.with_name(f".{REPORT_FILE}.{os.getpid()}.{threading.get_ident()}.tmp")
        tmp.write_text(json.dumps(self.to_json(), indent=2), encoding="utf-8")
        tmp.replace(path)
        return path

    @classmethod
    def read(cls, path: Path) -> BuildReport | None:
        """A report.json, or None when it is missing, unreadable or not a report."""
        try:
            return cls.model_validate_json(Path(path).read_bytes())
        except (OSError, ValidationError):
            return None


def build_report(
    *,
    project: str,
    board: str,
    quantization: str,
    classes: list[str],
    params: int | None,
    model: TfliteModel,
    arena: ArenaMeasurement | None,
    arena_target: int | None,
    verdict: Verdict,
    notices: list[str],
    stage_seconds: dict[str, float],
    **fields: Any,
) -> BuildReport:
    """The one report.json builder: the fields every build front end (Keras, ONNX) shares,
    then its own `fields` (validated by name: a misspelt one is an error, not a new key)."""
    from tinyforge.generate.firmware import firmware_arena_bytes

    unknown = set(fields) - set(BuildReport.model_fields)
    if unknown:
        raise TypeError(f"build_report got fields report.json does not have: {sorted(unknown)}")
    report = BuildReport(
        project=project,
        board=board,
        quantization=quantization,
        classes=classes,
        params=params,
        model_bytes=model.model_bytes,
        ops=model.op_counts(),
        arena_bytes=arena.arena_bytes if arena else None,
        arena_bytes_recorded=arena.recorded_total if arena else None,
        # 0 or None: no figure (a model TFLM cannot run and the static estimate could not size)
        arena_bytes_target=arena_target or None,
        # kTensorArenaSize in src/main.cpp: the measurement plus the firmware's margin.
        arena_bytes_firmware=firmware_arena_bytes(arena.arena_bytes) if arena else None,
        notices=notices,
        stage_seconds=stage_seconds,
    )
    report.set_verdict(verdict)
    if not arena_target:
        report.ram_bytes_estimate = None  # no arena figure, no RAM figure
    for name, value in fields.items():
        setattr(report, name, value)
    return report


def verdict_fields(verdict: Verdict) -> dict[str, Any]:
    """The verdict as report.json writes it (MemoryFigures.set_verdict on a model)."""
    figures = MemoryFigures()
    figures.set_verdict(verdict)
    return figures.to_json()


def read_report(project_dir: Path) -> BuildReport | None:
    """The project's report.json (None: no build yet, or not readable)."""
    return BuildReport.read(Path(project_dir) / REPORT_FILE)


def current_report(project_dir: Path, script: str = "train.py") -> BuildReport | None:
    """report.json when it is newer than the model script it was built from (else the editor's
    static estimate of the script speaks, not an older build's figures)."""
    path, source = Path(project_dir) / REPORT_FILE, Path(project_dir) / script
    try:
        if not path.is_file() or (
            source.is_file() and path.stat().st_mtime < source.stat().st_mtime
        ):
            return None
    except OSError:
        return None
    return BuildReport.read(path)


def load_findings(report_path: Path) -> list[Finding]:
    """The health findings of a report.json ([] when it has none or cannot be read).

    JSON only: the language server calls this on every change of tinyforge.toml.
    """
    report = BuildReport.read(report_path)
    return list(report.health.findings) if report is not None and report.health else []


def write_report(project_dir: Path, report: BuildReport) -> Path:
    """report.json, replaced atomically: once per build, after its last stage."""
    return report.write(project_dir)


# --- tinyforge inspect -----------------------------------------------------------------------


class LayerRow(Sparse):
    """One tensor-producing op (memory.estimate.LayerInfo), or a layer of a model script."""

    index: int
    name: str
    tensor: str | None = None  # the output tensor's full name (TFLite models)
    op: str
    output_shape: list[int] = Field(default_factory=list)
    dtype: str | None = None
    params_bytes: int
    activation_bytes: int
    macs: int


class InspectReport(MemoryFigures):
    """`tinyforge inspect --json`: what one model file needs on a microcontroller."""

    json_lead = ("model", "format")

    model: str | None = None  # the file
    format: str | None = None  # "tflite" | "onnx" | "keras"
    onnx_ops: dict[str, int] | None = None
    tflite_micro_version: str | None = None
    arena_bytes_target_estimate: int | None = None
    arena_floor_bytes: int | None = None
    arena_head_bytes: int | None = None
    arena_tail_bytes_estimate: int | None = None
    arena_tail_parts_estimate: dict[str, int] | None = None
    arena_measured_parts: dict[str, int] | None = None
    layers: list[LayerRow] = Field(default_factory=list)
    largest_tensor: str | None = None
    agreement: dict[str, Comparison | None] | None = None  # a converted .onnx: float, int8
    keras_estimate: dict[str, Any] | None = None  # the Keras definition's own static estimate
    onnx_estimate: dict[str, Any] | None = None  # an unconverted .onnx, planned op by op
    health: list[Finding] | None = None  # quantization health of a .tflite
    board: str | None = None
    runtime_costs_family: str | None = None
    budget_source: str | None = None  # where the limits come from, in words
    problems: list[str] = Field(default_factory=list)
    notes: list[str] = Field(default_factory=list)
    seconds: dict[str, float] = Field(default_factory=dict)

    @classmethod
    def unmeasured(cls, **fields: Any) -> InspectReport:
        """A report with `fields`, and the figures every inspect writes null until known."""
        return cls(**{**dict.fromkeys(_INSPECT_FIGURES), **fields})


# What `inspect --json` always holds, a .tflite's and an .onnx's alike (null: not known).
_INSPECT_FIGURES = (
    "unsupported_ops",
    "arena_bytes",
    "arena_bytes_recorded",
    "arena_bytes_estimate",
    "arena_bytes_target",
    "arena_bytes_target_estimate",
    "arena_floor_bytes",
)


# --- the editor ------------------------------------------------------------------------------


class ProjectStatus(Sparse):
    """The `tinyforge.projectStatus` command: the status bar's board and figures (every field
    but `error` is always there: None when there is no figure yet)."""

    ok: bool
    error: str | None = None
    root: str | None
    source: str  # where the board comes from, in words
    board: str | None
    board_name: str | None
    ram_budget: int | None
    flash_budget: int | None
    ram_bytes_estimate: int | None
    flash_bytes_estimate: int | None
    arena_bytes: int | None  # the 32-bit target arena
    fits: bool | None
    measured: bool  # True: from the last build's report.json
    model_file: str | None
    problems: list[str]


class InspectView(InspectReport):
    """The `tinyforge.inspect` command: a model file's inspect report, or a project's figures
    (per layer from its model script or model.tflite, RAM and flash from its report.json)."""

    ok: bool
    error: str | None = None
    kind: Literal["project", "model"] | None = None
    title: str | None = None
    root: str | None = None
    measured: bool | None = None
    history: dict[str, list[float]] | None = None
    float_accuracy: float | None = None
    int8_accuracy: float | None = None
    tflm_accuracy: float | None = None
    device: DeviceSection | None = None
    fit: dict[str, Any] | None = None  # the last `tinyforge fit`: its front, choice and plot


# --- the schema ------------------------------------------------------------------------------

SCHEMA_MODELS: tuple[type[BaseModel], ...] = (
    BuildReport,
    InspectReport,
    ProjectStatus,
    InspectView,
)


class _WrittenSchema(GenerateJsonSchema):
    """The schema of the JSON as written: a field the JSON always holds is required (every
    field of a Contract that is not Sparse, of a dataclass, and Sparse's `json_always`), so the
    client's types need no check for what is always there.

    Types keep their titles, fields do not (json-schema-to-typescript would make a type of each
    titled field: `export type ArenaBytes = number | null`)."""

    def field_title_should_be_set(self, schema: Any) -> bool:
        return False

    def model_schema(self, schema: core_schema.ModelSchema) -> JsonSchemaValue:
        json_schema = super().model_schema(schema)
        model = schema["cls"]
        always = model.json_always if issubclass(model, Sparse) else tuple(model.model_fields)
        return _require(json_schema, always)

    def dataclass_schema(self, schema: core_schema.DataclassSchema) -> JsonSchemaValue:
        # dataclasses.asdict (Violation, Finding) writes every field.
        json_schema = super().dataclass_schema(schema)
        return _require(json_schema, tuple(json_schema.get("properties", {})))


def _require(json_schema: JsonSchemaValue, names: tuple[str, ...]) -> JsonSchemaValue:
    properties = json_schema.get("properties", {})
    required = list(json_schema.get("required", []))
    required += [name for name in names if name in properties and name not in required]
    if required:
        json_schema["required"] = required
    return json_schema


def json_schema() -> dict[str, Any]:
    """One JSON schema for every contract above (its $defs), the client's TypeScript types."""
    _, top = models_json_schema(
        [(model, "validation") for model in SCHEMA_MODELS],
        ref_template="#/$defs/{model}",
        schema_generator=_WrittenSchema,
        title="TinyForgeReports",
        description="report.json, `tinyforge inspect --json` and the editor's figures "
        "(server/tinyforge/report.py; regenerate: `tinyforge report --schema`).",
    )
    top["anyOf"] = [{"$ref": f"#/$defs/{model.__name__}"} for model in SCHEMA_MODELS]
    return top
