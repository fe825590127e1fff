"""The editor's doors onto `tinyforge convert` for ONNX files.

- `tinyforge.convertFile` (and `tinyforge.convert` given an .onnx file): converts, verifies and
  writes a project beside the file, with progress and cancel like the other long commands.
- A code action on a `torch.onnx.export(...)` call offers to convert the file it exports.

Nothing heavy is imported here: the conversion runs in a worker thread that drives child
processes (onnx2tf, TFLM), as `commands.py` does for builds.
"""

from __future__ import annotations

import ast
import re
import threading
from pathlib import Path
from typing import Any

import attrs
from lsprotocol import types as lsp

from tinyforge.errors import TinyForgeError
from tinyforge.lsp.analyses import DocumentAnalysis
from tinyforge.lsp.arguments import path_argument
from tinyforge.lsp.documents import doc_path, file_uri
from tinyforge.lsp.progress import Work, long_job
from tinyforge.lsp.server import TinyForgeServer

CONVERT_TITLE = "Convert {name} to int8 TFLite Micro"
# The call on one line (a fallback while the file does not parse, e.g. mid-edit).
# Matched at the line's first `onnx.export` only: searched, each later start rescanned the rest.
_EXPORT_LINE = re.compile(
    r"""onnx\.export\s*\((?P<args>.*?)(?P<q>["'])(?P<path>[^"']+\.onnx)(?P=q)"""
)


@attrs.define(frozen=True)
class ConvertOptions:
    """Each optional: the board (else the project's or the setting's), the project folder
    (default `<stem>_tinyml` beside the file), the calibration data (a .npy, an image folder
    or a project), the input shape (e.g. [1, 3, 96, 96]) and the seconds the onnx2tf run may
    take (else the `tinyforge.convert.timeoutSeconds` setting, else the project's)."""

    board: str | None = None
    out: str | None = None
    calibration: str | None = None
    input_shape: list[int] | None = attrs.field(default=None, alias="inputShape")
    timeout: float | None = None


DEFAULTS = ConvertOptions()


def register(server: TinyForgeServer) -> None:
    server.features.code_actions.append(onnx_export_actions)

    @server.command("tinyforge.convertFile")
    async def convert_file_command(
        ls: TinyForgeServer, model: str = "", options: ConvertOptions = DEFAULTS
    ) -> dict[str, Any]:
        """An .onnx file → a verified int8 TFLite Micro project."""
        return await convert_file(ls, model, options)


async def convert_file(
    server: TinyForgeServer, model: str, options: ConvertOptions
) -> dict[str, Any]:
    """tinyforge.convertFile, and tinyforge.convert given an .onnx file."""
    work = convert_file_work(server, model, options)
    return await long_job(server, "TinyForge: converting ONNX", work)


# --- the command ------------------------------------------------------------------------------


def is_onnx_file(value: str) -> bool:
    path = path_argument(value)
    return path is not None and path.suffix.lower() == ".onnx" and path.is_file()


def _board(server: TinyForgeServer, model: Path, options: ConvertOptions) -> str:
    if options.board:
        return options.board
    context = server.projects.context_of(model, server.settings.board)
    if context.board is not None:
        return context.board.id
    raise TinyForgeError(
        "Select a board first (TinyForge: Select board…): the conversion checks the model "
        "against its RAM and flash."
    )


def default_out(model: Path) -> Path:
    """A project folder beside the model that holds nothing yet (never over a user's files)."""
    from tinyforge.lsp.new_project import free_folder

    name = re.sub(r"[^A-Za-z0-9_\-]", "_", model.stem) or "model"
    return free_folder(model.parent, f"{name}_tinyml")


