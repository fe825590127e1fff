"""workspace/executeCommand: the pipeline's stages (train, convert, build) and the board.

The long ones run as jobs (lsp/progress.py): a worker thread drives child processes, with
`$/progress` and cancel. The other features register their own commands: new projects
(lsp/new_project.py), fit, ONNX conversion, PlatformIO, verify, repair, the editor's views.
"""

from __future__ import annotations

import threading
from typing import Any

from tinyforge.lsp import firmware, onnx_convert
from tinyforge.lsp.arguments import folder_argument
from tinyforge.lsp.diagnostics import reanalyse
from tinyforge.lsp.firmware import FirmwareOptions
from tinyforge.lsp.onnx_convert import ConvertOptions
from tinyforge.lsp.progress import LspProgress, long_job
from tinyforge.lsp.server import TinyForgeServer


def register(server: TinyForgeServer) -> None:
    # The pipeline (the planner, the templates, the stages' doors) is imported by the first
    # command that runs it: the server answers `initialize` without it.
    @server.command("tinyforge.boards")
    def boards(ls: TinyForgeServer) -> list[dict[str, Any]]:
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
    def select_board(ls: TinyForgeServer, board: str = "") -> dict[str, Any]:
        from tinyforge.boards import get_board

        ls.settings.board = get_board(board).id
        reanalyse(ls)
        return {"ok": True, "board": ls.settings.board}

    @server.command("tinyforge.train")
    async def train(ls: TinyForgeServer, project: str = "") -> dict[str, Any]:
        from tinyforge import pipeline

        root = folder_argument(ls, project)
        return await long_job(
            ls,
            "TinyForge: training",
            lambda p, c: {"metrics": pipeline.train_only(root, progress=p, cancel=c)},
        )

    @server.command("tinyforge.convert")
    async def convert(
        ls: TinyForgeServer, project: str = "", options: ConvertOptions = onnx_convert.DEFAULTS
    ) -> dict[str, Any]:
        """A project's model → int8 TFLite (its report); an .onnx file → a project beside it."""
        if onnx_convert.is_onnx_file(project):
            return await onnx_convert.convert_file(ls, project, options)
        from tinyforge import pipeline

        root = folder_argument(ls, project)

        def work(p: LspProgress, c: threading.Event) -> dict[str, Any]:
            build = pipeline.build(root, progress=p, cancel=c, train=False)
            return {"report": build.report.to_json()}

        return await long_job(ls, "TinyForge: converting", work)

    @server.command("tinyforge.build")
    async def build(
        ls: TinyForgeServer, project: str = "", options: FirmwareOptions = firmware.DEFAULTS
    ) -> dict[str, Any]:
        """Train → convert → verify → PlatformIO project → report; with {"firmware": true},
        `pio run` after a build that fits, its problems published as diagnostics."""
        from tinyforge import pipeline

        root = folder_argument(ls, project)

        def work(p: LspProgress, c: threading.Event) -> dict[str, Any]:
            report = pipeline.build(root, progress=p, cancel=c).report
            if not options.firmware or not report.fits:
                return {"report": report.to_json()}
            pio = firmware.run_firmware(root, "build", options, p, c)
            return {"report": report.to_json(), "pio": pio}

        result = await long_job(ls, "TinyForge: building", work)
        if isinstance(result.get("pio"), dict) and "firmware" in result["pio"]:
            firmware.publish_result(ls, result["pio"]["firmware"])
        return result
