"""Diagnostics per kind of document: tinyforge.toml, platformio.ini and Keras model scripts.

Every check is static and fast (no code execution, no TensorFlow): it runs a moment after each
change, in a worker thread, and only for a document's newest version (lsp/analyses.py).
Whatever goes wrong inside a check becomes a diagnostic, never a dead server.
"""

from __future__ import annotations

import re
import tomllib
from pathlib import PurePosixPath

from lsprotocol import types as lsp
from pydantic import ValidationError

from tinyforge.boards import get_board, suggest_boards
from tinyforge.errors import TinyForgeError
from tinyforge.lsp.analyses import Analyses
from tinyforge.lsp.documents import context_for, doc_path, find_key_line, line_range
from tinyforge.lsp.server import TinyForgeServer
from tinyforge.memory.keras_source import MAX_SOURCE_CHARS
from tinyforge.project import PLATFORMIO_INI, read_platformio_ini
from tinyforge.spec import SPEC_FILENAME, TOO_DEEP, ProjectSpec

SOURCE = "tinyforge"


def _diag(
    rng: lsp.Range, message: str, severity: lsp.DiagnosticSeverity, code: str | None = None
) -> lsp.Diagnostic:
    return lsp.Diagnostic(range=rng, message=message, severity=severity, source=SOURCE, code=code)


# -- tinyforge.toml ---------------------------------------------------------------------------


def spec_diagnostics(text: str) -> list[lsp.Diagnostic]:
    lines = text.splitlines() or [""]
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        match = re.search(r"line (\d+), column (\d+)", str(exc))
        line = int(match.group(1)) - 1 if match else 0
        line = min(max(line, 0), len(lines) - 1)
        return [
            _diag(
                line_range(line, lines[line]), f"Invalid TOML: {exc}", lsp.DiagnosticSeverity.Error
            )
        ]
    except RecursionError:  # tomllib recurses per nested array or inline table
        return [
            _diag(
                line_range(0, lines[0]), f"Invalid TOML: {TOO_DEEP}.", lsp.DiagnosticSeverity.Error
            )
        ]
    try:
        spec = ProjectSpec.model_validate(data)
    except ValidationError as exc:
        found = []
        for err in exc.errors():
            loc = [str(p) for p in err["loc"]]
            line = _line_for_loc(lines, loc)
            where = ".".join(loc) or "spec"
            found.append(
                _diag(
                    line_range(line, lines[line]),
                    f"{where}: {err['msg']}",
                    lsp.DiagnosticSeverity.Error,
                    "spec-schema",
                )
            )
        return found
    try:
        get_board(spec.board)
    except TinyForgeError as exc:
        line = find_key_line(lines, "board") or 0
        return [
            _diag(
                line_range(line, lines[line]),
                str(exc),
                lsp.DiagnosticSeverity.Error,
                "unknown-board",
            )
        ]
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


def ini_diagnostics(text: str, uri: str, default_board: str | None) -> list[lsp.Diagnostic]:
    from pathlib import Path

    from tinyforge.lsp.documents import doc_path

    path = doc_path(uri) or Path(PLATFORMIO_INI)
    lines = text.splitlines() or [""]
    try:
        ini = read_platformio_ini(path, text)
    except TinyForgeError as exc:
        match = re.search(r"line (\d+)", str(exc))
        line = min(int(match.group(1)) - 1, len(lines) - 1) if match else 0
        return [_diag(line_range(line, lines[line]), str(exc), lsp.DiagnosticSeverity.Error)]
    spec_board = None
    spec_file = path.parent / SPEC_FILENAME
    if spec_file.is_file():
        try:
            spec_board = ProjectSpec.load(path.parent).board
        except TinyForgeError:
            spec_board = None
    found: list[lsp.Diagnostic] = []
    for env in ini.envs:
        board_line = find_key_line(lines, "board", f"env:{env.name}")
        if board_line is None or not env.board:
            continue
        rng = line_range(board_line, lines[board_line])
        try:
            board = get_board(env.board)
        except TinyForgeError:
            close = suggest_boards(env.board)
            hint = f" Did you mean {', '.join(close)}?" if close else ""
            found.append(
                _diag(
                    rng,
                    f"Unknown board '{env.board}' for TinyForge: its RAM and flash limits are not "
                    f"known.{hint}",
                    lsp.DiagnosticSeverity.Error,
                    "unknown-board",
                )
            )
            continue
        if board.id != env.board:
            # PlatformIO wants the exact id; a nickname only means something to TinyForge.
            found.append(
                _diag(
                    rng,
                    f"Unknown board '{env.board}' for PlatformIO: the board id is {board.id}.",
                    lsp.DiagnosticSeverity.Error,
                    "unknown-board",
                )
            )
            continue
        if spec_board and board.id != spec_board:
            found.append(
                _diag(
                    rng,
                    f"board = {board.id} but tinyforge.toml targets {spec_board}: the model was "
                    f"sized for {spec_board}.",
                    lsp.DiagnosticSeverity.Warning,
                    "board-mismatch",
                )
            )
        # The check `tinyforge repair` makes too (ESP32's core brings TFLM: none needed there).
        from tinyforge.repair.edits import needs_tflm_library

        if spec_file.is_file() and needs_tflm_library(env.options.get("lib_deps", ""), board):
            dep_line = find_key_line(lines, "lib_deps", f"env:{env.name}")
            at = dep_line if dep_line is not None else board_line
            found.append(
                _diag(
                    line_range(at, lines[at]),
                    f"No TensorFlow Lite Micro library in lib_deps: add {board.tflm_library}.",
                    lsp.DiagnosticSeverity.Warning,
                    "missing-tflm-library",
                )
            )
    return found


