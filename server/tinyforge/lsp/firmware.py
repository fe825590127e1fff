"""PlatformIO from the editor: `pio run` (build, upload) and the serial monitor's command, the
last build's problems as diagnostics, and their quick fixes.

A build (`tinyforge.pio`, `tinyforge.upload`, `tinyforge.build` with firmware) leaves a list of
problems per project; they are published on their files (compiler errors on the source line,
memory overflows on the `board =` line of platformio.ini), from the server's diagnostics store,
until the next build of that project replaces them. An overflow offers the fixes its message
names: move the arena to the heap/PSRAM (a build flag), retarget a board with more memory, or
shrink the model (a lower budget in tinyforge.toml, from which the next build chooses a
smaller architecture).
"""

from __future__ import annotations

import asyncio
import re
import threading
from pathlib import Path
from typing import Any

import attrs
from lsprotocol import types as lsp

from tinyforge.errors import TinyForgeError
from tinyforge.lsp.analyses import DocumentAnalysis
from tinyforge.lsp.arguments import folder_argument
from tinyforge.lsp.documents import file_uri, find_key_line, line_range, text_of
from tinyforge.lsp.preview import workspace_edit
from tinyforge.lsp.progress import long_job
from tinyforge.lsp.server import TinyForgeServer
from tinyforge.progress import Progress
from tinyforge.repair.fixes import FileEdit, split_lines
from tinyforge.spec import SPEC_FILENAME

SOURCE = "tinyforge"
OVERFLOW_CODES = ("ram-overflow", "flash-overflow")
_SEVERITY = {"error": lsp.DiagnosticSeverity.Error, "warning": lsp.DiagnosticSeverity.Warning}


@attrs.define(frozen=True)
class FirmwareOptions:
    """Which [env] of platformio.ini and which serial port (PlatformIO's choice when left
    out); for tinyforge.build, whether `pio run` follows a build that fits."""

    env: str | None = None
    port: str | None = None
    firmware: bool = False


DEFAULTS = FirmwareOptions()


def register(server: TinyForgeServer) -> None:
    server.features.code_actions.append(firmware_code_actions)

    @server.command("tinyforge.pio")
    async def pio(
        ls: TinyForgeServer,
        project: str = "",
        target: str = "",
        options: FirmwareOptions = DEFAULTS,
    ) -> dict[str, Any]:
        """`pio run` ("build", the default, or "upload") with progress and cancel; compiler
        errors and memory overflows become diagnostics."""
        root, target = folder_argument(ls, project), target or "build"
        if target not in ("build", "upload"):
            raise TinyForgeError(f"Unknown PlatformIO target '{target}'.")
        title = "TinyForge: uploading" if target == "upload" else "TinyForge: PlatformIO build"
        result = await long_job(ls, title, lambda p, c: run_firmware(root, target, options, p, c))
        if isinstance(result.get("firmware"), dict):
            publish_result(ls, result["firmware"])
        return result

    @server.command("tinyforge.upload")
    async def upload(
        ls: TinyForgeServer, project: str = "", options: FirmwareOptions = DEFAULTS
    ) -> dict[str, Any]:
        """Build what changed and flash the board."""
        return await pio(ls, project, "upload", options)

    @server.command("tinyforge.monitor")
    async def monitor_command(
        ls: TinyForgeServer, project: str = "", options: FirmwareOptions = DEFAULTS
    ) -> dict[str, Any]:
        """The `pio device monitor` command, for a terminal."""
        return await asyncio.to_thread(monitor, folder_argument(ls, project), options)


def _problem_range(server: TinyForgeServer, problem: dict[str, Any], env: str) -> lsp.Range:
    path = Path(problem["file"])
    lines = text_of(server, path).splitlines() or [""]
    if problem.get("anchor") == "board":
        number = find_key_line(lines, "board", f"env:{env}")
        number = number if number is not None else (find_key_line(lines, "board") or 0)
        return line_range(number, lines[number] if number < len(lines) else "")
    number = max((problem.get("line") or 1) - 1, 0)
    text = lines[number] if number < len(lines) else ""
    start = max((problem.get("column") or 1) - 1, 0)
    if problem.get("column") is None:
        start = len(text) - len(text.lstrip())
    return line_range(number, text, start, max(len(text.rstrip()), start + 1))


