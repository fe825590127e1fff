"""`tinyforge fit` in the editor: a code action on the model definition and the command it runs.

The code action "Find the best model that fits <board>" sits on `build_model` of a project's
train.py. Its command, `tinyforge.fit`, runs the search in a worker thread (trials in child
processes, `$/progress` with cancel, like tinyforge.train) and answers with the front, the
plot and the chosen model as a WorkspaceEdit of train.py. When the editor can preview edits
(change annotations), the server also asks it to apply that edit with a confirmation, so the
user sees the diff (VS Code's refactor preview) and accepts or discards it (lsp/preview.py).
"""

from __future__ import annotations

import ast
import base64
import json
import threading
from pathlib import Path
from typing import Any

import attrs
from lsprotocol import types as lsp
from lsprotocol.converters import get_converter

from tinyforge.lsp.analyses import DocumentAnalysis
from tinyforge.lsp.arguments import project_argument
from tinyforge.lsp.preview import Confirmation, current_text, offer_edit, workspace_edit
from tinyforge.lsp.progress import Work, long_job
from tinyforge.lsp.server import TinyForgeServer
from tinyforge.repair.fixes import FileEdit

FIT_TITLE = "Find the best model that fits"
COMMAND = "tinyforge.fit"
ANNOTATION = "tinyforge-fit"
MODEL_FUNCTIONS = ("build_model", "build_models")


@attrs.define(frozen=True)
class FitArguments:
    """The search's options, each optional (tinyforge.fit's defaults); sizes as 64KB or bytes."""

    budget_ram: int | str | None = attrs.field(default=None, alias="budgetRam")
    budget_flash: int | str | None = attrs.field(default=None, alias="budgetFlash")
    trials: int | None = None
    epochs: int | None = None
    engine: str | None = None
    address: str | None = None
    seed: int | None = None
    batch: int | None = None
    apply: bool = True  # False: the chosen model comes in the reply only, not as a preview

    def options(self) -> Any:
        from tinyforge.fit import FitOptions, parse_size

        def size(value: int | str | None) -> int | None:
            if value in (None, ""):
                return None
            return value if isinstance(value, int) else parse_size(str(value))

        values: dict[str, Any] = {
            "budget_ram": size(self.budget_ram),
            "budget_flash": size(self.budget_flash),
            **attrs.asdict(self, filter=lambda a, _: a.name not in ("budget_ram", "budget_flash")),
        }
        del values["apply"]
        return FitOptions(**{k: v for k, v in values.items() if v not in (None, "")})


DEFAULTS = FitArguments()


def register(server: TinyForgeServer) -> None:
    server.features.code_actions.append(fit_code_actions)

    @server.command(COMMAND)
    async def fit_command(
        ls: TinyForgeServer, project: str = "", options: FitArguments = DEFAULTS
    ) -> dict[str, Any]:
        """The search, then the chosen model as an edit of train.py the editor previews."""
        work = fit_work(ls, project_argument(ls, project), options)
        result = await long_job(ls, "TinyForge: finding the best model that fits", work)
        return await offer_edit(ls, result, apply=options.apply) if result.get("ok") else result


def _model_span(text: str) -> tuple[int, int] | None:
    """0-based first and last line of train.py's model function."""
    try:
        tree = ast.parse(text)
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return None
    for node in tree.body:
        if isinstance(node, ast.FunctionDef) and node.name in MODEL_FUNCTIONS:
            start = (node.decorator_list[0] if node.decorator_list else node).lineno - 1
            return start, (node.end_lineno or node.lineno) - 1
    return None


