"""`tinyforge` on the command line: a thin door onto the pipeline."""

from __future__ import annotations

import argparse
import json
import re
import sys
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeAlias, TypeVar

from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Column, Table

from tinyforge.errors import StageError, TinyForgeError

if TYPE_CHECKING:  # `tinyforge --help` imports no pydantic models
    from tinyforge.device.report import DeviceReport
    from tinyforge.health import Finding
    from tinyforge.report import BuildReport, InspectReport, MemoryFigures

console = Console(stderr=False, highlight=False, soft_wrap=True)
err_console = Console(stderr=True, highlight=False, soft_wrap=True)

T = TypeVar("T")
# What `add_subparsers` returns: each subcommand's parser is added by a function of its own.
Subcommands: TypeAlias = "argparse._SubParsersAction[argparse.ArgumentParser]"


class TerminalProgress:
    """Stage-by-stage progress on the terminal; child output only with --verbose."""

    def __init__(self, progress: Progress, verbose: bool) -> None:
        self._progress = progress
        self._verbose = verbose
        self._task: Any = None
        self._name = ""

    def stage(self, name: str, index: int, total: int) -> None:
        if self._task is not None:
            self._progress.update(
                self._task, completed=1.0, description=f"[green]✓[/] {self._name}"
            )
        self._name = f"[{index}/{total}] {name}"
        self._task = self._progress.add_task(self._name, total=1.0, status="")

    def update(self, fraction: float | None, message: str) -> None:
        if self._task is None:
            return
        fields: dict[str, Any] = {"status": message}
        if fraction is not None:
            fields["completed"] = fraction
        self._progress.update(self._task, **fields)

    def log(self, line: str) -> None:
        if self._verbose:
            self._progress.console.print(f"[dim]{line}[/]", markup=True, highlight=False)

    def finish(self) -> None:
        if self._task is not None:
            self._progress.update(
                self._task, completed=1.0, description=f"[green]✓[/] {self._name}"
            )


def with_progress(
    work: Callable[[TerminalProgress, threading.Event], T],
    *,
    verbose: bool = False,
    to_stderr: bool = False,
) -> T:
    """`work(progress, cancel)` under the stage-by-stage bar. Ctrl+C sets `cancel` first, so the
    stage's child processes are killed (jobs.py), then reaches main's "cancelled".

    `to_stderr`: with --json, stdout holds the JSON alone and the bar goes to stderr."""
    cancel = threading.Event()
    bar_console = err_console if to_stderr else console
    with Progress(*_progress_columns(), console=bar_console, transient=False) as bar:
        progress = TerminalProgress(bar, verbose)
        try:
            result = work(progress, cancel)
        except KeyboardInterrupt:
            cancel.set()
            raise
        progress.finish()
    return result


def _progress_columns() -> tuple[Any, ...]:
    return (
        SpinnerColumn(),
        TextColumn("{task.description}", table_column=Column(no_wrap=True, min_width=16)),
        BarColumn(bar_width=24),
        TimeElapsedColumn(),
        TextColumn(
            "[dim]{task.fields[status]}", table_column=Column(no_wrap=True, overflow="ellipsis")
        ),
    )


def _kb(n: int | None) -> str:
    return "-" if n is None else f"{n / 1024:,.1f} KB"


def _pct(x: float | None) -> str:
    return "-" if x is None else f"{100 * x:.1f}%"


_SEVERITY_STYLE = {"error": "bold red", "warning": "yellow", "info": "dim"}


def print_health(findings: Sequence[Finding]) -> None:
    """Health findings (tinyforge.health), errors first: what is wrong, then what to do."""
    from rich.markup import escape as plain  # messages hold brackets like [training]

    for finding in findings:
        style = _SEVERITY_STYLE.get(finding.severity, "dim")
        console.print(
            f"[{style}]{finding.severity}:[/] {plain(finding.message)} "
            f"[dim]({plain(finding.code)})[/]"
        )
        if finding.fix:
            console.print(f"  [dim]fix:[/] {plain(finding.fix)}")


def _limits(figures: MemoryFigures) -> tuple[int | None, int | None]:
    """The budget's RAM and flash limits (None: the report has no budget)."""
    budget = figures.budget
    return (budget.ram_bytes, budget.flash_bytes) if budget else (None, None)


def fits_sentence(board: str | None, figures: MemoryFigures, how: str | None = None) -> str:
    """The line a build, verify, convert and inspect end with when the model fits (markup):
    "Fits BOARD (how): RAM x / limit, flash y / limit."; `how` says how the figures were got."""
    ram_limit, flash_limit = _limits(figures)
    where = f" ({how})" if how else ""
    return (
        f"[bold green]Fits[/] {board}{where}: RAM {_kb(figures.ram_bytes_estimate)} / "
        f"{_kb(ram_limit)}, flash {_kb(figures.flash_bytes_estimate)} / {_kb(flash_limit)}."
    )


def print_report(report: BuildReport) -> None:
    from tinyforge.device.report import DeviceReport

    table = Table(title=f"TinyForge report — {report.project} on {report.board}", show_header=False)
    table.add_column("what", style="bold")
    table.add_column("figure")
    ram_limit, flash_limit = _limits(report)
    table.add_row(
        "accuracy (float / int8 / TFLM)",
        " / ".join(
            _pct(x) for x in (report.float_accuracy, report.int8_accuracy, report.tflm_accuracy)
        ),
    )
    table.add_row("model", f"{report.model_bytes:,} bytes ({report.params:,} parameters)")
    device = report.device if isinstance(report.device, DeviceReport) else None
    if device is None:
        table.add_row(
            "tensor arena (measured, TFLM)",
            f"{report.arena_bytes:,} bytes on the 64-bit host; "
            f"~{report.arena_bytes_target:,} bytes on the 32-bit target (static estimate)",
        )
    kind = "measured" if device else "estimate"
    table.add_row(f"RAM ({kind})", f"{_kb(report.ram_bytes_estimate)} of {_kb(ram_limit)}")
    table.add_row(f"flash ({kind})", f"{_kb(report.flash_bytes_estimate)} of {_kb(flash_limit)}")
    table.add_row("operators", ", ".join(f"{k}×{v}" for k, v in sorted(report.ops.items())))
    if device:
        add_device_rows(table, device, report)
    console.print(table)
    for notice in report.notices:
        console.print(f"[yellow]note:[/] {notice}")
    print_health(report.health.findings if report.health else [])
    # Every figure about the board says how it was obtained.
    how = "measured on the emulated core" if device else "estimated"
    if report.fits:
        console.print(fits_sentence(report.board, report, how))
    else:
        for v in report.violations:
            console.print(f"[bold red]Does not fit:[/] {escape(v.message)} ({how})")


