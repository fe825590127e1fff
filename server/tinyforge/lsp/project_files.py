"""The project's own files: tinyforge.toml against its schema and the board list, and each
[env] of platformio.ini (a board PlatformIO and TinyForge know, the same board as the spec, a
TFLite Micro library), with the quick fix that adds the library (`tinyforge repair`'s rule)."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

from lsprotocol import types as lsp
from pydantic import ValidationError

from tinyforge.boards import Board, get_board, suggest_boards
from tinyforge.errors import TinyForgeError
from tinyforge.lsp.analyses import DocumentAnalysis
from tinyforge.lsp.documents import find_key_line, line_range
from tinyforge.lsp.server import TinyForgeServer
from tinyforge.project import PLATFORMIO_INI, PioEnv, read_platformio_ini
from tinyforge.spec import SPEC_FILENAME, TOO_DEEP, ProjectSpec

SOURCE = "tinyforge"
MISSING_LIBRARY = "missing-tflm-library"


def register(server: TinyForgeServer) -> None:
    server.features.checks.append((lambda name: name == SPEC_FILENAME, spec_check))
    server.features.checks.append((lambda name: name == PLATFORMIO_INI, ini_check))
    server.features.code_actions.append(library_actions)


def _diag(
    rng: lsp.Range, message: str, severity: lsp.DiagnosticSeverity, code: str | None = None
) -> lsp.Diagnostic:
    return lsp.Diagnostic(range=rng, message=message, severity=severity, source=SOURCE, code=code)


# -- tinyforge.toml ---------------------------------------------------------------------------


def spec_check(server: TinyForgeServer, analysis: DocumentAnalysis) -> list[lsp.Diagnostic]:
    return spec_diagnostics(analysis.text)


def spec_diagnostics(text: str) -> list[lsp.Diagnostic]:
    lines = text.splitlines() or [""]
    error = lsp.DiagnosticSeverity.Error
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        match = re.search(r"line (\d+), column (\d+)", str(exc))
        line = int(match.group(1)) - 1 if match else 0
        line = min(max(line, 0), len(lines) - 1)
        return [_diag(line_range(line, lines[line]), f"Invalid TOML: {exc}", error)]
    except RecursionError:  # tomllib recurses per nested array or inline table
        return [_diag(line_range(0, lines[0]), f"Invalid TOML: {TOO_DEEP}.", error)]
    try:
        spec = ProjectSpec.model_validate(data)
    except ValidationError as exc:
        found = []
        for err in exc.errors():
            loc = [str(p) for p in err["loc"]]
            line = _line_for_loc(lines, loc)
            where = ".".join(loc) or "spec"
            message = f"{where}: {err['msg']}"
            found.append(_diag(line_range(line, lines[line]), message, error, "spec-schema"))
        return found
    try:
        get_board(spec.board)
    except TinyForgeError as exc:
        line = find_key_line(lines, "board") or 0
        return [_diag(line_range(line, lines[line]), str(exc), error, "unknown-board")]
    return []


def _line_for_loc(lines: list[str], loc: list[str]) -> int:
    """The line of the deepest key of a validation error's location that can be found."""
    table = None
    best = 0
    for depth, key in enumerate(loc):
        if key.isdigit():
            continue
        found = find_key_line(lines, key, table)
        if found is None and depth == 0:
            header = find_key_line(lines, key)
            found = header
        if found is None:
            # A table header `[key]` stands for the whole sub-structure.
            for number, line in enumerate(lines):
                if re.match(rf"^\s*\[\s*{re.escape(key)}\s*\]", line):
                    found = number
                    break
        if found is not None:
            best = found
        table = key
    return best


# -- platformio.ini ---------------------------------------------------------------------------


