"""What the VS Code client shows outside the text: the status-bar figures and the inspect report.

Both come from the project a file belongs to (the nearest tinyforge.toml or platformio.ini):
measured figures from report.json when a build is newer than the training script, else the
static estimate of the model script (the open document's analysis when it is open, the one
its diagnostics and lens come from, lsp/analyses.py). The shapes
are report.py's ProjectStatus and InspectView, sent as JSON (the client's types are generated
from their schema).
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

from tinyforge.errors import TinyForgeError
from tinyforge.lsp.arguments import path_argument, workspace_folder
from tinyforge.lsp.documents import file_uri
from tinyforge.lsp.model_checks import Analysis, analyse, models
from tinyforge.lsp.server import TinyForgeServer
from tinyforge.project import ProjectContext
from tinyforge.report import (
    BuildReport,
    InspectReport,
    InspectView,
    LayerRow,
    ProjectStatus,
    current_report,
)

MODEL_SUFFIXES = (".tflite", ".onnx", ".keras", ".h5")


def register(server: TinyForgeServer) -> None:
    @server.command("tinyforge.projectStatus")
    def project_status_command(ls: TinyForgeServer, file: str = "") -> dict[str, Any]:
        return project_status(ls, _start(ls, file))

    @server.command("tinyforge.inspect")
    async def inspect_command(ls: TinyForgeServer, file: str = "") -> dict[str, Any]:
        return await asyncio.to_thread(inspect, ls, _start(ls, file))


def _start(server: TinyForgeServer, value: str) -> Path:
    """The file or folder asked about, else the first workspace folder, else here."""
    return path_argument(value) or workspace_folder(server) or Path.cwd()


def _script(
    server: TinyForgeServer, path: Path, ctx: ProjectContext
) -> tuple[Path, list[Analysis]] | None:
    """The model script, `path` when it is a .py file, else train.py, and its models' figures:
    the open document's analysis (its buffer, figures already made), else the file's."""
    candidates = []
    if path.suffix == ".py":
        candidates.append(path)
    if ctx.root is not None:
        candidates.append(ctx.root / "train.py")
    for script in candidates:
        analysis = server.analyses.current(file_uri(script))
        if analysis is not None:
            return script, models(server, analysis)
        try:
            text = script.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError):
            continue
        return script, analyse(text, ctx, margin=server.settings.arena_margin)
    return None


def _build_report(ctx: ProjectContext) -> BuildReport | None:
    """report.json of the project's last build, when it is newer than its train.py."""
    return current_report(ctx.root) if ctx.root is not None else None


def _history(ctx: ProjectContext, measured: BuildReport | None) -> dict[str, list[float]] | None:
    if measured is not None and measured.history is not None:
        return measured.history
    if ctx.root is None:
        return None
    metrics = ctx.root / "artifacts" / "metrics.json"
    try:
        history = json.loads(metrics.read_text(encoding="utf-8")).get("history")
    except (OSError, ValueError, AttributeError):
        return None
    return history if isinstance(history, dict) else None


def project_status(server: TinyForgeServer, path: Path) -> dict[str, Any]:
    """Board, RAM and flash (estimate or measured) against the budget, for the status bar."""
    ctx = server.projects.context_of(path, server.settings.board)
    status = ProjectStatus(
        ok=True,
        root=str(ctx.root) if ctx.root else None,
        source=ctx.source,
        board=ctx.board.id if ctx.board else None,
        board_name=ctx.board.name if ctx.board else None,
        ram_budget=ctx.budget.ram_bytes if ctx.budget else None,
        flash_budget=ctx.budget.flash_bytes if ctx.budget else None,
        ram_bytes_estimate=None,
        flash_bytes_estimate=None,
        arena_bytes=None,
        fits=None,
        measured=False,
        model_file=None,
        problems=list(ctx.problems),
    )
    if ctx.board is None:
        return status.to_json()
    measured = _build_report(ctx)
    if measured is not None and measured.board in (None, ctx.board.id):
        status.ram_bytes_estimate = measured.ram_bytes_estimate
        status.flash_bytes_estimate = measured.flash_bytes_estimate
        status.arena_bytes = measured.arena_bytes_target
        status.fits = measured.fits
        status.measured = True
        status.model_file = str(ctx.root / "model.tflite") if ctx.root else None
        if measured.budget is not None:
            status.ram_budget = measured.budget.ram_bytes
            status.flash_budget = measured.budget.flash_bytes
        return status.to_json()
    found = _script(server, path, ctx)
    if found is None:
        return status.to_json()
    script, figures = found
    for a in figures:
        if a.verdict is None or a.estimate is None:
            continue
        status.ram_bytes_estimate = a.verdict.ram_bytes_estimate
        status.flash_bytes_estimate = a.verdict.flash_bytes_estimate
        status.arena_bytes = a.estimate.arena_bytes_target
        status.fits = a.verdict.fits
        status.model_file = str(script)
        break
    return status.to_json()


