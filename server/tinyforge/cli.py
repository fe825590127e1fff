"""`tinyforge` on the command line: a thin door onto the pipeline."""

from __future__ import annotations

import argparse
import json
import sys
import threading
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Column, Table

from tinyforge.errors import StageError, TinyForgeError

console = Console(stderr=False, highlight=False, soft_wrap=True)
err_console = Console(stderr=True, highlight=False, soft_wrap=True)


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


def _kb(n: int | None) -> str:
    return "-" if n is None else f"{n / 1024:,.1f} KB"


def _pct(x: float | None) -> str:
    return "-" if x is None else f"{100 * x:.1f}%"


def print_report(report: dict[str, Any]) -> None:
    table = Table(
        title=f"TinyForge report — {report['project']} on {report['board']}", show_header=False
    )
    table.add_column("what", style="bold")
    table.add_column("figure")
    budget = report["budget"]
    table.add_row(
        "accuracy (float / int8 / TFLM)",
        " / ".join(
            _pct(report.get(k)) for k in ("float_accuracy", "int8_accuracy", "tflm_accuracy")
        ),
    )
    table.add_row("model", f"{report['model_bytes']:,} bytes ({report['params']:,} parameters)")
    table.add_row(
        "tensor arena (measured, TFLM)",
        f"{report['arena_bytes']:,} bytes on the 64-bit host; ~{report['arena_bytes_target']:,} "
        "bytes on the 32-bit target",
    )
    table.add_row(
        "RAM estimate", f"{_kb(report['ram_bytes_estimate'])} of {_kb(budget['ram_bytes'])}"
    )
    table.add_row(
        "flash estimate", f"{_kb(report['flash_bytes_estimate'])} of {_kb(budget['flash_bytes'])}"
    )
    table.add_row("operators", ", ".join(f"{k}×{v}" for k, v in sorted(report["ops"].items())))
    console.print(table)
    for notice in report.get("notices", []):
        console.print(f"[yellow]note:[/] {notice}")
    if report["fits"]:
        console.print(
            f"[bold green]Fits[/] {report['board']}: RAM {_kb(report['ram_bytes_estimate'])} "
            f"/ {_kb(budget['ram_bytes'])}, flash {_kb(report['flash_bytes_estimate'])} / "
            f"{_kb(budget['flash_bytes'])}."
        )
    else:
        for v in report["violations"]:
            console.print(f"[bold red]Does not fit:[/] {v['message']}")


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
    spec = pipeline.plan(args.request, board=args.board, planner=args.planner)
    if args.json:
        print(spec.model_dump_json(indent=2))
    else:
        print(spec.to_toml())
    return 0


def cmd_new(args: argparse.Namespace) -> int:
    from tinyforge import pipeline

    out = Path(args.out) if args.out else Path.cwd()
    spec, written = pipeline.new_project(
        args.request, out, board=args.board, planner=args.planner, force=args.force
    )
    console.print(f"Created [bold]{out}[/] for {spec.board} ({spec.task.value}).")
    for name in written.written:
        console.print(f"  wrote {name}")
    for line in written.describe_kept():
        console.print(f"  [yellow]{line}[/]")
    for assumption in spec.assumptions:
        console.print(f"  [dim]assumed: {assumption}[/]")
    console.print(f"Next: [bold]tinyforge build {out}[/]")
    return 0


def cmd_build(args: argparse.Namespace) -> int:
    from tinyforge import pipeline

    cancel = threading.Event()
    columns = (
        SpinnerColumn(),
        TextColumn("{task.description}", table_column=Column(no_wrap=True, min_width=16)),
        BarColumn(bar_width=24),
        TimeElapsedColumn(),
        TextColumn(
            "[dim]{task.fields[status]}", table_column=Column(no_wrap=True, overflow="ellipsis")
        ),
    )
    with Progress(*columns, console=console, transient=False) as bar:
        progress = TerminalProgress(bar, args.verbose)
        try:
            result = pipeline.build(Path(args.project), progress=progress, cancel=cancel)
        except KeyboardInterrupt:
            cancel.set()
            raise
        progress.finish()
    if args.json:
        print(json.dumps(result.report, indent=2))
    else:
        print_report(result.report)
    return 0 if result.fits else 3


def cmd_boards(args: argparse.Namespace) -> int:
    from tinyforge.boards import all_boards

    boards = all_boards()
    if args.json:
        print(json.dumps([b.__dict__ for b in boards], indent=2, default=list))
        return 0
    table = Table(title="Supported boards")
    for column in ("id", "name", "MCU", "RAM", "flash", "TFLM library"):
        table.add_column(column)
    for b in boards:
        table.add_row(b.id, b.name, b.mcu, _kb(b.ram_bytes), _kb(b.flash_bytes), b.tflm_library)
    console.print(table)
    return 0


def cmd_lsp(args: argparse.Namespace) -> int:
    from tinyforge.lsp import main as serve

    serve()
    return 0


def _shape(shape: list[int]) -> str:
    return "×".join(str(d) for d in shape) or "scalar"


def _bytes(n: int | None) -> str:
    return "-" if n is None else f"{n:,}"


