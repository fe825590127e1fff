"""Deploy: build the generated PlatformIO project with the real `pio`, upload it, monitor it.

What PlatformIO and the compiler print becomes `Problem`s the CLI prints and the editor shows
as diagnostics: compiler errors on their file and line, a memory overflow on the `board =`
line of platformio.ini with the figures that explain it (by how much, the arena, the model) and
what would fix it. The size lines of a good build are compared with TinyForge's estimate.
"""

from __future__ import annotations

import json
import re
import subprocess
import threading
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from tinyforge import jobs
from tinyforge.boards import Board, all_boards, get_board
from tinyforge.deploy import parse
from tinyforge.deploy.pio import (
    BUILD_TIMEOUT,
    UPLOAD_TIMEOUT,
    PioError,
    Target,
    check_ready,
    choose_port,
    describe_ports,
    pio_command,
    run_pio,
    serial_ports,
    target,
)
from tinyforge.errors import TinyForgeError
from tinyforge.generate import MAIN_CPP, MODEL_DATA_H
from tinyforge.generate.firmware import ARENA_HEAP_MACRO, has_heap_arena_option
from tinyforge.lock import locked
from tinyforge.progress import Progress
from tinyforge.report import read_report
from tinyforge.stages import Stages

__all__ = [
    "FirmwareResult",
    "PioError",
    "Problem",
    "build_firmware",
    "load_last_result",
    "monitor_command",
    "run_monitor",
    "upload_firmware",
]

LAST_RESULT = Path(".tinyforge") / "firmware.json"
# The stages of `tinyforge deploy` (stages.py), without and with --upload.
BUILD_STAGES = ("check", "build")
UPLOAD_STAGES = ("check", "upload")


@dataclass
class Problem:
    """One finding of a build, placed where the user fixes it."""

    code: str  # compile-error | compile-warning | ram-overflow | flash-overflow | unknown-board
    severity: str  # error | warning
    message: str
    file: str  # absolute path
    line: int | None = None  # 1-based, as compilers count; None: the file's first line
    column: int | None = None
    anchor: str | None = None  # "board": the `board =` line of the env
    data: dict[str, Any] = field(default_factory=dict)


@dataclass
class FirmwareResult:
    project_dir: Path
    env: str
    board: str | None
    action: str  # build | upload
    ok: bool
    seconds: float
    problems: list[Problem]
    ram: dict[str, int] | None = None  # {"used": …, "total": …} from PlatformIO's size check
    flash: dict[str, int] | None = None
    estimate: dict[str, int] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    summary: str = ""
    port: str | None = None

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["project_dir"] = str(self.project_dir)
        return data


# -- figures the messages quote ----------------------------------------------------------------


def _int_after(pattern: str, text: str) -> int | None:
    m = re.search(pattern, text)
    return int(m.group(1)) if m else None


def project_figures(project_dir: Path) -> dict[str, int]:
    """The arena the firmware allocates, the model's size and TinyForge's estimates."""
    figures: dict[str, int] = {}
    report = read_report(project_dir)
    if report is not None:
        known = {
            "model_bytes": report.model_bytes,
            "ram_bytes_estimate": report.ram_bytes_estimate,
            "flash_bytes_estimate": report.flash_bytes_estimate,
            "arena_bytes": report.arena_bytes,
        }
        figures.update({key: value for key, value in known.items() if value is not None})
    try:
        main = (project_dir / MAIN_CPP).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        main = ""
    measured = _int_after(r"kMeasuredArenaBytes\s*=\s*(\d+)", main)
    margin = _int_after(r"kArenaMarginBytes\s*=\s*(\d+)", main)
    total = _int_after(r"kTensorArenaSize\s*=\s*(\d+)\s*;", main)
    if measured is not None:
        figures["arena_firmware_bytes"] = measured + (margin or 0)
    elif total is not None:
        figures["arena_firmware_bytes"] = total
    if "model_bytes" not in figures:
        try:
            header = (project_dir / MODEL_DATA_H).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError):
            header = ""
        model = _int_after(r"kModelDataLen\s*=\s*(\d+)", header)
        if model is not None:
            figures["model_bytes"] = model
    return figures