def cmd_report(args: argparse.Namespace) -> int:
    """`tinyforge report --schema`: the JSON schema of report.json, `inspect --json` and the
    editor's figures (the client's TypeScript types are generated from it); else the last
    build's report of a project, as `build` prints it."""
    from tinyforge.report import json_schema, read_report

    if args.schema:
        print(json.dumps(json_schema(), indent=2))
        return 0
    project = Path(args.project)
    report = read_report(project)
    if report is None:
        raise TinyForgeError(f"No build report in {project}: build it with `tinyforge build`.")
    show_report(report, as_json=args.json)
    return 0


def show_report(report: BuildReport, *, as_json: bool) -> None:
    """A build report as --json, as the table of a brought model's conversion, or as a build's."""
    if as_json:
        print(json.dumps(report.to_json(), indent=2))
    elif report.format == "onnx":  # a model the user brought (convert)
        print_convert_report(report)
    else:
        print_report(report)


def cmd_plan(args: argparse.Namespace) -> int:
    from tinyforge import pipeline
    from tinyforge.spec import json_schema

    if args.schema:
        print(json.dumps(json_schema(), indent=2))
        return 0
    if not args.request:
        raise TinyForgeError(
            'Give a request, e.g. tinyforge plan "recognise handwritten digits on a Pi Pico".'
        )
    notices: list[str] = []
    try:
        spec = pipeline.plan(
            args.request,
            board=args.board,
            planner=args.planner,
            planner_options={"model": args.model},
            notices=notices,
        )
    finally:
        print_notices(notices)
    if args.json:
        print(spec.model_dump_json(indent=2))
    else:
        print(spec.to_toml())
    return 0


def print_notices(notices: list[str]) -> None:
    # On stderr: `plan --json` keeps stdout pure JSON.
    for notice in notices:
        err_console.print(f"[yellow]note:[/] {escape(notice)}")


def cmd_new(args: argparse.Namespace) -> int:
    from tinyforge import pipeline

    out = Path(args.out) if args.out else Path.cwd()
    notices: list[str] = []
    try:
        spec, written = pipeline.new_project(
            args.request,
            out,
            board=args.board,
            planner=args.planner,
            force=args.force,
            planner_options={"model": args.model},
            notices=notices,
        )
    finally:
        print_notices(notices)
    console.print(f"Created [bold]{out}[/] for {spec.board} ({spec.task.value}).")
    for name in written.written:
        console.print(f"  wrote {name}")
    for line in written.describe_kept():
        console.print(f"  [yellow]{line}[/]")
    for assumption in spec.assumptions:
        console.print(f"  [dim]assumed: {assumption}[/]")
    settle_proposal(out, accept=args.yes)
    console.print(f"Next: [bold]tinyforge build {out}[/]")
    return 0


def settle_proposal(out: Path, *, accept: bool) -> None:
    """Claude's model design runs only once the user took it: the diff, then the question on a
    terminal (`--yes` answers it); with no one to ask it waits beside train.py."""
    from tinyforge import pipeline

    pending = pipeline.pending_proposal(out)
    if pending is None:
        return
    console.print("\nClaude proposes this model design for train.py (nothing of it has run):")
    print_diff(pending.diff())
    asking = not accept and sys.stdin.isatty()
    if accept or (asking and _asked_yes("Use Claude's model design? [y/N] ")):
        pipeline.accept_proposal(out)
        console.print("train.py now holds Claude's model design.")
    elif asking:
        pipeline.discard_proposal(out)
        console.print("Kept TinyForge's own train.py.")
    else:
        where = escape(str(out / pipeline.PROPOSAL_FILE))
        console.print(
            f"Kept TinyForge's own train.py; Claude's design waits in {where}: use it with "
            f"[bold]tinyforge accept-proposal {escape(str(out))}[/]."
        )


def _asked_yes(question: str) -> bool:
    try:
        answer = console.input(escape(question))
    except EOFError:  # Ctrl-D: no answer is the default, no
        return False
    return answer.strip().lower() in ("y", "yes")


def cmd_accept_proposal(args: argparse.Namespace) -> int:
    from tinyforge import pipeline

    project = Path(args.project)
    pipeline.accept_proposal(project)
    console.print(f"train.py in {escape(str(project))} now holds Claude's model design.")
    console.print(f"Next: [bold]tinyforge build {escape(str(project))}[/]")
    return 0


def print_diff(diff: str) -> None:
    for line in diff.splitlines():
        style = "green" if line.startswith("+") else "red" if line.startswith("-") else "dim"
        console.print(line, style=style, markup=False, highlight=False)