def convert_file_work(server: TinyForgeServer, file: str, options: ConvertOptions) -> Work:
    """The conversion as long_job's work; a TinyForgeError now for bad arguments."""
    model = path_argument(file)
    if model is None:
        raise TinyForgeError("Give the .onnx file to convert as the command's first argument.")
    if model.suffix.lower() != ".onnx":
        raise TinyForgeError(f"{model.name} is not an .onnx file.")
    board = _board(server, model, options)
    out = path_argument(options.out or "") or default_out(model)
    calibration = path_argument(options.calibration or "")
    input_shape = list(options.input_shape) if options.input_shape else None
    timeout = options.timeout or server.settings.convert_timeout

    def work(progress: Any, cancel: threading.Event) -> dict[str, Any]:
        from tinyforge.convert.onnx import convert_onnx

        result = convert_onnx(
            model,
            board=board,
            calibration=calibration,
            out=out,
            input_shape=input_shape,
            progress=progress,
            cancel=cancel,
            timeout=timeout,
        )
        return {
            "report": result.report.to_json(),
            "project": str(out),
            "tflite": str(result.tflite_path),
            "fits": result.fits,
            "notices": result.notices,
        }

    return work


# --- the code action --------------------------------------------------------------------------


def _export_calls(source: str) -> list[tuple[int, int, str]]:
    """(first line, last line, output path) of each `torch.onnx.export(...)` with a literal."""
    try:
        tree = ast.parse(source)
    except SyntaxError:
        found = []
        for number, line in enumerate(source.splitlines()):
            start = line.find("onnx.export")
            match = _EXPORT_LINE.match(line, start) if start >= 0 else None
            if match:
                found.append((number, number, match.group("path")))
        return found
    calls = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call) or not _is_onnx_export(node.func):
            continue
        target = next((k.value for k in node.keywords if k.arg == "f"), None)
        if target is None and len(node.args) >= 3:
            target = node.args[2]
        path = _literal_path(target)
        if path is not None:
            end = node.end_lineno or node.lineno
            calls.append((node.lineno - 1, end - 1, path))
    return calls


def _is_onnx_export(func: ast.expr) -> bool:
    # torch.onnx.export(...) or onnx.export(...) after `from torch import onnx`.
    return (
        isinstance(func, ast.Attribute)
        and func.attr == "export"
        and (
            (isinstance(func.value, ast.Attribute) and func.value.attr == "onnx")
            or (isinstance(func.value, ast.Name) and func.value.id == "onnx")
        )
    )


def _literal_path(node: ast.expr | None) -> str | None:
    """A string literal, or Path("...") / pathlib.Path("...") around one."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    if (
        isinstance(node, ast.Call)
        and node.args
        and (
            (isinstance(node.func, ast.Name) and node.func.id == "Path")
            or (isinstance(node.func, ast.Attribute) and node.func.attr == "Path")
        )
    ):
        return _literal_path(node.args[0])
    return None


def _resolve(server: TinyForgeServer, document_path: Path | None, relative: str) -> Path:
    """Where the script writes the file: beside the script, else in a workspace folder."""
    path = Path(relative).expanduser()
    if path.is_absolute():
        return path
    bases = [document_path.parent] if document_path else []
    for folder in server.workspace.folders.values():
        found = doc_path(folder.uri)
        if found is not None:
            bases.append(found)
    for base in bases:
        if (base / path).is_file():
            return base / path
    return (bases[0] if bases else Path.cwd()) / path


def onnx_export_actions(
    server: TinyForgeServer, analysis: DocumentAnalysis, params: lsp.CodeActionParams
) -> list[lsp.CodeAction]:
    if "onnx" not in analysis.text:
        return []
    first, last = params.range.start.line, params.range.end.line
    actions = []
    calls = analysis.part("onnx exports", lambda: _export_calls(analysis.text))
    for start, end, relative in calls:
        if end < first or start > last:
            continue
        target = _resolve(server, analysis.path, relative)
        title = CONVERT_TITLE.format(name=target.name)
        if not target.is_file():
            reason = f"{relative} does not exist yet: run the script to export it first."
            actions.append(
                lsp.CodeAction(
                    title=f"{title} (run the export first)",
                    kind=lsp.CodeActionKind.RefactorRewrite,
                    disabled=lsp.CodeActionDisabled(reason=reason),
                )
            )
            continue
        uri = file_uri(target)
        actions.append(
            lsp.CodeAction(
                title=title,
                kind=lsp.CodeActionKind.RefactorRewrite,
                command=lsp.Command(title=title, command="tinyforge.convertFile", arguments=[uri]),
            )
        )
    return actions