def _board(t: Target) -> Board | None:
    try:
        return get_board(t.board) if t.board else None
    except TinyForgeError:
        return None


def _limit(t: Target, board: Board | None, resource: str) -> int | None:
    key = "board_upload.maximum_ram_size" if resource == "ram" else "board_upload.maximum_size"
    if (value := t.env.int_option(key)) is not None:
        return value
    if board is not None:
        return board.ram_bytes if resource == "ram" else board.flash_bytes
    # A board of the project's own (boards/ID.json), as PlatformIO reads it.
    try:
        manifest = json.loads((t.project_dir / "boards" / f"{t.board}.json").read_text("utf-8"))
        upload = manifest.get("upload", {})
        return int(upload["maximum_ram_size" if resource == "ram" else "maximum_size"])
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None


def bigger_boards(board: Board | None, resource: str, needed: int, limit: int = 3) -> list[Board]:
    """Supported boards with at least `needed` bytes of RAM or flash, the closest fit first."""

    def size(b: Board) -> int:
        return b.ram_bytes if resource == "ram" else b.flash_bytes

    found = [b for b in all_boards() if size(b) >= needed and (board is None or b.id != board.id)]
    # The same kind of chip first: the least change for the user's code and wiring.
    found.sort(key=lambda b: (board is not None and b.family != board.family, size(b), b.id))
    return found[:limit]


def _kb(n: int) -> str:
    return f"{n:,} bytes ({n / 1024:.1f} KB)"


def overflow_problem(
    t: Target, overflow: parse.Overflow, figures: dict[str, int], board: Board | None
) -> Problem:
    resource = overflow.resource
    over = overflow.bytes
    region = overflow.region
    limit = _limit(t, board, resource)
    arena = figures.get("arena_firmware_bytes")
    model = figures.get("model_bytes")
    where = f" in region {region}" if overflow.source == "ld" else ""
    sections = f" (section {', '.join(overflow.sections)})" if overflow.sections else ""
    how_much = f"by {over:,} bytes" if over is not None else ""
    # PlatformIO's RAM check only warns (the image links); everything else fails the build.
    severity = "warning" if overflow.source == "platformio" and resource == "ram" else "error"
    if overflow.source == "platformio" and resource == "ram":
        head = (
            f"RAM use {overflow.used:,} bytes is over the {overflow.limit:,}-byte limit "
            f"{how_much} (PlatformIO's size check)"
        )
    elif "dram0" in region.lower():
        head = f"The chip's static DRAM ({region}) overflows {how_much}{sections}".rstrip()
    else:
        what = "RAM" if resource == "ram" else "Flash"
        head = f"{what} overflows {how_much}{where}{sections}".replace("  ", " ")
    parts = []
    if arena is not None:
        parts.append(f"the tensor arena is {_kb(arena)} (kTensorArenaSize in src/main.cpp)")
    if model is not None:
        parts.append(f"the model {_kb(model)} (in flash)")
    fixes = ["shrink the model"]
    can_heap = resource == "ram" and board is not None and has_heap_arena_option(board)
    if "dram0" in region.lower() or can_heap:
        fixes.append(
            "move the arena to the heap"
            + ("/PSRAM" if board and board.psram_bytes else "")
            + f" (-D{ARENA_HEAP_MACRO}=1)"
        )
    needed = (limit + over) if (limit is not None and over is not None) else None
    candidates = bigger_boards(board, resource, needed) if needed is not None else []
    if candidates:
        fixes.append("pick a board with more " + ("RAM" if resource == "ram" else "flash")
                     + f" ({', '.join(b.id for b in candidates[:2])})")  # fmt: skip
    else:
        fixes.append("pick a board with more " + ("RAM" if resource == "ram" else "flash"))
    message = head
    if parts:
        message += ": " + "; ".join(parts)
    message += ". Fix: " + ", or ".join(fixes) + "."
    return Problem(
        code=f"{resource}-overflow",
        severity=severity,
        message=message,
        file=str(t.project_dir / "platformio.ini"),
        anchor="board",
        data={
            "resource": resource,
            "region": region,
            "overflow_bytes": over,
            "limit_bytes": limit,
            "needed_bytes": needed,
            "arena_bytes": arena,
            "model_bytes": model,
            "board": board.id if board else t.board,
            "heap_option": "dram0" in region.lower() or can_heap,
            "psram": bool(board and board.psram_bytes),
            "bigger_boards": [b.id for b in candidates],
            "project_dir": str(t.project_dir),
        },
    )


