"""The editor's repair command: proposed fixes as WorkspaceEdits the client can preview and apply.

Nothing is written by the server: the client applies the edit of the fix the user accepts
(workspace/applyEdit), so the editor's undo and preview work as for any refactoring.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from lsprotocol.converters import get_converter

from tinyforge.lsp.arguments import folder_argument
from tinyforge.lsp.preview import workspace_edit
from tinyforge.lsp.server import TinyForgeServer
from tinyforge.lsp.settings import Settings
from tinyforge.repair import propose_fixes


def register(server: TinyForgeServer) -> None:
    @server.command("tinyforge.repair")
    async def repair(ls: TinyForgeServer, project: str = "") -> dict[str, Any]:
        """Fixes for the project's last failure, each with a WorkspaceEdit to apply."""
        result = await asyncio.to_thread(repair_project, folder_argument(ls, project), ls.settings)
        return {"ok": True, **result}


def repair_project(project: Path, settings: Settings) -> dict[str, Any]:
    """Failures and fixes of `project`; Claude joins in when the planner setting is claude."""
    repairer = None
    if settings.planner.strip().lower() == "claude":
        from tinyforge.repair.claude import ClaudeRepairer

        repairer = ClaudeRepairer(**{k: v for k, v in settings.planner_options().items() if v})
    result = propose_fixes(project, repairer=repairer)
    converter = get_converter()
    fixes = []
    for fix in result.fixes:
        item = fix.to_dict()
        if fix.applicable:
            item["edit"] = converter.unstructure(workspace_edit(project, fix.edits))
        fixes.append(item)
    return {
        "failures": [f.to_dict() for f in result.failures],
        "fixes": fixes,
        "notices": result.notices,
    }