def add_device_rows(table: Table, d: DeviceReport, report: MemoryFigures) -> None:
    """The figures measured on the emulated core (report.json's device section)."""
    kernels = "CMSIS-NN" if d.kernels == "cmsis_nn" else "reference"
    table.add_row(
        "measured on",
        escape(
            f"an emulated {d.emulated_core} ({d.machine}), {d.tflm.name}, "
            f"{kernels} kernels, built for {d.core}"
        ),
    )
    if d.core_note:
        table.add_row("", escape(d.core_note))
    identical = f"{d.outputs_identical_percent:g}% identical"
    if d.outputs_identical_percent < 100:
        identical += (
            f", argmax {d.argmax_agreement_percent:g}% equal, largest difference "
            f"{d.outputs_max_abs_diff:g}"
        )
    accuracy = f"; accuracy {_pct(d.accuracy)}" if d.accuracy is not None else ""
    table.add_row(
        "outputs vs host TFLM",
        f"{identical} on {d.samples + 1} samples{accuracy}",
    )
    table.add_row(
        "tensor arena (target)",
        f"{d.arena_used_bytes:,} used, {d.arena_smallest_bytes:,} smallest that works; "
        f"firmware allocates {d.arena_firmware_bytes:,}; static estimate "
        f"{d.arena_static_target_bytes:,}",
    )
    table.add_row("", escape(d.arena_note))
    flash, ram = report.flash_parts, report.ram_parts
    table.add_row("flash parts", escape(", ".join(f"{k} {_kb(v)}" for k, v in flash.items())))
    table.add_row("RAM parts", escape(", ".join(f"{k} {_kb(v)}" for k, v in ram.items())))
    if d.kernel_flash:
        table.add_row(
            "kernels",
            ", ".join(f"{op} {_kb(n)}" for op, n in d.kernel_flash.items())
            + (
                f" (+ CMSIS-NN {_kb(d.flash.get('CMSIS-NN', 0))})" if kernels != "reference" else ""
            ),
        )
    table.add_row(
        "inference (estimate)",
        f"{d.instructions_per_inference:,} instructions ≈ {d.latency_ms_estimate:.2f} ms "
        f"at {d.clock_hz / 1e6:g} MHz ({d.cycles_per_instruction:g} cycles/instruction "
        "assumed)",
    )


def cmd_verify(args: argparse.Namespace) -> int:
    from tinyforge import pipeline

    report = with_progress(
        lambda progress, cancel: pipeline.verify_on_device(
            Path(args.project),
            tflm=Path(args.tflm) if args.tflm else None,
            kernels=args.kernels,
            core=args.core,
            samples=args.samples,
            progress=progress,
            cancel=cancel,
        ),
        verbose=args.verbose,
        to_stderr=args.json,
    )
    if args.json:
        print(json.dumps(report.to_json()["device"], indent=2))
    else:
        from tinyforge.device.report import DeviceReport

        assert isinstance(report.device, DeviceReport)  # verify_on_device measured it
        table = Table(title=f"TinyForge verify — {report.project}", show_header=False)
        table.add_column("what", style="bold")
        table.add_column("figure")
        add_device_rows(table, report.device, report)
        console.print(table)
        if report.fits:
            console.print(fits_sentence(report.board, report, "measured"))
        for v in report.violations:
            console.print(f"[bold red]Does not fit (measured):[/] {escape(v.message)}")
    return 0 if report.fits else 3


def cmd_build(args: argparse.Namespace) -> int:
    from tinyforge import pipeline

    timeouts = {
        stage: value
        for stage, value in (("train", args.train_timeout), ("convert", args.convert_timeout))
        if value is not None
    }
    # With --json, stdout holds the JSON alone (`tinyforge build --json | jq` works): the bar
    # goes to stderr, as verify's and fit's do.
    result = with_progress(
        lambda progress, cancel: pipeline.build(
            Path(args.project),
            progress=progress,
            cancel=cancel,
            device=not args.no_device,
            tflm=Path(args.tflm) if args.tflm else None,
            timeouts=timeouts,
        ),
        verbose=args.verbose,
        to_stderr=args.json,
    )
    show_report(result.report, as_json=args.json)
    from tinyforge.report import DeviceNotMeasured

    device = result.report.device
    if isinstance(device, DeviceNotMeasured) and device.failed:
        # The project is built; its firmware did not build or run on the emulated core.
        err_console.print(f"[bold red]error[/] (device): {escape(device.reason or '')}")
        return 2
    if not result.fits:
        err_console.print(f"Proposed fixes: [bold]tinyforge repair {args.project}[/]")
    if not result.fits:
        return 3
    # 4: it fits, but a health check found an error (e.g. accuracy at chance level).
    return 0 if result.healthy else 4


def cmd_deploy(args: argparse.Namespace) -> int:
    """`pio run` (and upload, monitor) on a project; problems printed where they are."""
    from tinyforge import deploy

    project = Path(args.project)

    def run(progress: TerminalProgress, cancel: threading.Event) -> deploy.FirmwareResult:
        if args.upload:
            return deploy.upload_firmware(
                project,
                env=args.env,
                port=args.port,
                progress=progress,
                cancel=cancel,
                timeout=args.timeout,
            )
        return deploy.build_firmware(
            project, env=args.env, progress=progress, cancel=cancel, timeout=args.timeout
        )

    result = with_progress(run, verbose=args.verbose, to_stderr=args.json)
    if args.json:
        print(json.dumps(result.to_dict(), indent=2))
    else:
        for note in result.notes:
            console.print(f"[yellow]note:[/] {escape(note)}")
        for problem in result.problems:
            where = problem.file + (f":{problem.line}" if problem.line else "")
            if problem.column and problem.line:
                where += f":{problem.column}"
            style = "bold red" if problem.severity == "error" else "yellow"
            message = escape(problem.message)
            console.print(f"{escape(where)}: [{style}]{problem.severity}:[/] {message}")
        style = "bold green" if result.ok else "bold red"
        console.print(f"[{style}]{escape(result.summary)}[/]")
    if not result.ok:
        errors = [p for p in result.problems if p.severity == "error"]
        return 3 if any(p.code.endswith("overflow") for p in errors) else 1
    if args.monitor:
        cmd, _port = deploy.monitor_command(project, env=args.env, port=args.port or result.port)
        err_console.print(f"[dim]{escape(' '.join(cmd))}  (Ctrl+C ends it)[/]")
        return deploy.run_monitor(cmd, seconds=args.seconds)
    return 0