def problems_from_log(t: Target, log: parse.PioLog) -> list[Problem]:
    figures = project_figures(t.project_dir)
    board = _board(t)
    found: list[Problem] = []
    for m in log.compiler:
        found.append(
            Problem(
                code="compile-error" if m.severity == "error" else "compile-warning",
                severity=m.severity,
                message=m.message,
                file=str(m.path(t.project_dir).resolve()),
                line=m.line,
                column=m.column,
            )
        )
    for resource in ("ram", "flash"):
        overflow = log.overflow(resource)
        if overflow is not None:
            found.append(overflow_problem(t, overflow, figures, board))
    if log.unknown_board:
        found.append(
            Problem(
                code="unknown-board",
                severity="error",
                message=f"PlatformIO does not know the board {log.unknown_board} on this "
                "platform: check `board =` (and that the platform is the right one).",
                file=str(t.project_dir / "platformio.ini"),
                anchor="board",
            )
        )
    return found


def _usage_summary(log: parse.PioLog, figures: dict[str, int]) -> str:
    parts = []
    for what, usage, key in (
        ("RAM", log.ram, "ram_bytes_estimate"),
        ("flash", log.flash, "flash_bytes_estimate"),
    ):
        if usage is None:
            continue
        text = f"{what} {usage.used:,} of {usage.total:,} bytes ({usage.percent:.1f}%)"
        if key in figures:
            estimate = figures[key]
            diff = usage.used - estimate
            text += f", TinyForge estimated {estimate:,} ({'+' if diff >= 0 else ''}{diff:,})"
        parts.append(text)
    return "; ".join(parts)


def _result(
    t: Target, action: str, run: Any, notes: list[str], port: str | None = None
) -> FirmwareResult:
    log: parse.PioLog = run.log
    figures = project_figures(t.project_dir)
    problems = problems_from_log(t, log)
    errors = [p for p in problems if p.severity == "error"]
    ok = run.ok and not errors
    if ok:
        summary = f"Built env:{t.name} in {run.seconds:.1f} s"
        usage = _usage_summary(log, figures)
        summary += f": {usage}." if usage else "."
        if action == "upload":
            summary = summary.replace("Built", "Built and uploaded", 1)
    elif errors:
        first = errors[0]
        where = Path(first.file).name + (f":{first.line}" if first.line else "")
        summary = f"env:{t.name} failed: {first.message} ({where})"
        if len(errors) > 1:
            summary += f", and {len(errors) - 1} more error(s)"
    else:
        last = next((ln for ln in reversed(run.tail) if ln.strip()), "")
        summary = f"`pio run` failed for env:{t.name}: {last.strip()[:200]}"
    result = FirmwareResult(
        project_dir=t.project_dir,
        env=t.name,
        board=t.board,
        action=action,
        ok=ok,
        seconds=round(run.seconds, 2),
        problems=problems,
        ram=asdict(log.ram) if log.ram else None,
        flash=asdict(log.flash) if log.flash else None,
        estimate={k: v for k, v in figures.items() if k.endswith("estimate")},
        notes=notes,
        summary=summary,
        port=port,
    )
    _save(result)
    return result