def ini_check(server: TinyForgeServer, analysis: DocumentAnalysis) -> list[lsp.Diagnostic]:
    path = analysis.path or Path(PLATFORMIO_INI)
    lines = analysis.lines()
    try:
        ini = read_platformio_ini(path, analysis.text)
    except TinyForgeError as exc:
        match = re.search(r"line (\d+)", str(exc))
        line = min(int(match.group(1)) - 1, len(lines) - 1) if match else 0
        return [_diag(line_range(line, lines[line]), str(exc), lsp.DiagnosticSeverity.Error)]
    spec_file = path.parent / SPEC_FILENAME
    spec_board = None
    if spec_file.is_file():
        context = server.projects.context_of(path, analysis.settings.board)
        if context.root == path.parent and context.spec is not None:
            spec_board = context.spec.board
    found: list[lsp.Diagnostic] = []
    for env in ini.envs:
        found += _env_diagnostics(env, lines, spec_board, in_project=spec_file.is_file())
    return found


def _env_diagnostics(
    env: PioEnv, lines: list[str], spec_board: str | None, *, in_project: bool
) -> list[lsp.Diagnostic]:
    board_line = find_key_line(lines, "board", f"env:{env.name}")
    if board_line is None or not env.board:
        return []
    rng = line_range(board_line, lines[board_line])
    error, warning = lsp.DiagnosticSeverity.Error, lsp.DiagnosticSeverity.Warning
    try:
        board = get_board(env.board)
    except TinyForgeError:
        close = suggest_boards(env.board)
        hint = f" Did you mean {', '.join(close)}?" if close else ""
        message = (
            f"Unknown board '{env.board}' for TinyForge: its RAM and flash limits are not "
            f"known.{hint}"
        )
        return [_diag(rng, message, error, "unknown-board")]
    if board.id != env.board:
        # PlatformIO wants the exact id; a nickname only means something to TinyForge.
        message = f"Unknown board '{env.board}' for PlatformIO: the board id is {board.id}."
        return [_diag(rng, message, error, "unknown-board")]
    found = []
    if spec_board and board.id != spec_board:
        message = (
            f"board = {board.id} but tinyforge.toml targets {spec_board}: the model was "
            f"sized for {spec_board}."
        )
        found.append(_diag(rng, message, warning, "board-mismatch"))
    if in_project and _needs_library(env, board):
        dep_line = find_key_line(lines, "lib_deps", f"env:{env.name}")
        at = dep_line if dep_line is not None else board_line
        message = f"No TensorFlow Lite Micro library in lib_deps: add {board.tflm_library}."
        found.append(_diag(line_range(at, lines[at]), message, warning, MISSING_LIBRARY))
    return found


def _needs_library(env: PioEnv, board: Board) -> bool:
    # The check `tinyforge repair` makes too (ESP32's core brings TFLM: none needed there).
    from tinyforge.repair.edits import needs_tflm_library

    return needs_tflm_library(env.options.get("lib_deps", ""), board)


def library_actions(
    server: TinyForgeServer, analysis: DocumentAnalysis, params: lsp.CodeActionParams
) -> list[lsp.CodeAction]:
    """On the missing-library warning: the library added to lib_deps, by repair's own rule."""
    from tinyforge.lsp.preview import workspace_edit
    from tinyforge.repair.failure import Failure
    from tinyforge.repair.rules import INI, Project, missing_tflm_library

    missing = [d for d in params.context.diagnostics if d.code == MISSING_LIBRARY]
    if analysis.name != PLATFORMIO_INI or analysis.path is None or not missing:
        return []
    root = analysis.path.parent
    context = server.projects.context_of(analysis.path, analysis.settings.board)
    project = Project(root, files={INI: analysis.text}, board=context.board)
    fix = missing_tflm_library(Failure("static", missing[0].message), project)
    if fix is None:
        return []
    edit = workspace_edit(root, fix.edits, uris={analysis.path: analysis.uri})
    kind = lsp.CodeActionKind.QuickFix
    return [lsp.CodeAction(title=fix.title, kind=kind, diagnostics=missing, edit=edit)]