def _static_layers(analysis: Analysis) -> list[LayerRow]:
    assert analysis.estimate is not None
    return [
        LayerRow(
            index=fig.index,
            name=f"{fig.class_name} (line {layer.line + 1})",
            op=fig.op or "(folded)",
            output_shape=list(fig.out_shape),
            params_bytes=fig.param_bytes,
            activation_bytes=fig.activation_bytes,
            macs=fig.macs,
        )
        for fig, layer in zip(analysis.estimate.layers, analysis.model.layers, strict=True)
    ]


def _inspect_module() -> Any | None:
    """`tinyforge inspect` (memory/inspect.py) when this version of the package has it."""
    try:
        from tinyforge.memory import inspect as inspect_module
    except ImportError:
        return None
    return inspect_module if hasattr(inspect_module, "inspect_model") else None


def inspect_file(server: TinyForgeServer, path: Path) -> InspectView:
    """The inspect report of a .tflite/.onnx/.keras file (measured in TFLM)."""
    from tinyforge.project import find_project_root

    module = _inspect_module()
    if module is None:
        raise TinyForgeError(
            "This TinyForge server cannot inspect model files yet (no `tinyforge inspect`)."
        )
    root = find_project_root(path)
    board = None if root is not None else server.settings.board
    report: InspectReport = module.inspect_model(path, board=board, project=root)
    return InspectView.model_validate(
        {
            **report.to_json(),
            "ok": True,
            "kind": "model",
            "title": path.name,
            "measured": report.arena_bytes is not None,
            "history": None,
        }
    )


# What a project's report.json says over the static estimate of its model script.
_MEASURED_FIELDS = (
    "ram_bytes_estimate",
    "flash_bytes_estimate",
    "ram_parts",
    "flash_parts",
    "fits",
    "violations",
    "model_bytes",
    "arena_bytes",
    "arena_bytes_target",
    "budget",
    "float_accuracy",
    "int8_accuracy",
    "tflm_accuracy",
    "device",  # what the emulated board measured, or why it did not run
)


def inspect_project(server: TinyForgeServer, path: Path) -> InspectView:
    """Per-layer figures of the project's model plus its training curves."""
    ctx = server.projects.context_of(path, server.settings.board)
    measured = _build_report(ctx)
    view = InspectView(
        ok=True,
        kind="project",
        title=ctx.root.name if ctx.root else path.name,
        root=str(ctx.root) if ctx.root else None,
        board=ctx.board.id if ctx.board else None,
        budget=ctx.budget,
        measured=measured is not None,
        layers=[],
        history=_history(ctx, measured),
        notes=[],
        problems=list(ctx.problems),
    )
    found = _script(server, path, ctx)
    if found is not None:
        script, figures = found
        view.model = str(script)
        for a in figures:
            if a.problem is not None:
                view.problems.append(f"Cannot size {script.name} statically: {a.problem}")
                continue
            if a.estimate is None:
                continue
            view.layers = _static_layers(a)
            view.arena_bytes_target = a.estimate.arena_bytes_target
            view.model_bytes = a.estimate.model_bytes_estimate
            view.notes.append(
                f"Per-layer figures: static estimate of {script.name} (int8, nothing executed)."
            )
            if a.verdict is not None:
                view.set_verdict(a.verdict)
            break
    if measured is not None:
        for name in _MEASURED_FIELDS:
            if name in measured.model_fields_set:
                setattr(view, name, getattr(measured, name))
        tflite = ctx.root / "model.tflite" if ctx.root else None
        module = _inspect_module()
        if tflite is not None and tflite.is_file() and module is not None:
            try:
                exact: InspectReport = module.inspect_model(tflite, project=ctx.root, measure=False)
                view.layers = exact.layers or view.layers
                view.notes = [f"Per-layer figures: {tflite.name} (the converted model)."]
            except TinyForgeError as exc:
                view.notes.append(f"Could not read {tflite.name}: {exc}")
        view.notes.append("RAM and flash: measured by the last build (report.json).")
    from tinyforge.lsp.fit import fit_section

    # The last `tinyforge fit` of the project: its front, the choice and the plot.
    view.fit = fit_section(ctx.root)
    return view


def inspect(server: TinyForgeServer, path: Path) -> dict[str, Any]:
    if path.suffix.lower() in MODEL_SUFFIXES and path.is_file():
        return inspect_file(server, path).to_json()
    return inspect_project(server, path).to_json()