def fit_code_actions(
    server: TinyForgeServer, analysis: DocumentAnalysis, params: lsp.CodeActionParams
) -> list[lsp.CodeAction]:
    """On the model definition of a TinyForge project's train.py."""
    if not analysis.name.endswith(".py"):
        return []
    path = analysis.path
    ctx = analysis.context(server.projects)
    if path is None or ctx.root is None or ctx.spec is None or ctx.board is None:
        return []
    if ctx.spec.model is not None or path.resolve() != (ctx.root / "train.py").resolve():
        return []
    span = analysis.part("model span", lambda: _model_span(analysis.text))
    if span is None or not span[0] <= params.range.start.line <= span[1]:
        return []
    title = f"{FIT_TITLE} {ctx.board.id}"
    return [
        lsp.CodeAction(
            title=title,
            kind=lsp.CodeActionKind.RefactorRewrite,
            command=lsp.Command(title=title, command=COMMAND, arguments=[str(ctx.root)]),
        )
    ]


# -- the command ----------------------------------------------------------------------------


def chosen_model_edit(
    server: TinyForgeServer, project: Path, write_back: Any, label: str, reasons: str
) -> lsp.WorkspaceEdit:
    """train.py (the editor's buffer when it is open) and, when the input changes, the spec."""
    edits = []
    for name in ("train.py", "tinyforge.toml"):
        current = current_text(server, project / name)
        if name == "train.py":
            new = write_back.against(current).train_py
        elif write_back.spec_toml is not None:
            new = write_back.spec_toml
        else:
            continue
        edits.append(FileEdit(name, current or "", new))
    return workspace_edit(project, edits, confirm=Confirmation(ANNOTATION, label, reasons))


def fit_work(server: TinyForgeServer, project: Path, arguments: FitArguments) -> Work:
    """The search as long_job's work (its options checked now, before any job starts)."""
    from tinyforge.fit import fit

    options = arguments.options()

    def work(progress: Any, cancel: threading.Event) -> dict[str, Any]:
        result = fit(project, options, progress=progress, cancel=cancel)
        answer: dict[str, Any] = {
            "fit": result.to_dict(),
            "reasons": result.reasons,
            "plot": str(result.plot) if result.plot else None,
            "report": str(result.report_path),
            "edit": None,
        }
        if result.write_back is not None and result.chosen is not None:
            label = f"TinyForge fit: #{result.chosen['number']} {result.chosen['candidate']}"
            edit = chosen_model_edit(server, project, result.write_back, label, result.reasons)
            answer["edit"] = get_converter().unstructure(edit)
            answer["label"] = label
        return answer

    return work


def fit_section(root: Path | None) -> dict[str, Any] | None:
    """The last search of a project for the report view: its summary and the plot inline."""
    if root is None:
        return None
    from tinyforge.fit import FIT_DIR

    report = root / FIT_DIR / "fit.json"
    try:
        data = json.loads(report.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict):
        return None
    section = {k: data.get(k) for k in ("board", "target", "counts", "front", "chosen", "reasons")}
    section["kept"] = [
        {
            k: t.get(k)
            for k in (
                "number",
                "candidate",
                "accuracy",
                "arena_bytes_target",
                "model_bytes",
                "macs",
                "on_front",
            )
        }
        for t in data.get("trials") or []
        if t.get("status") == "kept"
    ]
    plot = _project_png(root, data.get("plot"))
    if plot is not None:
        section["plot"] = str(plot)
        section["plot_data_uri"] = "data:image/png;base64," + base64.b64encode(
            plot.read_bytes()
        ).decode("ascii")
    return section


PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
MAX_PLOT_BYTES = 20_000_000


def _project_png(root: Path, value: object) -> Path | None:
    """fit.json's plot when it is a PNG file inside the project (links resolved), else None:
    a crafted fit.json must not make the editor read /etc/passwd or any file outside."""
    if not isinstance(value, str) or not value or "\0" in value:
        return None
    try:
        project = root.resolve()
        path = (project / value).resolve()  # an absolute value stays absolute
        if not path.is_relative_to(project) or not path.is_file():
            return None
        if path.stat().st_size > MAX_PLOT_BYTES:
            return None
        with path.open("rb") as handle:
            if handle.read(len(PNG_MAGIC)) != PNG_MAGIC:
                return None
    except (OSError, ValueError):
        return None
    return path