def cmd_repair(args: argparse.Namespace) -> int:
    from tinyforge.repair import apply_fix, propose_fixes
    from tinyforge.spec import SPEC_FILENAME

    project = Path(args.project)
    if not (project / SPEC_FILENAME).is_file() and not (project / "platformio.ini").is_file():
        raise TinyForgeError(f"No TinyForge project in {project} (no {SPEC_FILENAME}).")
    log_text = None
    if args.log:
        try:
            log_text = Path(args.log).read_text(encoding="utf-8", errors="replace")
        except OSError as exc:
            raise TinyForgeError(f"Cannot read the log {args.log}: {exc.strerror}.") from exc
    repairer = None
    if args.repairer == "claude":
        from tinyforge.repair.claude import ClaudeRepairer

        repairer = ClaudeRepairer(model=args.model)
    result = propose_fixes(project, log_text=log_text, repairer=repairer)
    applied: list[str] = []
    if args.yes:
        touched: set[str] = set()
        for fix in result.fixes:
            files = {e.path for e in fix.edits}
            if fix.applicable and not files & touched:
                apply_fix(project, fix)
                touched |= files
                applied.append(fix.title)
    if args.json:
        print(json.dumps({**result.to_dict(), "applied": applied}, indent=2))
        return 0 if applied or not result.failures else 1
    print_notices(result.notices)
    if not result.failures:
        console.print(f"Nothing to repair in {project}: no failed build recorded, the report fits.")
        return 0
    for failure in result.failures:
        where = f", {failure.source}" if failure.source else ""
        console.print(f"[bold red]failure[/] ({failure.stage}{where}): {escape(failure.message)}")
    if not result.fixes:
        hint = "" if repairer else " (`--repairer claude` asks Claude)"
        console.print(f"No fix found{hint}.")
        return 1
    for number, fix in enumerate(result.fixes, 1):
        console.print(f"\n[bold]{number}. {escape(fix.title)}[/] [dim]({fix.rule})[/]")
        console.print(escape(fix.explanation))
        print_diff(fix.diff())
    if applied:
        for title in applied:
            console.print(f"[green]applied:[/] {escape(title)}")
        console.print(f"Next: [bold]tinyforge build {project}[/]")
        return 0
    if any(f.applicable for f in result.fixes):
        console.print(f"\nApply with: [bold]tinyforge repair {project} --yes[/]")
    return 1


def print_convert_report(report: BuildReport) -> None:
    """`tinyforge convert`: agreement with ONNX, memory against the board, the verdict."""
    onnx, calibration, agreement = report.onnx, report.calibration, report.agreement
    # A conversion's report always has them (convert.onnx._report).
    assert onnx is not None and calibration is not None and agreement is not None
    float_cmp = agreement.float_
    assert float_cmp is not None
    table = Table(
        title=f"TinyForge convert — {Path(report.source_model or '').name} on {report.board}",
        show_header=False,
    )
    table.add_column("what", style="bold")
    table.add_column("figure")
    table.add_row(
        "ONNX model",
        f"opset {onnx.opset}, input {_shape(onnx.input.shape)} → output "
        f"{_shape(onnx.output.shape)}, {onnx.params:,} parameters",
    )
    table.add_row("calibration", escape(calibration.source))
    table.add_row(
        f"agreement with ONNX ({float_cmp.measure}: float32 / int8 / TFLM)",
        " / ".join(
            _pct(x) for x in (report.float_agreement, report.int8_agreement, report.tflm_agreement)
        )
        + f" of {float_cmp.samples} inputs",
    )
    int8_diff = report.int8_max_abs_diff
    table.add_row(
        "max abs difference (float32 / int8)",
        f"{report.float_max_abs_diff:.3g} / " + ("-" if int8_diff is None else f"{int8_diff:.3g}"),
    )
    table.add_row(
        "model",
        f"{report.model_bytes:,} bytes {report.quantization} "
        f"(float32 {report.model_bytes_float32 or 0:,} bytes)",
    )
    if report.arena_bytes is not None:
        arena = (
            f"{report.arena_bytes:,} bytes on the 64-bit host; "
            f"~{report.arena_bytes_target:,} bytes on the 32-bit target"
        )
    else:
        arena = f"not measured; static estimate {_bytes(report.arena_bytes_estimate)} B"
    table.add_row("tensor arena (TFLM)", arena)
    ram_limit, flash_limit = _limits(report)
    table.add_row("RAM estimate", f"{_kb(report.ram_bytes_estimate)} of {_kb(ram_limit)}")
    table.add_row("flash estimate", f"{_kb(report.flash_bytes_estimate)} of {_kb(flash_limit)}")
    table.add_row("operators", ", ".join(f"{k}×{v}" for k, v in report.ops.items()))
    console.print(table)
    for notice in report.notices:
        style = "bold red" if notice.startswith("NO CALIBRATION") else "yellow"
        console.print(f"[{style}]note:[/] {escape(notice)}")
    console.print(f"wrote {escape(str(report.tflite))}")
    if report.unsupported_ops:
        console.print(
            f"[bold red]Cannot run on TFLM:[/] {', '.join(report.unsupported_ops)} "
            "(see the note above)."
        )
    elif report.fits:
        console.print(fits_sentence(report.board, report))
    for v in report.violations:
        console.print(f"[bold red]Does not fit:[/] {v.message}")