# -- dispatch ---------------------------------------------------------------------------------


def diagnostics_for(server: TinyForgeServer, uri: str, text: str) -> list[lsp.Diagnostic]:
    name = PurePosixPath(uri).name
    try:
        if name == SPEC_FILENAME:
            from tinyforge.lsp.data import spec_data_diagnostics
            from tinyforge.lsp.health import spec_health_diagnostics

            # The spec's own checks, the last build's health findings (report.json), and what
            # in the dataset would stop the next build (classes it lacks, empty class folders).
            own = spec_diagnostics(text)
            found = own + spec_health_diagnostics(text, doc_path(uri))
            return found if own else found + spec_data_diagnostics(text, doc_path(uri))
        if name == PLATFORMIO_INI:
            return ini_diagnostics(text, uri, server.settings.board)
        if name.endswith(".py"):
            from tinyforge.lsp.model_checks import model_diagnostics

            found = model_diagnostics(text, context_for(server.settings.board, uri), doc_path(uri))
            if name == "train.py":
                from tinyforge.lsp.health import script_health_diagnostics

                found += script_health_diagnostics(text, doc_path(uri))
            return found
    except Exception as exc:  # a bug in one check must not take the editor down with it
        server.window_log_message(
            lsp.LogMessageParams(type=lsp.MessageType.Error, message=f"tinyforge: {name}: {exc!r}")
        )
        return [
            _diag(
                line_range(0),
                f"TinyForge could not analyse this file: {exc}",
                lsp.DiagnosticSeverity.Information,
            )
        ]
    return []


def analysis(server: TinyForgeServer, uri: str, text: str) -> list[lsp.Diagnostic]:
    """The file's own checks (run in a worker thread by lsp/analyses.py, on a snapshot)."""
    if len(text) > MAX_SOURCE_CHARS:
        # One note instead of analyses that would hold every other request up.
        return [
            _diag(
                line_range(0),
                f"TinyForge skips this file: {len(text):,} characters, over the "
                f"{MAX_SOURCE_CHARS:,} it analyses.",
                lsp.DiagnosticSeverity.Information,
            )
        ]
    return diagnostics_for(server, uri, text)


def _send(
    server: TinyForgeServer, uri: str, version: int | None, found: list[lsp.Diagnostic]
) -> None:
    from tinyforge.lsp.firmware import stored_diagnostics

    # The file's own checks, plus what the project's last PlatformIO build found in it.
    found = found + stored_diagnostics(server, uri)
    server.text_document_publish_diagnostics(
        lsp.PublishDiagnosticsParams(uri=uri, diagnostics=found, version=version)
    )


def publish(server: TinyForgeServer, uri: str, delay: float | None = 0) -> None:
    """Analyse `uri` and publish its diagnostics, off the event loop; `delay` None: debounced
    (an edit). A newer request for the same document supersedes this one."""
    server.analyses.schedule(uri, delay)


def publish_all(server: TinyForgeServer) -> None:
    for uri in list(server.workspace.text_documents):
        publish(server, uri)


def register(server: TinyForgeServer) -> None:
    server.analyses = Analyses(
        server,
        analyse=lambda uri, text: analysis(server, uri, text),
        publish=lambda uri, version, found: _send(server, uri, version, found),
    )

    @server.feature(lsp.INITIALIZE)
    def on_initialize(ls: TinyForgeServer, params: lsp.InitializeParams) -> None:
        ls.settings.update(params.initialization_options)
        if params.trace is not None:  # VS Code sends its trace setting here, not by $/setTrace
            ls.protocol.trace = params.trace

    @server.feature(lsp.WORKSPACE_DID_CHANGE_CONFIGURATION)
    def on_configuration(ls: TinyForgeServer, params: lsp.DidChangeConfigurationParams) -> None:
        ls.settings.update(params.settings)
        publish_all(ls)

    @server.feature(lsp.TEXT_DOCUMENT_DID_OPEN)
    def did_open(ls: TinyForgeServer, params: lsp.DidOpenTextDocumentParams) -> None:
        publish(ls, params.text_document.uri)

    @server.feature(lsp.TEXT_DOCUMENT_DID_CHANGE)
    def did_change(ls: TinyForgeServer, params: lsp.DidChangeTextDocumentParams) -> None:
        publish(ls, params.text_document.uri, delay=None)  # debounced: typing goes on

    @server.feature(lsp.TEXT_DOCUMENT_DID_SAVE)
    def did_save(ls: TinyForgeServer, params: lsp.DidSaveTextDocumentParams) -> None:
        publish(ls, params.text_document.uri)

    @server.feature(lsp.TEXT_DOCUMENT_DID_CLOSE)
    def did_close(ls: TinyForgeServer, params: lsp.DidCloseTextDocumentParams) -> None:
        ls.analyses.forget(params.text_document.uri)
        ls.text_document_publish_diagnostics(
            lsp.PublishDiagnosticsParams(uri=params.text_document.uri, diagnostics=[])
        )
