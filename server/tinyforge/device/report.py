"""The `device` section of report.json: what the emulated board measured."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class _Section(BaseModel):
    # Keys a newer or older TinyForge wrote stay in report.json when it is read and rewritten.
    # defer_build: built on first use, not when the language server starts.
    model_config = ConfigDict(extra="allow", defer_build=True)


class TflmInfo(_Section):
    kind: str  # "kit" | "arduino"
    name: str  # "TFLM 90b983c (2026-08-20)"
    commit: str
    path: str


class DeviceReport(_Section):
    """Figures measured by running the project's firmware on an emulated core.

    Unlike the other sections of report.json (tinyforge.report), every field is always written.
    """

    # report.json tells this section from tinyforge.report.DeviceNotMeasured by this field.
    measured: Literal[True] = True
    board: str
    core: str  # the core the firmware is built for: "cortex-m4f"
    emulated_core: str  # the core QEMU runs: "Cortex-M4F"
    machine: str  # "mps2-an386"
    core_note: str = ""
    kernels: str  # "cmsis_nn" | "reference"
    tflm: TflmInfo
    compiler: str

    compile_seconds: float
    compiled_objects: int  # TFLM objects compiled by this run (0: all from the cache)
    tflm_objects: int
    run_seconds: float

    samples: int  # samples run besides the sketch's own
    sample_sources: str = ""  # "64 test", or "10 test, 22 validation" for a small test split
    compared_with: str
    outputs_identical_percent: float
    outputs_max_abs_diff: float  # in the output's own units (int8 steps, or float)
    argmax_agreement_percent: float
    accuracy: float | None = None  # on the samples, from the device's outputs
    sketch_output: str | None = None  # the sketch's own printed result line

    arena_used_bytes: int  # interpreter->arena_used_bytes() in the sketch, on the target
    arena_smallest_bytes: int  # smallest arena that allocates and runs, on the target
    arena_firmware_bytes: int  # kTensorArenaSize as compiled into the firmware
    arena_static_target_bytes: int  # TinyForge's static 32-bit estimate
    arena_note: str
    # RecordingMicroAllocator on the target, at the firmware's arena size, and the static
    # simulation's parts (head, tail per kind) it is compared with.
    arena_head_bytes: int = 0
    arena_tail_bytes: int = 0
    arena_tail_kinds: dict[str, int] = Field(default_factory=dict)
    arena_static_parts: dict[str, int] = Field(default_factory=dict)

    flash: dict[str, int]  # model, TFLM runtime, kernels, CMSIS-NN, application (this image)
    ram: dict[str, int]  # tensor arena, TFLM runtime, application (static RAM)
    kernel_flash: dict[str, int] = Field(default_factory=dict)  # per operator
    flash_estimate_before: dict[str, int] = Field(default_factory=dict)  # runtime_costs.toml

    instructions_per_inference: int
    instructions_min: int
    instructions_max: int
    clock_hz: int
    cycles_per_instruction: float
    latency_ms_estimate: float
    latency_note: str

    serial: list[str] = Field(default_factory=list)  # the sketch's first lines
    problems: list[str] = Field(default_factory=list)

    @property
    def headline(self) -> str:
        return f"measured on an emulated {self.emulated_core} ({self.machine})"