def result_diagnostics(
    server: TinyForgeServer, result: dict[str, Any]
) -> dict[str, list[lsp.Diagnostic]]:
    found: dict[str, list[lsp.Diagnostic]] = {}
    for problem in result.get("problems", []):
        diagnostic = lsp.Diagnostic(
            range=_problem_range(server, problem, result.get("env", "")),
            message=problem["message"],
            severity=_SEVERITY.get(problem["severity"], lsp.DiagnosticSeverity.Error),
            source=f"{SOURCE} (pio)",
            code=problem["code"],
            data=problem.get("data") or None,
        )
        found.setdefault(file_uri(Path(problem["file"])), []).append(diagnostic)
    return found


def publish_result(server: TinyForgeServer, result: dict[str, Any]) -> None:
    """Replace the project's build diagnostics with this result's (none when it built)."""
    from tinyforge.lsp.device import update_main

    source = f"pio {result['project_dir']}"  # per project: its next run replaces them
    before = server.diagnostics.uris(source)
    found = result_diagnostics(server, result)
    for uri in before - set(found):
        server.diagnostics.drop(source, uri)
    for uri, diagnostics in found.items():
        server.diagnostics.put(source, uri, diagnostics)
    for uri in sorted(before | set(found)):
        update_main(server, uri)  # src/main.cpp keeps what the emulated board found there
        server.diagnostics.publish(uri)


# -- quick fixes ----------------------------------------------------------------------------------


def _line_edit(
    server: TinyForgeServer,
    path: Path,
    replace: dict[int, str] | None = None,
    insert: tuple[int, str] | None = None,
) -> lsp.WorkspaceEdit:
    """`path`'s text (the editor's buffer when open) with whole lines replaced (line breaks
    kept) and/or `insert`'s text put before a line, as every fix reaches the editor."""
    text = text_of(server, path)
    lines = split_lines(text)
    for number, new in (replace or {}).items():
        body = lines[number].rstrip("\r\n")
        lines[number] = new + lines[number][len(body) :]
    if insert is not None:
        at, new = insert
        if 0 < at == len(lines) and not lines[-1].endswith(("\n", "\r")):
            lines[-1] += "\n"  # after a last line without a break: start a line of its own
        lines.insert(at, new)
    return workspace_edit(path.parent, [FileEdit(path.name, text, "".join(lines))])


def _heap_action(
    server: TinyForgeServer, ini: Path, env: str, data: dict[str, Any], diag: lsp.Diagnostic
) -> lsp.CodeAction | None:
    from tinyforge.generate.firmware import ARENA_HEAP_MACRO

    lines = text_of(server, ini).splitlines()
    flag = f"-D{ARENA_HEAP_MACRO}=1"
    if any(flag in line for line in lines):
        return None
    where = "heap/PSRAM" if data.get("psram") else "heap"
    flags_line = find_key_line(lines, "build_flags", f"env:{env}")
    if flags_line is not None:
        edit = _line_edit(server, ini, insert=(flags_line + 1, f"    {flag}\n"))
    else:
        board_line = find_key_line(lines, "board", f"env:{env}") or 0
        edit = _line_edit(server, ini, insert=(board_line + 1, f"build_flags = {flag}\n"))
    return lsp.CodeAction(
        title=f"Move the tensor arena to the {where} ({flag})",
        kind=lsp.CodeActionKind.QuickFix,
        diagnostics=[diag],
        edit=edit,
        is_preferred=True,
    )


def _board_actions(
    server: TinyForgeServer, project: Path, ini: Path, env: str, data: dict[str, Any],
    diag: lsp.Diagnostic,
) -> list[lsp.CodeAction]:  # fmt: skip
    from tinyforge.boards import get_board

    what = "RAM" if data.get("resource") == "ram" else "flash"
    spec = project / SPEC_FILENAME
    actions = []
    for board_id in data.get("bigger_boards", [])[:2]:
        board = get_board(board_id)
        size = board.ram_bytes if what == "RAM" else board.flash_bytes
        if spec.is_file():
            lines = text_of(server, spec).splitlines()
            number = find_key_line(lines, "board")
            if number is None:
                continue
            edit = _line_edit(server, spec, {number: f'board = "{board.id}"'})
            title = (
                f"Retarget the project to {board.id} ({size // 1024} KB {what}) in "
                "tinyforge.toml, then rebuild"
            )
        else:
            lines = text_of(server, ini).splitlines()
            number = find_key_line(lines, "board", f"env:{env}")
            if number is None:
                continue
            changed = {number: f"board = {board.id}"}
            platform_line = find_key_line(lines, "platform", f"env:{env}")
            if platform_line is not None:
                changed[platform_line] = f"platform = {board.platform}"
            edit = _line_edit(server, ini, changed)
            title = f"Pick a board with more {what}: {board.id} ({size // 1024} KB)"
        actions.append(
            lsp.CodeAction(
                title=title, kind=lsp.CodeActionKind.QuickFix, diagnostics=[diag], edit=edit
            )
        )
    return actions