def _input_shape(text: str) -> list[int]:
    try:
        shape = [int(d) for d in re.split(r"[,x× ]+", text.strip()) if d]
    except ValueError:
        shape = []
    if not shape:
        raise TinyForgeError(f"--input-shape {text!r} is not a shape like 1,3,96,96.")
    return shape


def cmd_convert(args: argparse.Namespace) -> int:
    from tinyforge import pipeline
    from tinyforge.convert.onnx import convert_onnx

    target = Path(args.model)
    timeout = args.convert_timeout

    def run(progress: TerminalProgress, cancel: threading.Event) -> tuple[BuildReport, bool]:
        if target.is_dir():  # a project: convert its model again (no training)
            built = pipeline.build(
                target,
                progress=progress,
                cancel=cancel,
                train=False,
                timeouts={"convert": timeout} if timeout is not None else None,
            )
            return built.report, built.fits
        result = convert_onnx(
            target,
            board=args.board,
            calibration=args.calibration,
            out=args.out,
            input_shape=_input_shape(args.input_shape) if args.input_shape else None,
            quantization=args.quantization,
            min_agreement=args.min_agreement,
            force=args.force,
            progress=progress,
            cancel=cancel,
            timeout=timeout,
        )
        return result.report, result.fits

    report, fits = with_progress(run, verbose=args.verbose, to_stderr=args.json)
    show_report(report, as_json=args.json)
    return 0 if fits else 3


def cmd_boards(args: argparse.Namespace) -> int:
    from tinyforge.boards import all_boards

    boards = all_boards()
    if args.json:
        print(json.dumps([b.__dict__ for b in boards], indent=2, default=list))
        return 0
    table = Table(title="Supported boards")
    # The id is what people type: never cut or wrapped; the other columns give way, and on a
    # narrow terminal the library column goes (`--json` has it all).
    table.add_column("id", no_wrap=True, min_width=max(len(b.id) for b in boards))
    table.add_column("name", overflow="fold", ratio=3)
    table.add_column("MCU", overflow="fold", ratio=2)
    for column in ("RAM", "flash"):
        table.add_column(column, no_wrap=True, justify="right")
    wide = console.width >= 140
    if wide:
        table.add_column("TFLM library", overflow="fold", ratio=3)
    for b in boards:
        row = [b.id, b.name, b.mcu, _kb(b.ram_bytes), _kb(b.flash_bytes)]
        table.add_row(*row, *([b.tflm_library] if wide else []))
    console.print(table)
    return 0


def print_fit(result: Any, written: list[str]) -> None:
    """`tinyforge fit`: the kept candidates (front marked), what was rejected, the choice."""
    from tinyforge.check import kb

    data = result.to_dict()
    counts = data["counts"]
    table = Table(title=f"TinyForge fit — {result.project_dir.name} on {result.board}")
    for column in ("#", "candidate", "accuracy", "arena", "model", "MACs", ""):
        table.add_column(column, justify="right" if column in ("#", "MACs") else "left")
    shown = sorted(
        (t for t in result.trials if t["status"] in ("kept", "over-budget")),
        key=lambda t: (-t["accuracy"], t["arena_bytes_target"]),
    )
    chosen = result.chosen["number"] if result.chosen else None
    for t in shown:
        mark = (
            "chosen"
            if t["number"] == chosen
            else "front"
            if t.get("on_front")
            else "over budget (measured)"
            if t["status"] == "over-budget"
            else ""
        )
        table.add_row(
            str(t["number"]),
            escape(t["candidate"]),
            _pct(t["accuracy"]),
            kb(t["arena_bytes_target"]),
            kb(t["model_bytes"]),
            f"{t['macs']:,}",
            mark,
        )
    if shown:
        console.print(table)
    console.print(
        f"{counts['trained']} trained, {counts['rejected']} rejected before training by the "
        f"static estimate, {counts['failed']} failed; "
        f"{result.options.engine} engine, {data['seconds']:.0f} s."
    )
    reasons: dict[str, int] = {}
    for t in result.trials:
        if t["status"] == "rejected" and t.get("reasons"):
            first = re.sub(r"[0-9.]+ KB", "N KB", t["reasons"][0])
            reasons[first] = reasons.get(first, 0) + 1
    for reason, number in sorted(reasons.items(), key=lambda kv: -kv[1])[:3]:
        console.print(f"  [dim]rejected ×{number}: {escape(reason)}[/]")
    for t in result.trials:
        if t["status"] == "failed":
            console.print(f"[yellow]trial #{t['number']} failed:[/] {escape(str(t.get('error')))}")
    for note in result.notes:
        console.print(f"[dim]note: {escape(note)}[/]")
    style = "bold green" if result.chosen else "bold red"
    console.print(f"[{style}]{escape(result.reasons)}[/]")
    if result.plot:
        console.print(f"Plot: {result.plot}")
    for name in written:
        console.print(f"  wrote {name}")


def cmd_fit(args: argparse.Namespace) -> int:
    import contextlib

    from tinyforge.fit import FitOptions, fit, parse_size
    from tinyforge.fit.writeback import write

    options = FitOptions(
        trials=args.trials,
        epochs=args.epochs,
        budget_ram=parse_size(args.budget_ram) if args.budget_ram else None,
        budget_flash=parse_size(args.budget_flash) if args.budget_flash else None,
        engine=args.engine,
        address=args.address,
        seed=args.seed,
        batch=args.batch,
    )
    project = Path(args.project)
    # With --json, stdout holds the JSON alone: what else prints there during the search
    # (Ray's driver prints cluster events, such as a worker node marked dead) goes to stderr.
    others = contextlib.redirect_stdout(sys.stderr) if args.json else contextlib.nullcontext()
    try:
        with others:
            result = with_progress(
                lambda progress, cancel: fit(project, options, progress=progress, cancel=cancel),
                verbose=args.verbose,
                to_stderr=args.json,
            )
    except TinyForgeError as exc:
        # Escaped: fit's sentences quote `pip install 'tinyforge[ray]'`, not markup. Every
        # error of a search is "error:", a failed stage's too (main would name the stage).
        err_console.print(f"[bold red]error:[/] {escape(str(exc))}", highlight=False)
        return 2
    written = write(project, result.write_back, apply=args.apply) if result.write_back else []
    if args.json:
        print(json.dumps({**result.to_dict(), "written": written}, indent=2))
    else:
        print_fit(result, written)
        if written and not args.apply:
            console.print(
                f"Review it (diff {project / 'train.py'} {project / written[0]}), or apply it: "
                f"[bold]tinyforge fit {args.project} … --apply[/]"
            )
    return 0 if result.chosen else 3


