"""Verify on an emulated board from the editor, and what it measured as diagnostics.

`tinyforge.verify` compiles the project's firmware with real TFLM for the board's core and runs
it in QEMU (tinyforge.device, as `tinyforge verify` does); the result goes into the `device`
section of report.json. From
that section, figures that break the project come back as diagnostics, "measured on an emulated
…" to tell them from the estimates:

- RAM or flash of the image (the linker map's parts, C library aside) plus the board's Arduino
  core baseline over the budget: on tinyforge.toml's [budget] line;
- a firmware arena smaller than the smallest that runs, and outputs that differ from the host
  interpreter with the reference kernels: on src/main.cpp's kTensorArenaSize line (published
  directly: editors seldom send C++ files to this server).
"""

from __future__ import annotations

import re
import threading
import tomllib
from pathlib import Path
from typing import Any

import attrs
from lsprotocol import types as lsp

from tinyforge.device.report import DeviceReport
from tinyforge.errors import TinyForgeError
from tinyforge.lsp.analyses import DocumentAnalysis
from tinyforge.lsp.arguments import project_argument
from tinyforge.lsp.documents import doc_path, file_uri, find_key_line, line_range, text_of
from tinyforge.lsp.progress import long_job
from tinyforge.lsp.server import TinyForgeServer
from tinyforge.progress import Progress
from tinyforge.report import DeviceNotMeasured, read_report
from tinyforge.spec import SPEC_FILENAME

SOURCE = "tinyforge (device)"
STORE = "device"  # the diagnostics store's source of what the emulated board found
MAIN_CPP = Path("src") / "main.cpp"
# Parts of the image that the board's Arduino core baseline already counts.
_IN_BASELINE = ("C library",)
_ARENA_LINE = re.compile(r"^\s*(?:static\s+)?constexpr\s+size_t\s+kTensorArenaSize\s*=")


@attrs.define(frozen=True)
class VerifyOptions:
    """verify_project's options, each optional (its defaults: the board's core, CMSIS-NN)."""

    kernels: str | None = None  # "reference" | "cmsis_nn"
    core: str | None = None  # e.g. "cortex-m7"
    tflm: str | None = None  # a TFLM source folder
    samples: int | None = None

    def kwargs(self) -> dict[str, Any]:
        options: dict[str, Any] = {
            "kernels": self.kernels or None,
            "core": self.core or None,
            "tflm": Path(self.tflm) if self.tflm else None,
        }
        if self.samples is not None and self.samples > 0:
            options["samples"] = self.samples
        return options


DEFAULTS = VerifyOptions()


def register(server: TinyForgeServer) -> None:
    server.features.checks.append((lambda name: name == SPEC_FILENAME, spec_check))

    @server.command("tinyforge.verify")
    async def verify_command(
        ls: TinyForgeServer, project: str = "", options: VerifyOptions = DEFAULTS
    ) -> dict[str, Any]:
        """The firmware compiled with real TFLM, run on the board's emulated core; report.json
        gets a `device` section, and what it measured over the budget becomes diagnostics."""
        root = project_argument(ls, project)
        title = "TinyForge: verifying on an emulated board"
        try:
            return await long_job(ls, title, lambda p, c: verify(root, options.kwargs(), p, c))
        finally:
            refresh(ls, root)  # whatever the outcome: the section says why when it failed


def _kb(n: int) -> str:
    return f"{n / 1024:.1f} KB"


# -- the command's work (in a worker thread, lsp/progress.py) -------------------------------


def verify(
    project: Path, options: dict[str, Any], progress: Progress, cancel: threading.Event
) -> dict[str, Any]:
    """`tinyforge verify`: verify_project, its section merged into report.json with the verdict
    on measured parts. When the board cannot be emulated here (ESP32, no toolchain, no TFLM
    source) or the firmware does not run, the section says why instead (older figures would
    speak for a firmware that is gone); the error goes on to the editor."""
    from tinyforge import pipeline
    from tinyforge.device.verify import DeviceUnavailable, TflmSourceError, ToolchainError
    from tinyforge.errors import StageError

    try:
        report = pipeline.verify_on_device(project, progress=progress, cancel=cancel, **options)
    except (DeviceUnavailable, TflmSourceError, ToolchainError, StageError) as exc:
        write_device_section(project, DeviceNotMeasured(reason=str(exc)))
        raise
    assert isinstance(report.device, DeviceReport)  # verify_on_device measured it
    headline = report.device.headline
    progress.update(1.0, headline)
    json_report = report.to_json()
    return {"report": json_report, "device": json_report["device"], "headline": headline}


def write_device_section(project: Path, section: DeviceReport | DeviceNotMeasured) -> None:
    """report.json's device section replaced (atomically); nothing without a build's report."""
    report = read_report(project)
    if report is None:
        return
    report.device = section
    report.write(project)


# -- diagnostics ------------------------------------------------------------------------------


def _measured_section(project: Path) -> DeviceReport | None:
    report = read_report(project)
    device = report.device if report is not None else None
    return device if isinstance(device, DeviceReport) else None


def _parts(parts: dict[str, int]) -> dict[str, int]:
    return {k: v for k, v in parts.items() if k not in _IN_BASELINE}