def _shrink_action(
    server: TinyForgeServer, project: Path, data: dict[str, Any], diag: lsp.Diagnostic
) -> lsp.CodeAction | None:
    spec = project / SPEC_FILENAME
    over = data.get("overflow_bytes")
    if not spec.is_file() or not over:
        return None
    key = "ram_bytes" if data.get("resource") == "ram" else "flash_bytes"
    lines = text_of(server, spec).splitlines()
    number = find_key_line(lines, key, "budget")
    if number is None:
        return None
    m = re.search(r"=\s*([\d_]+)", lines[number])
    if not m:
        return None
    current = int(m.group(1).replace("_", ""))
    # Lower the budget by the overflow and a KB more, so the next plan leaves real headroom.
    lowered = max(1024, current - over - 1024)
    what = "RAM" if key == "ram_bytes" else "flash"
    return lsp.CodeAction(
        title=(
            f"Shrink the model: lower the {what} budget to {lowered:,} bytes in tinyforge.toml "
            "(the next build chooses a smaller model)"
        ),
        kind=lsp.CodeActionKind.QuickFix,
        diagnostics=[diag],
        edit=_line_edit(server, spec, {number: f"{key} = {lowered}"}),
    )


def firmware_code_actions(
    server: TinyForgeServer, analysis: DocumentAnalysis, params: lsp.CodeActionParams
) -> list[lsp.CodeAction]:
    path = analysis.path
    if path is None or path.name != "platformio.ini":
        return []
    actions: list[lsp.CodeAction] = []
    for diag in params.context.diagnostics:
        if diag.code not in OVERFLOW_CODES or not isinstance(diag.data, dict):
            continue
        data = diag.data
        project = Path(data.get("project_dir") or path.parent)
        env = _env_of(server, path, diag.range.start.line)
        if data.get("heap_option") and data.get("resource") == "ram":
            heap = _heap_action(server, path, env, data, diag)
            if heap is not None:
                actions.append(heap)
        shrink = _shrink_action(server, project, data, diag)
        if shrink is not None:
            actions.append(shrink)
        actions += _board_actions(server, project, path, env, data, diag)
    return actions


def _env_of(server: TinyForgeServer, ini: Path, line: int) -> str:
    """The `[env:NAME]` section that contains `line`."""
    name = ""
    for number, text in enumerate(text_of(server, ini).splitlines()):
        if number > line:
            break
        m = re.match(r"^\s*\[env:([^\]]+)\]", text)
        if m:
            name = m.group(1).strip()
    return name


# -- the commands' work (in a worker thread, lsp/progress.py) ------------------------------


def run_firmware(
    project: Path,
    action: str,
    options: FirmwareOptions,
    progress: Progress,
    cancel: threading.Event | None,
) -> dict[str, Any]:
    """`pio run` (action "build") or `pio run -t upload` ("upload") on the project.

    When PlatformIO cannot run here at all (platform not installed offline, no board …) the
    result says so in one sentence (`error`, and `kind`); a cancel still raises.
    """
    from tinyforge import deploy

    env, port = options.env, options.port
    try:
        if action == "upload":
            result = deploy.upload_firmware(
                project, env=env, port=port, progress=progress, cancel=cancel
            )
        else:
            result = deploy.build_firmware(project, env=env, progress=progress, cancel=cancel)
    except deploy.PioError as exc:
        return {"ok": False, "target": action, "error": str(exc), "kind": exc.kind}
    out: dict[str, Any] = {
        "ok": result.ok,
        "target": action,
        "seconds": result.seconds,
        "summary": result.summary,
        "firmware": result.to_dict(),
    }
    if not result.ok:
        out["error"] = result.summary
    return out


def monitor(project: Path, options: FirmwareOptions) -> dict[str, Any]:
    """The serial monitor's command line, for the editor to run in a terminal (it is
    interactive: the user reads the predictions and ends it with Ctrl+C)."""
    from tinyforge import deploy

    cmd, chosen = deploy.monitor_command(project, env=options.env, port=options.port)
    return {"ok": True, "command": cmd, "cwd": str(project), "port": chosen}