def cmd_lsp(args: argparse.Namespace) -> int:
    from tinyforge.lsp import main as serve

    serve()
    return 0


def _shape(shape: list[int]) -> str:
    return "×".join(str(d) for d in shape) or "scalar"


def _bytes(n: int | None) -> str:
    return "-" if n is None else f"{n:,}"


def print_inspect(report: InspectReport) -> None:
    table = Table(title=f"{report.model} ({report.format}): memory per layer")
    for column in ("#", "layer", "op", "output", "dtype", "params B", "activation B", "MACs"):
        table.add_column(column, justify="right" if column.endswith(("B", "MACs", "#")) else "left")
    for layer in report.layers:
        name = layer.name
        table.add_row(
            str(layer.index),
            name if len(name) <= 40 else "…" + name[-39:],
            layer.op,
            _shape(layer.output_shape),
            layer.dtype,
            f"{layer.params_bytes:,}",
            f"{layer.activation_bytes:,}",
            f"{layer.macs:,}",
        )
    if report.layers:
        console.print(table)
    summary = Table(show_header=False, box=None)
    summary.add_column("what", style="bold")
    summary.add_column("figure")
    summary.add_row("operators", ", ".join(f"{k}×{v}" for k, v in report.ops.items()) or "-")
    if report.unsupported_ops:
        summary.add_row("not in TFLM", ", ".join(report.unsupported_ops))
    summary.add_row("model", f"{_bytes(report.model_bytes)} bytes")
    summary.add_row(
        "tensor arena (64-bit host)",
        f"measured {_bytes(report.arena_bytes)} B, static estimate "
        f"{_bytes(report.arena_bytes_estimate)} B, floor "
        f"{_bytes(report.arena_floor_bytes)} B",
    )
    summary.add_row("tensor arena (32-bit MCU)", f"{_bytes(report.arena_bytes_target)} B")
    budget = report.budget
    ram_limit, flash_limit = _limits(report)
    for figure_bytes, label, limit in (
        (report.ram_bytes_estimate, "RAM estimate", ram_limit),
        (report.flash_bytes_estimate, "flash estimate", flash_limit),
    ):
        figure = f"{_kb(figure_bytes)}"
        if budget:
            figure += f" of {_kb(limit)}"
        summary.add_row(label, figure)
    console.print(summary)
    for problem in report.problems:
        console.print(f"[red]problem:[/] {problem}")
    for note in report.notes:
        console.print(f"[yellow]note:[/] {note}")
    print_health(report.health or [])
    if report.fits is True:
        console.print(fits_sentence(report.board, report))
    elif report.fits is False:
        for v in report.violations:
            console.print(f"[bold red]Does not fit:[/] {v.message}")
    elif budget:
        console.print(f"[bold yellow]No verdict[/] for {report.board}: see the problems above.")
    elif report.ram_bytes_estimate is not None:
        console.print(
            f"Needs about RAM {_kb(report.ram_bytes_estimate)} and flash "
            f"{_kb(report.flash_bytes_estimate)} (default runtime costs; give --board for a "
            "verdict)."
        )


def cmd_inspect(args: argparse.Namespace) -> int:
    from tinyforge.memory.inspect import inspect_model

    report = inspect_model(
        Path(args.model),
        board=args.board,
        project=args.project,
        measure=not args.static,
        quantization=args.quantization,
        convert=args.convert,
        calibration=args.calibration,
    )
    if args.json:
        print(json.dumps(report.to_json(), indent=2))
    else:
        print_inspect(report)
    # 3: does not fit, or cannot run / cannot be sized as it stands (see problems), or a
    # quantization check found an error (e.g. a scale TFLM aborts on).
    broken = any(f.severity == "error" for f in report.health or [])
    return 3 if report.fits is False or report.problems or broken else 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="tinyforge", description="From one sentence to TinyML firmware, offline."
    )
    sub = parser.add_subparsers(dest="command", required=True)

    for add in (
        _add_plan,
        _add_report,
        _add_new,
        _add_accept_proposal,
        _add_build,
        _add_verify,
        _add_deploy,
        _add_repair,
        _add_boards,
        _add_inspect,
        _add_convert,
        _add_fit,
        _add_lsp,
    ):
        add(sub)
    return parser


def _add_plan(sub: Subcommands) -> None:
    p = sub.add_parser("plan", help="turn a request into a project spec (prints it)")
    p.add_argument("request", nargs="?")
    p.add_argument("--json", action="store_true", help="print the spec as JSON")
    p.add_argument("--schema", action="store_true", help="print the spec's JSON schema")
    p.add_argument("--board", help="board id (overrides the request)")
    p.add_argument("--planner", default="offline", help="offline (default) or claude")
    p.add_argument("--model", help="Claude model id (default: $TINYFORGE_CLAUDE_MODEL or built-in)")
    p.set_defaults(func=cmd_plan)


def _add_report(sub: Subcommands) -> None:
    p = sub.add_parser("report", help="show a project's last build report (--schema: its schema)")
    p.add_argument("project", nargs="?", default=".")
    p.add_argument("--json", action="store_true", help="print report.json as it is")
    p.add_argument(
        "--schema",
        action="store_true",
        help="print the JSON schema of report.json, `inspect --json` and the editor's figures",
    )
    p.set_defaults(func=cmd_report)


