"""workspace/executeCommand: the pipeline's stages as editor commands.

Long work runs in a worker thread that drives child processes (TensorFlow never loads in the
server), reports `$/progress`, streams its log as window/logMessage, and stops when the user
cancels the progress: the child process tree is killed and the project is restored.
"""

from __future__ import annotations

import asyncio
import threading
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from lsprotocol import types as lsp

from tinyforge import jobs
from tinyforge.errors import TinyForgeError
from tinyforge.lsp.server import TinyForgeServer

T = TypeVar("T")


class LspProgress:
    """The pipeline's Progress, forwarded from the worker thread to the client."""

    def __init__(
        self,
        server: TinyForgeServer,
        token: str,
        loop: asyncio.AbstractEventLoop,
        *,
        enabled: bool = True,
    ) -> None:
        self._server = server
        self._token = token
        self._loop = loop
        # False when the client cannot show $/progress: reports go to its log instead.
        self._enabled = enabled
        self._stage = ""
        self._index = 0
        self._total = 1
        self._last_percent = -1

    def _call(self, fn: Callable[..., None], *args: Any) -> None:
        self._loop.call_soon_threadsafe(fn, *args)

    def _report(self, fraction: float | None, message: str) -> None:
        within = 0.0 if fraction is None else min(max(fraction, 0.0), 1.0)
        percent = int(100 * ((self._index - 1) + within) / max(self._total, 1))
        percent = max(percent, self._last_percent)  # never move the bar backwards
        self._last_percent = percent
        if not self._enabled:
            self.log(f"{self._stage}: {message} ({percent}%)")
            return
        value = lsp.WorkDoneProgressReport(message=f"{self._stage}: {message}", percentage=percent)
        self._call(self._server.work_done_progress.report, self._token, value)

    def stage(self, name: str, index: int, total: int) -> None:
        self._stage, self._index, self._total = name, index, total
        self._report(0.0, f"stage {index}/{total}")

    def update(self, fraction: float | None, message: str) -> None:
        self._report(fraction, message)

    def log(self, line: str) -> None:
        params = lsp.LogMessageParams(type=lsp.MessageType.Log, message=line)
        self._call(self._server.window_log_message, params)


async def run_with_progress(
    server: TinyForgeServer, title: str, work: Callable[[LspProgress, threading.Event], T]
) -> T:
    token = f"tinyforge-{uuid.uuid4()}"
    loop = asyncio.get_running_loop()
    # A client without the capability never answers window/workDoneProgress/create: the job
    # then runs without a progress bar (its reports go to the log; $/cancelRequest still works).
    enabled = client_shows_progress(server)
    if enabled:
        await server.work_done_progress.create_async(token)
        server.work_done_progress.begin(
            token, lsp.WorkDoneProgressBegin(title=title, cancellable=True, percentage=0)
        )
    cancel = threading.Event()
    server.jobs[token] = cancel
    # pygls cancels this future when the client sends window/workDoneProgress/cancel.
    future = server.work_done_progress.tokens.get(token)
    if future is not None:
        future.add_done_callback(lambda f: cancel.set() if f.cancelled() else None)
    progress = LspProgress(server, token, loop, enabled=enabled)
    message = "done"
    try:
        return await asyncio.to_thread(work, progress, cancel)
    except jobs.Cancelled:
        message = "cancelled"
        raise
    except asyncio.CancelledError:
        cancel.set()  # $/cancelRequest: stop the worker too
        message = "cancelled"
        raise
    except Exception as exc:
        message = f"failed: {exc}"
        raise
    finally:
        server.jobs.pop(token, None)
        if enabled:
            server.work_done_progress.end(token, lsp.WorkDoneProgressEnd(message=message))
        else:
            progress.log(f"{title}: {message}")


def client_shows_progress(server: TinyForgeServer) -> bool:
    """Whether the client declared window.workDoneProgress (it may then get create requests)."""
    window = getattr(server.client_capabilities, "window", None)
    return bool(getattr(window, "work_done_progress", False))


def _project(args: list[Any], server: TinyForgeServer) -> Path:
    """The first argument (a path or file URI), else the first workspace folder."""
    from pygls.uris import to_fs_path

    if args and isinstance(args[0], str) and args[0]:
        arg = args[0]
        return Path(to_fs_path(arg) or arg) if arg.startswith("file:") else Path(arg)
    folders = server.workspace.folders
    if folders:
        first = next(iter(folders.values()))
        return Path(to_fs_path(first.uri) or ".")
    raise TinyForgeError("Give the project folder as the command's first argument.")


def _error(exc: Exception) -> dict[str, Any]:
    return {"ok": False, "error": str(exc)}


