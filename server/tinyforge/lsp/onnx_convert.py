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

from lsprotocol import types as lsp
from pygls.uris import from_fs_path

from tinyforge.errors import TinyForgeError
from tinyforge.lsp.documents import doc_path
from tinyforge.lsp.server import TinyForgeServer

CONVERT_TITLE = "Convert {name} to int8 TFLite Micro"
# The call on one line (a fallback while the file does not parse, e.g. mid-edit).
# Matched at the line's first `onnx.export` only: searched, each later start rescanned the rest.
_EXPORT_LINE = re.compile(
    r"""onnx\.export\s*\((?P<args>.*?)(?P<q>["'])(?P<path>[^"']+\.onnx)(?P=q)"""
)


# --- the command ------------------------------------------------------------------------------


def _path(arg: Any) -> Path | None:
    if not isinstance(arg, str) or not arg:
        return None
    return doc_path(arg) if arg.startswith("file:") else Path(arg)


def is_onnx_file(arg: Any) -> bool:
    path = _path(arg)
    return path is not None and path.suffix.lower() == ".onnx" and path.is_file()


def _board(server: TinyForgeServer, model: Path, options: dict[str, Any]) -> str:
    if isinstance(options.get("board"), str) and options["board"]:
        return str(options["board"])
    from tinyforge.project import load_context

    context = load_context(model, server.settings.board)
    if context.board is not None:
        return context.board.id
    raise TinyForgeError(
        "Select a board first (TinyForge: Select board…): the conversion checks the model "
        "against its RAM and flash."
    )


def default_out(model: Path) -> Path:
    """A project folder beside the model that holds nothing yet (never over a user's files)."""
    from tinyforge.lsp.actions import free_folder

    name = re.sub(r"[^A-Za-z0-9_\-]", "_", model.stem) or "model"
    return free_folder(model.parent, f"{name}_tinyml")


def convert_file_work(server: TinyForgeServer, args: list[Any]) -> Any:
    """(progress, cancel) → result dict, for `long_job`; TinyForgeError for bad arguments.

    Arguments: the .onnx file (path or URI), then optionally an options object with `board`,
    `out` (the project folder; default `<stem>_tinyml` beside the file), `calibration` (a .npy,
    an image folder or a project) and `inputShape` (e.g. [1, 3, 96, 96]).
    """
    model = _path(args[0]) if args else None
    if model is None:
        raise TinyForgeError("Give the .onnx file to convert as the command's first argument.")
    if model.suffix.lower() != ".onnx":
        raise TinyForgeError(f"{model.name} is not an .onnx file.")
    options = args[1] if len(args) > 1 and isinstance(args[1], dict) else {}
    board = _board(server, model, options)
    out = _path(options.get("out")) or default_out(model)
    calibration = _path(options.get("calibration"))
    shape = options.get("inputShape")
    input_shape = [int(d) for d in shape] if isinstance(shape, list) and shape else None

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
    server: TinyForgeServer, document: Any, params: lsp.CodeActionParams
) -> list[lsp.CodeAction]:
    if "onnx" not in document.source:
        return []
    first, last = params.range.start.line, params.range.end.line
    document_path = doc_path(document.uri)
    actions = []
    for start, end, relative in _export_calls(document.source):
        if end < first or start > last:
            continue
        target = _resolve(server, document_path, relative)
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
        uri = from_fs_path(str(target)) or str(target)
        actions.append(
            lsp.CodeAction(
                title=title,
                kind=lsp.CodeActionKind.RefactorRewrite,
                command=lsp.Command(title=title, command="tinyforge.convertFile", arguments=[uri]),
            )
        )
    return actions