def _add_new(sub: Subcommands) -> None:
    p = sub.add_parser("new", help="create a project folder from a request")
    p.add_argument("request")
    p.add_argument("--out", help="project folder (default: the current folder)")
    p.add_argument("--board", help="board id (overrides the request)")
    p.add_argument("--planner", default="offline", help="offline (default) or claude")
    p.add_argument("--model", help="Claude model id (default: $TINYFORGE_CLAUDE_MODEL or built-in)")
    p.add_argument("--force", action="store_true", help="write into a non-empty folder")
    p.add_argument(
        "--yes",
        action="store_true",
        help="use the model Claude designs (--planner claude) without asking (with no "
        "terminal to ask, it waits in train.py.proposed for `tinyforge accept-proposal`)",
    )
    p.set_defaults(func=cmd_new)


def _add_accept_proposal(sub: Subcommands) -> None:
    p = sub.add_parser(
        "accept-proposal",
        help="make the model Claude proposed at `tinyforge new` (train.py.proposed) train.py",
    )
    p.add_argument("project", nargs="?", default=".")
    p.set_defaults(func=cmd_accept_proposal)


def _add_build(sub: Subcommands) -> None:
    p = sub.add_parser(
        "build",
        help="train, convert, measure and package a project",
        description="Train, convert, measure and package a project; check the data and the "
        "model's health on the way.",
        epilog="exit status: 0 built, fits and healthy; 2 the build failed (or the data makes "
        "training pointless); 3 the model does not fit the budget; 4 it fits, but a health "
        "check found an error (e.g. accuracy at chance level: the data does not predict the "
        "label).",
    )
    p.add_argument("project", nargs="?", default=".")
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.add_argument("-v", "--verbose", action="store_true", help="show the child processes' output")
    p.add_argument(
        "--no-device",
        action="store_true",
        help="skip the last stage: the firmware compiled with TFLM and run on an emulated core",
    )
    p.add_argument("--tflm", help="TFLM source tree for that stage (default: $TINYFORGE_TFLM_DIR)")
    for stage in ("train", "convert"):
        p.add_argument(
            f"--{stage}-timeout",
            type=float,
            metavar="SECONDS",
            help=f"stop the {stage} stage after SECONDS (default: timeouts.{stage} in the spec)",
        )
    p.set_defaults(func=cmd_build)


def _add_verify(sub: Subcommands) -> None:
    p = sub.add_parser(
        "verify",
        help="compile the firmware with real TFLM and run it on an emulated core",
        description="Compile the project's own src/main.cpp and lib/model/ with TFLite Micro for "
        "the board's core and run it in QEMU on test samples: outputs compared with the host TFLM "
        "interpreter, the arena, flash and RAM per part, and instructions per inference, all "
        "measured. report.json gets them in its device section.",
        epilog="TFLM source, in order: --tflm, $TINYFORGE_TFLM_DIR, the TFLM library PlatformIO "
        "installed in .pio/libdeps/, ~/.cache/tinyforge/tflm-source. exit status: 0 fits "
        "(measured), 2 cannot verify, 3 does not fit.",
    )
    p.add_argument("project", nargs="?", default=".")
    p.add_argument("--tflm", help="a TFLM source tree (kit or Arduino library)")
    p.add_argument("--kernels", choices=("cmsis_nn", "reference"), help="default: cmsis_nn")
    p.add_argument(
        "--core",
        choices=("cortex-m4f", "cortex-m7", "cortex-m0plus"),
        help="build for another core than the board's",
    )
    p.add_argument("--samples", type=int, help="test samples to run (default 64)")
    p.add_argument("--json", action="store_true", help="print the device figures as JSON")
    p.add_argument("-v", "--verbose", action="store_true")
    p.set_defaults(func=cmd_verify)


def _add_deploy(sub: Subcommands) -> None:
    p = sub.add_parser(
        "deploy",
        help="build the firmware with PlatformIO; --upload flashes it, --monitor shows its output",
        description="Run the project's PlatformIO build (pio run -e ENV), then optionally upload "
        "it and open the serial monitor. Compiler errors and memory overflows are reported with "
        "the figures that explain them.",
        epilog="exit status: 0 done; 1 the firmware does not compile; 2 PlatformIO cannot run "
        "here (platform not installed and no network, no board connected …); 3 the firmware "
        "does not fit the board's memory.",
    )
    p.add_argument("project", nargs="?", default=".")
    p.add_argument("--env", help="PlatformIO env (default: the project's default env)")
    p.add_argument("--upload", action="store_true", help="upload to the board after building")
    p.add_argument("--port", help="serial port of the board (default: auto-detect)")
    p.add_argument("--monitor", action="store_true", help="then show the board's serial output")
    p.add_argument("--seconds", type=float, help="stop the monitor after this many seconds")
    p.add_argument(
        "--timeout", type=float, default=1800.0, help="longest wait for PlatformIO, in seconds"
    )
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p.add_argument("-v", "--verbose", action="store_true", help="show PlatformIO's output")
    p.set_defaults(func=cmd_deploy)


def _add_repair(sub: Subcommands) -> None:
    p = sub.add_parser("repair", help="propose fixes for a failed build (a diff; --yes applies)")
    p.add_argument("project", nargs="?", default=".")
    p.add_argument("--yes", action="store_true", help="apply the proposed fixes")
    p.add_argument("--log", help="a log to diagnose instead of the last build (e.g. pio run)")
    p.add_argument(
        "--repairer",
        choices=("offline", "claude"),
        default="offline",
        help="offline rules (default); claude: the rules, then Claude for the rest",
    )
    p.add_argument("--model", help="Claude model id (default: $TINYFORGE_CLAUDE_MODEL or built-in)")
    p.add_argument("--json", action="store_true", help="print failures and fixes as JSON")
    p.set_defaults(func=cmd_repair)