def print_inspect(report: dict[str, Any]) -> None:
    table = Table(title=f"{report['model']} ({report['format']}): memory per layer")
    for column in ("#", "layer", "op", "output", "dtype", "params B", "activation B", "MACs"):
        table.add_column(column, justify="right" if column.endswith(("B", "MACs", "#")) else "left")
    for layer in report.get("layers") or []:
        name = layer["name"]
        table.add_row(
            str(layer["index"]),
            name if len(name) <= 40 else "…" + name[-39:],
            layer["op"],
            _shape(layer["output_shape"]),
            layer["dtype"],
            f"{layer['params_bytes']:,}",
            f"{layer['activation_bytes']:,}",
            f"{layer['macs']:,}",
        )
    if report.get("layers"):
        console.print(table)
    summary = Table(show_header=False, box=None)
    summary.add_column("what", style="bold")
    summary.add_column("figure")
    ops = report.get("ops") or {}
    summary.add_row("operators", ", ".join(f"{k}×{v}" for k, v in ops.items()) or "-")
    if report.get("unsupported_ops"):
        summary.add_row("not in TFLM", ", ".join(report["unsupported_ops"]))
    summary.add_row("model", f"{_bytes(report.get('model_bytes'))} bytes")
    summary.add_row(
        "tensor arena (64-bit host)",
        f"measured {_bytes(report.get('arena_bytes'))} B, static estimate "
        f"{_bytes(report.get('arena_bytes_estimate'))} B, floor "
        f"{_bytes(report.get('arena_floor_bytes'))} B",
    )
    summary.add_row("tensor arena (32-bit MCU)", f"{_bytes(report.get('arena_bytes_target'))} B")
    budget = report.get("budget")
    for key, label, limit in (
        ("ram_bytes_estimate", "RAM estimate", "ram_bytes"),
        ("flash_bytes_estimate", "flash estimate", "flash_bytes"),
    ):
        figure = f"{_kb(report.get(key))}"
        if budget:
            figure += f" of {_kb(budget[limit])}"
        summary.add_row(label, figure)
    console.print(summary)
    for problem in report.get("problems") or []:
        console.print(f"[red]problem:[/] {problem}")
    for note in report.get("notes") or []:
        console.print(f"[yellow]note:[/] {note}")
    if report.get("fits") is True:
        console.print(
            f"[bold green]Fits[/] {report['board']}: RAM {_kb(report['ram_bytes_estimate'])} / "
            f"{_kb(budget['ram_bytes'])}, flash {_kb(report['flash_bytes_estimate'])} / "
            f"{_kb(budget['flash_bytes'])}."
        )
    elif report.get("fits") is False:
        for v in report["violations"]:
            console.print(f"[bold red]Does not fit:[/] {v['message']}")
    elif budget:
        console.print(f"[bold yellow]No verdict[/] for {report['board']}: see the problems above.")
    elif report.get("ram_bytes_estimate") is not None:
        console.print(
            f"Needs about RAM {_kb(report['ram_bytes_estimate'])} and flash "
            f"{_kb(report['flash_bytes_estimate'])} (default runtime costs; give --board for a "
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
    )
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        print_inspect(report)
    # 3: does not fit, or cannot run / cannot be sized as it stands (see problems).
    return 3 if report.get("fits") is False or report.get("problems") else 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="tinyforge", description="From one sentence to TinyML firmware, offline."
    )
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("plan", help="turn a request into a project spec (prints it)")
    p.add_argument("request", nargs="?")
    p.add_argument("--json", action="store_true", help="print the spec as JSON")
    p.add_argument("--schema", action="store_true", help="print the spec's JSON schema")
    p.add_argument("--board", help="board id (overrides the request)")
    p.add_argument("--planner", default="offline", help="offline (default)")
    p.set_defaults(func=cmd_plan)

    p = sub.add_parser("new", help="create a project folder from a request")
    p.add_argument("request")
    p.add_argument("--out", help="project folder (default: the current folder)")
    p.add_argument("--board", help="board id (overrides the request)")
    p.add_argument("--planner", default="offline")
    p.add_argument("--force", action="store_true", help="write into a non-empty folder")
    p.set_defaults(func=cmd_new)

    p = sub.add_parser("build", help="train, convert, measure and package a project")
    p.add_argument("project", nargs="?", default=".")
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.add_argument("-v", "--verbose", action="store_true", help="show the child processes' output")
    p.set_defaults(func=cmd_build)

    p = sub.add_parser("boards", help="list supported boards")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_boards)

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
    p.set_defaults(func=cmd_inspect)

    p = sub.add_parser("lsp", help="run the language server on stdio (for editors)")
    p.set_defaults(func=cmd_lsp)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args))
    except StageError as exc:
        err_console.print(f"[bold red]error[/] ({exc.stage}): {exc}")
        if exc.log_tail and getattr(args, "verbose", False):
            err_console.print(exc.log_tail, markup=False)
        return 2
    except TinyForgeError as exc:
        err_console.print(f"[bold red]error:[/] {exc}", highlight=False)
        return 2
    except KeyboardInterrupt:
        err_console.print("cancelled")
        return 130


if __name__ == "__main__":
    sys.exit(main())