def _save(result: FirmwareResult) -> None:
    """The last build's outcome, for the editor to show after a build run in a terminal."""
    path = result.project_dir / LAST_RESULT
    try:
        path.parent.mkdir(exist_ok=True)
        path.write_text(json.dumps(result.to_dict(), indent=2), encoding="utf-8")
    except OSError:
        pass  # a read-only project still builds; only the editor's memory of it is lost


def load_last_result(project_dir: Path) -> dict[str, Any] | None:
    try:
        data = json.loads((Path(project_dir) / LAST_RESULT).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


# -- the three jobs ---------------------------------------------------------------------------


@locked("deploy")
def build_firmware(
    project_dir: Path,
    *,
    env: str | None = None,
    progress: Progress | None = None,
    cancel: threading.Event | None = None,
    timeout: float = BUILD_TIMEOUT,
) -> FirmwareResult:
    """`pio run -e ENV` on the project; PioError when PlatformIO cannot build here at all."""
    stages = Stages(BUILD_STAGES, progress=progress, cancel=cancel)
    t = target(project_dir, env)
    with stages.stage("check"):
        notes = check_ready(t, stages.progress, cancel)
    with stages.stage("build"):
        run = run_pio(
            t, ["run", "-e", t.name], progress=stages.progress, cancel=cancel, timeout=timeout
        )
    return _result(t, "build", run, notes)


@locked("deploy")
def upload_firmware(
    project_dir: Path,
    *,
    env: str | None = None,
    port: str | None = None,
    progress: Progress | None = None,
    cancel: threading.Event | None = None,
    timeout: float = BUILD_TIMEOUT,
) -> FirmwareResult:
    """`pio run -e ENV -t upload [--upload-port P]`: builds what changed, then flashes."""
    stages = Stages(UPLOAD_STAGES, progress=progress, cancel=cancel)
    progress = stages.progress
    t = target(project_dir, env)
    board = _board(t)
    with stages.stage("check"):
        progress.update(None, "looking for the board")
        chosen = choose_port(t, port, board.family if board else None, cancel)
        notes = check_ready(t, progress, cancel)
    args = ["run", "-e", t.name, "-t", "upload"]
    if chosen:
        args += ["--upload-port", chosen]
    with stages.stage("upload"):
        run = run_pio(
            t, args, progress=progress, cancel=cancel, timeout=max(timeout, UPLOAD_TIMEOUT)
        )
    if not run.ok and run.log.no_board and not run.log.errors and not run.log.overflows:
        ports = serial_ports(cancel)
        raise PioError(
            "no-board",
            f"The upload found no board ({run.log.no_board.rstrip('.')}): {describe_ports(ports)}; "
            "connect the board, or press its reset/boot button, and try again.",
        )
    return _result(t, "upload", run, notes, chosen)


def monitor_command(
    project_dir: Path, *, env: str | None = None, port: str | None = None, check: bool = True
) -> tuple[list[str], str | None]:
    """The `pio device monitor` command line for a terminal (it is interactive: Ctrl+C ends it)."""
    t = target(project_dir, env)
    chosen = choose_port(t, port, None, serial=True) if check else port
    cmd = pio_command("device", "monitor", "-d", str(t.project_dir), "-e", t.name)
    if chosen:
        cmd += ["-p", chosen]
    return cmd, chosen


def run_monitor(cmd: list[str], *, seconds: float | None = None) -> int:
    """Run the monitor in this terminal (inherits stdin/stdout) until Ctrl+C or `seconds`."""
    proc = subprocess.Popen(cmd, start_new_session=False, env=jobs.child_environment())
    try:
        return proc.wait(timeout=seconds)
    except subprocess.TimeoutExpired:
        jobs.kill_tree(proc.pid)
        return 0
    except KeyboardInterrupt:
        jobs.kill_tree(proc.pid)
        return 0