def _add_boards(sub: Subcommands) -> None:
    p = sub.add_parser("boards", help="list supported boards")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_boards)


def _add_inspect(sub: Subcommands) -> None:
    p = sub.add_parser(
        "inspect", help="what a .tflite/.onnx/.keras model needs: ops, arena, RAM, flash"
    )
    p.add_argument("model", help="a .tflite, .onnx, .keras or .h5 file")
    where = p.add_mutually_exclusive_group()
    where.add_argument("--board", help="board id: check the model against its limits")
    where.add_argument("--project", help="project folder (tinyforge.toml or platformio.ini)")
    p.add_argument("--json", action="store_true", help="print the report as one JSON object")
    p.add_argument(
        "--static", action="store_true", help="static estimate only, no TFLM measurement"
    )
    p.add_argument(
        "--quantization",
        choices=("int8", "float32"),
        default="int8",
        help="how Keras models are converted for inspection (default int8)",
    )
    p.add_argument(
        "--convert",
        action="store_true",
        help="for .onnx: convert with onnx2tf first and inspect the int8 model (exact figures)",
    )
    p.add_argument("--calibration", help="with --convert: a .npy, an image folder or a project")
    p.set_defaults(func=cmd_inspect)


def _add_convert(sub: Subcommands) -> None:
    p = sub.add_parser(
        "convert",
        help="convert an ONNX model (e.g. from PyTorch) to int8 TFLite Micro, verified",
    )
    p.add_argument("model", help="an .onnx file (or a project folder: convert its model again)")
    p.add_argument("--board", help="board id (a project's own board otherwise)")
    p.add_argument(
        "--calibration",
        help="calibration inputs: a .npy (N samples), an image folder or a TinyForge project "
        "(random inputs with a warning when missing)",
    )
    p.add_argument("--out", help="write a project folder (C array, main.cpp, platformio.ini)")
    p.add_argument("--input-shape", help="fix open input dimensions, e.g. 1,3,96,96")
    p.add_argument("--quantization", choices=("int8", "float32"), default="int8")
    p.add_argument(
        "--min-agreement",
        type=float,
        default=0.99,
        help="least float32 top-1 agreement with onnxruntime (default 0.99)",
    )
    p.add_argument("--force", action="store_true", help="write into a non-empty --out folder")
    p.add_argument(
        "--convert-timeout",
        type=float,
        metavar="SECONDS",
        help="stop the convert stage (onnx2tf) after SECONDS (default: timeouts.convert in the "
        "project's spec)",
    )
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.add_argument("-v", "--verbose", action="store_true", help="show onnx2tf's output")
    p.set_defaults(func=cmd_convert)


def _add_fit(sub: Subcommands) -> None:
    p = sub.add_parser(
        "fit",
        help="search architectures that fit the board's RAM/flash budget; the best into train.py",
        description="Search model architectures for the project's task (Optuna): candidates the "
        "static estimate says cannot fit are rejected untrained, the rest train briefly, are "
        "converted and measured in TFLM. Prints the Pareto front of accuracy, RAM, flash and "
        "MACs, plots it (fit/pareto.png) and writes the chosen model as train.py.tinyforge-new "
        "(train.py with --apply).",
        epilog="exit status: 0 a model fits; 2 the search failed; 3 no candidate fits.",
    )
    p.add_argument("project", nargs="?", default=".")
    p.add_argument(
        "--budget-ram",
        help="RAM the model may take: its tensor arena on the 32-bit target, e.g. 64KB "
        "(the project's budget in tinyforge.toml holds as well)",
    )
    p.add_argument("--budget-flash", help="flash the model (.tflite) may take, e.g. 200KB")
    p.add_argument("--trials", type=int, default=20, help="candidates to train (default 20)")
    p.add_argument("--epochs", type=int, default=8, help="epochs per trial (default 8)")
    p.add_argument("--engine", choices=("local", "ray"), default="local")
    p.add_argument(
        "--address", help="a Ray cluster, HOST:PORT (--engine ray; default: Ray started here)"
    )
    p.add_argument("--seed", type=int, default=0, help="the search's seed (default 0)")
    p.add_argument(
        "--batch",
        type=int,
        default=4,
        help="candidates proposed per round; with the seed it fixes the search on any engine",
    )
    p.add_argument(
        "--apply", action="store_true", help="write train.py itself, not train.py.tinyforge-new"
    )
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p.add_argument("-v", "--verbose", action="store_true", help="show every trial as it goes")
    p.set_defaults(func=cmd_fit)


def _add_lsp(sub: Subcommands) -> None:
    p = sub.add_parser("lsp", help="run the language server on stdio (for editors)")
    p.set_defaults(func=cmd_lsp)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from tinyforge import journal

    try:
        # A build killed earlier is restored by the next command that takes its project's lock
        # (journal.py): that one sentence is printed like any note, on stderr.
        with journal.notices_to(lambda _project, sentence: print_notices([sentence])):
            return int(args.func(args))
    except StageError as exc:
        # escape: a message quotes user input ("[/red]" is a board name, not markup).
        err_console.print(f"[bold red]error[/] ({escape(exc.stage)}): {escape(str(exc))}")
        if exc.log_tail and getattr(args, "verbose", False):
            err_console.print(exc.log_tail, markup=False)
        if args.command == "build":
            err_console.print(f"Proposed fixes: [bold]tinyforge repair {args.project}[/]")
        return 2
    except TinyForgeError as exc:
        err_console.print(f"[bold red]error:[/] {escape(str(exc))}", highlight=False)
        return 2
    except KeyboardInterrupt:
        err_console.print("cancelled")
        return 130


if __name__ == "__main__":
    sys.exit(main())