def _over_budget(device: DeviceReport, spec: Any) -> list[tuple[str, str]]:
    """(resource, sentence) for each of RAM and flash that is over the spec's budget."""
    from tinyforge.boards import get_board
    from tinyforge.check import runtime_costs

    board = get_board(spec.board)
    if device.board != board.id:
        return []  # measured for another board: the next verify speaks for this one
    costs = runtime_costs(board.family)
    found = []
    for resource, measured, baseline, limit in (
        ("ram", device.ram, costs.app_ram, spec.budget.ram_bytes),
        ("flash", device.flash, costs.app_flash, spec.budget.flash_bytes),
    ):
        parts = _parts(measured)
        figure = sum(parts.values()) + baseline
        if not parts or figure <= limit:
            continue
        detail = ", ".join(f"{k} {_kb(v)}" for k, v in sorted(parts.items(), key=lambda kv: -kv[1]))
        found.append(
            (
                resource,
                f"{resource.upper() if resource == 'ram' else 'Flash'} {_kb(figure)} "
                f"{device.headline} exceeds the {_kb(limit)} budget by {_kb(figure - limit)}: "
                f"{detail}, plus {_kb(baseline)} for the {board.id} Arduino core (estimate).",
            )
        )
    return found


def spec_check(server: TinyForgeServer, analysis: DocumentAnalysis) -> list[lsp.Diagnostic]:
    return spec_device_diagnostics(analysis.text, analysis.path)


def spec_device_diagnostics(text: str, spec_path: Path | None) -> list[lsp.Diagnostic]:
    """Measured RAM/flash over the budget the spec's text states, on its [budget] lines."""
    from pydantic import ValidationError

    from tinyforge.spec import ProjectSpec

    device = _measured_section(spec_path.parent) if spec_path is not None else None
    if device is None:
        return []
    try:
        spec = ProjectSpec.model_validate(tomllib.loads(text))
        over = _over_budget(device, spec)
    except (tomllib.TOMLDecodeError, RecursionError, ValidationError, TinyForgeError):
        return []  # the spec's own diagnostics say what is wrong with it
    lines = text.splitlines() or [""]
    found = []
    for resource, message in over:
        key = "ram_bytes" if resource == "ram" else "flash_bytes"
        number = find_key_line(lines, key, "budget")
        number = number if number is not None else (find_key_line(lines, "board") or 0)
        found.append(
            lsp.Diagnostic(
                range=line_range(number, lines[number]),
                message=message,
                severity=lsp.DiagnosticSeverity.Error,
                source=SOURCE,
                code=f"device-over-budget-{resource}",
            )
        )
    return found


def main_device_diagnostics(project: Path, text: str) -> list[lsp.Diagnostic]:
    """The firmware's arena too small to run, or outputs unlike the host's: on kTensorArenaSize."""
    device = _measured_section(project)
    if device is None:
        return []
    lines = text.splitlines() or [""]
    number = next((n for n, t in enumerate(lines) if _ARENA_LINE.match(t)), None)
    if number is None:
        number = next((n for n, t in enumerate(lines) if "kTensorArenaSize" in t), 0)
    rng = line_range(number, lines[number])
    found = []
    firmware = device.arena_firmware_bytes
    smallest = device.arena_smallest_bytes
    if firmware and smallest and firmware < smallest:
        found.append(
            lsp.Diagnostic(
                range=rng,
                message=(
                    f"kTensorArenaSize is {firmware:,} bytes but the model needs {smallest:,} "
                    f"({device.headline}, {device.kernels} kernels): "
                    "AllocateTensors() fails on the board."
                ),
                severity=lsp.DiagnosticSeverity.Error,
                source=SOURCE,
                code="device-arena-too-small",
            )
        )
    identical = device.outputs_identical_percent
    if device.kernels == "reference" and identical < 100:
        found.append(
            lsp.Diagnostic(
                range=rng,
                message=(
                    f"Only {identical:g}% of the outputs {device.headline} are identical to the "
                    f"host TFLM interpreter's with the reference kernels (largest difference "
                    f"{device.outputs_max_abs_diff})."
                ),
                severity=lsp.DiagnosticSeverity.Warning,
                source=SOURCE,
                code="device-outputs-differ",
            )
        )
    return found


def _project_of_main(uri: str) -> Path | None:
    path = doc_path(uri)
    if path is None or path.name != MAIN_CPP.name or path.parent.name != MAIN_CPP.parent.name:
        return None
    return path.parent.parent


def update_main(server: TinyForgeServer, uri: str) -> bool:
    """What the emulated board found in src/main.cpp (when `uri` is one), into the store.
    False when there is nothing to say there, now or before (nothing to publish)."""
    project = _project_of_main(uri)
    if project is None:
        return False
    main = project / MAIN_CPP
    found = main_device_diagnostics(project, text_of(server, main)) if main.is_file() else []
    if not found and uri not in server.diagnostics.uris(STORE):
        return False
    server.diagnostics.put(STORE, uri, found)
    return True


def publish_main(server: TinyForgeServer, project: Path) -> None:
    """Publish src/main.cpp's diagnostics: the device's, with its last PlatformIO build's (the
    file is published directly: editors seldom send C++ files to this server)."""
    uri = file_uri(project / MAIN_CPP)
    if update_main(server, uri):
        server.diagnostics.publish(uri)


def refresh(server: TinyForgeServer, project: Path) -> None:
    """After a verify, whatever its outcome: the open files' diagnostics and main.cpp's."""
    from tinyforge.lsp.diagnostics import reanalyse

    reanalyse(server)
    publish_main(server, project)


def republish(server: TinyForgeServer) -> None:
    """After any long job (a build rewrites report.json and main.cpp): refresh main.cpp's."""
    for uri in sorted(server.diagnostics.uris(STORE)):
        project = _project_of_main(uri)
        if project is not None:
            publish_main(server, project)