def register(server: TinyForgeServer) -> None:
    from tinyforge import pipeline
    from tinyforge.lsp import device
    from tinyforge.lsp.diagnostics import publish_all

    @server.command("tinyforge.boards")
    def boards(ls: TinyForgeServer, *args: Any) -> list[dict[str, Any]]:
        from tinyforge.boards import all_boards

        return [
            {
                "id": b.id,
                "name": b.name,
                "mcu": b.mcu,
                "ram_bytes": b.ram_bytes,
                "flash_bytes": b.flash_bytes,
                "selected": b.id == ls.settings.board,
            }
            for b in all_boards()
        ]

    @server.command("tinyforge.selectBoard")
    def select_board(ls: TinyForgeServer, *args: Any) -> dict[str, Any]:
        from tinyforge.boards import get_board

        try:
            board = get_board(str(args[0]) if args else "")
        except TinyForgeError as exc:
            return _error(exc)
        ls.settings.board = board.id
        publish_all(ls)
        return {"ok": True, "board": board.id}

    # A worker thread: with the Claude planner these wait on the network, and the server must
    # keep answering meanwhile. `notices` says e.g. that no key was set and it planned offline.
    @server.command("tinyforge.plan")
    async def plan(ls: TinyForgeServer, *args: Any) -> dict[str, Any]:
        notices: list[str] = []
        try:
            request = str(args[0]) if args else ""
            board = str(args[1]) if len(args) > 1 and args[1] else None
            spec = await asyncio.to_thread(
                pipeline.plan,
                request,
                board=board,
                default_board=ls.settings.board,
                planner=ls.settings.planner,
                planner_options=ls.settings.planner_options(),
                notices=notices,
            )
        except TinyForgeError as exc:
            return {**_error(exc), "notices": notices}
        return {"ok": True, "spec": spec.model_dump(mode="json"), "notices": notices}

    @server.command("tinyforge.newProject")
    async def new_project(ls: TinyForgeServer, *args: Any) -> dict[str, Any]:
        """args: request, folder, optionally a board. A model Claude designs comes as an edit of
        train.py the editor previews before it is used (lsp/preview.py)."""
        from tinyforge.lsp.preview import offer_proposal

        notices: list[str] = []
        try:
            if len(args) < 2:
                raise TinyForgeError("tinyforge.newProject takes a request and a folder.")
            board = str(args[2]) if len(args) > 2 and args[2] else None
            folder = _project([args[1]], ls)
            spec, written = await asyncio.to_thread(
                pipeline.new_project,
                str(args[0]),
                folder,
                board=board,
                default_board=ls.settings.board,
                planner=ls.settings.planner,
                planner_options=ls.settings.planner_options(),
                notices=notices,
            )
        except TinyForgeError as exc:
            return {**_error(exc), "notices": notices}
        answer = {
            "ok": True,
            "spec": spec.model_dump(mode="json"),
            "written": written.written,
            "notices": notices,
        }
        return await offer_proposal(ls, folder, answer)

    @server.command("tinyforge.repair")
    async def repair(ls: TinyForgeServer, *args: Any) -> dict[str, Any]:
        """Fixes for the project's last failure, each with a WorkspaceEdit to apply."""
        from tinyforge.lsp.repair import repair_project

        try:
            project = _project(list(args), ls)
            result = await asyncio.to_thread(repair_project, project, ls.settings)
        except TinyForgeError as exc:
            return _error(exc)
        return {"ok": True, **result}

    async def long_job(ls: TinyForgeServer, title: str, work: Callable[..., Any]) -> dict[str, Any]:
        try:
            result = await run_with_progress(ls, title, work)
        except jobs.Cancelled:
            return {"ok": False, "cancelled": True, "error": "cancelled; the project is as before"}
        except TinyForgeError as exc:
            return _error(exc)
        publish_all(ls)
        device.republish(ls)  # a build rewrites report.json and main.cpp
        return {"ok": True, **result}

    @server.command("tinyforge.train")
    async def train(ls: TinyForgeServer, *args: Any) -> dict[str, Any]:
        try:
            project = _project(list(args), ls)
        except TinyForgeError as exc:
            return _error(exc)
        return await long_job(
            ls,
            "TinyForge: training",
            lambda p, c: {"metrics": pipeline.train_only(project, progress=p, cancel=c)},
        )

    @server.command("tinyforge.fit")
    async def fit(ls: TinyForgeServer, *args: Any) -> dict[str, Any]:
        """args: project (or a file in it), then optionally {"budgetRam": "64KB", "budgetFlash",
        "trials", "epochs", "engine", "address", "seed", "batch", "apply": false}: the search,
        then the chosen model as an edit of train.py to preview (see lsp/fit.py)."""
        from tinyforge.lsp.fit import fit_work
        from tinyforge.lsp.preview import offer_edit

        try:
            work, options = fit_work(ls, list(args))
        except TinyForgeError as exc:
            return _error(exc)
        result = await long_job(ls, "TinyForge: finding the best model that fits", work)
        return await offer_edit(ls, result, options) if result.get("ok") else result

    @server.command("tinyforge.convertFile")
    async def convert_file(ls: TinyForgeServer, *args: Any) -> dict[str, Any]:
        """An .onnx file → verified int8 TFLite Micro project (see lsp/onnx_convert.py)."""
        from tinyforge.lsp.onnx_convert import convert_file_work

        try:
            work = convert_file_work(ls, list(args))
        except TinyForgeError as exc:
            return _error(exc)
        return await long_job(ls, "TinyForge: converting ONNX", work)

    @server.command("tinyforge.convert")
    async def convert(ls: TinyForgeServer, *args: Any) -> dict[str, Any]:
        from tinyforge.lsp.onnx_convert import is_onnx_file

        if args and is_onnx_file(args[0]):  # an .onnx file rather than a project folder
            converted: dict[str, Any] = await convert_file(ls, *args)
            return converted
        try:
            project = _project(list(args), ls)
        except TinyForgeError as exc:
            return _error(exc)
        return await long_job(
            ls,
            "TinyForge: converting",
            lambda p, c: {
                "report": pipeline.build(
                    project, progress=p, cancel=c, train=False
                ).report.to_json()
            },
        )

    @server.command("tinyforge.build")
    async def build(ls: TinyForgeServer, *args: Any) -> dict[str, Any]:
        """args: project, then optionally {"firmware": true, "env": …}: `pio run` after a build
        that fits, its problems published as diagnostics."""
        from tinyforge.lsp import firmware

        try:
            project = _project(list(args), ls)
        except TinyForgeError as exc:
            return _error(exc)
        options = firmware.command_options(list(args), 1)

        def work(p: LspProgress, c: threading.Event) -> dict[str, Any]:
            report = pipeline.build(project, progress=p, cancel=c).report
            if not options.get("firmware") or not report.fits:
                return {"report": report.to_json()}
            pio = firmware.run_firmware(project, "build", options, p, c)
            return {"report": report.to_json(), "pio": pio}

        result = await long_job(ls, "TinyForge: building", work)
        if isinstance(result.get("pio"), dict) and "firmware" in result["pio"]:
            firmware.publish_result(ls, result["pio"]["firmware"])
        return result

    @server.command("tinyforge.verify")
    async def verify(ls: TinyForgeServer, *args: Any) -> dict[str, Any]:
        """args: project, then optionally {"kernels", "core", "tflm", "samples"}: the firmware
        compiled with real TFLM, run on the board's emulated core; report.json gets a `device`
        section, and what it measured over the budget becomes diagnostics (see lsp/device.py)."""
        try:
            project, options = device.verify_options(_project(list(args), ls), list(args))
        except TinyForgeError as exc:
            return _error(exc)
        result = await long_job(
            ls,
            "TinyForge: verifying on an emulated board",
            lambda p, c: device.verify(project, options, p, c),
        )
        device.refresh(ls, project)
        return result

    # -- for the VS Code client: status bar, inspect report, PlatformIO ------------------------

    @server.command("tinyforge.projectStatus")
    def project_status(ls: TinyForgeServer, *args: Any) -> dict[str, Any]:
        from tinyforge.lsp.editor_views import project_status

        try:
            return project_status(ls, list(args))
        except TinyForgeError as exc:
            return _error(exc)

    @server.command("tinyforge.inspect")
    async def inspect(ls: TinyForgeServer, *args: Any) -> dict[str, Any]:
        from tinyforge.lsp.editor_views import inspect

        try:
            return await asyncio.to_thread(inspect, ls, list(args))
        except TinyForgeError as exc:
            return _error(exc)

    @server.command("tinyforge.pio")
    async def pio(ls: TinyForgeServer, *args: Any) -> dict[str, Any]:
        """`pio run` (args: project, "build" | "upload", {"env", "port"}) with progress and
        cancel; compiler errors and memory overflows become diagnostics."""
        from tinyforge.lsp import firmware

        try:
            project = _project(list(args), ls)
        except TinyForgeError as exc:
            return _error(exc)
        target = str(args[1]) if len(args) > 1 and args[1] else "build"
        if target not in ("build", "upload"):
            return _error(TinyForgeError(f"Unknown PlatformIO target '{target}'."))
        options = firmware.command_options(list(args), 2)
        title = "TinyForge: uploading" if target == "upload" else "TinyForge: PlatformIO build"
        result = await long_job(
            ls, title, lambda p, c: firmware.run_firmware(project, target, options, p, c)
        )
        if isinstance(result.get("firmware"), dict):
            firmware.publish_result(ls, result["firmware"])
        return result

    @server.command("tinyforge.upload")
    async def upload(ls: TinyForgeServer, *args: Any) -> dict[str, Any]:
        """args: project, {"port": …, "env": …}: build what changed and flash the board."""
        uploaded: dict[str, Any] = await pio(ls, args[0] if args else "", "upload", *args[1:2])
        return uploaded

    @server.command("tinyforge.monitor")
    async def monitor(ls: TinyForgeServer, *args: Any) -> dict[str, Any]:
        """args: project, {"port", "env"}: the `pio device monitor` command for a terminal."""
        from tinyforge.lsp import firmware

        try:
            project = _project(list(args), ls)
            return await asyncio.to_thread(
                firmware.monitor, project, firmware.command_options(list(args), 1)
            )
        except TinyForgeError as exc:
            return _error(exc)
