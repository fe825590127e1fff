"""A new project from a sentence: the `tinyforge.plan` and `tinyforge.newProject` commands, and
the code action on a `# tinyml: <request>` comment (or a selection) that creates the project's
files as an edit the user previews."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path
from typing import Any

from lsprotocol import types as lsp

from tinyforge.errors import TinyForgeError
from tinyforge.lsp.analyses import DocumentAnalysis
from tinyforge.lsp.arguments import Notices, folder_argument
from tinyforge.lsp.documents import doc_path
from tinyforge.lsp.server import TinyForgeServer

# The request is the rest of the line, stripped in code: `.+?\s*$` backtracked quadratically
# over a long run of spaces (a 30,000-character line held the server for seconds).
REQUEST_COMMENT = re.compile(r"#\s*tinyml\s*:(?P<request>.*)", re.IGNORECASE)
CREATE_TITLE = "Create TinyML project from this request"


def register(server: TinyForgeServer) -> None:
    server.features.code_actions.append(create_project_actions)

    # A worker thread: with the Claude planner these wait on the network, and the server must
    # keep answering meanwhile. The notices say e.g. that no key was set and it planned offline.
    @server.command("tinyforge.plan")
    async def plan(
        ls: TinyForgeServer, notices: Notices, request: str = "", board: str = ""
    ) -> dict[str, Any]:
        from tinyforge import pipeline

        spec = await asyncio.to_thread(
            pipeline.plan, request, board=board or None, **_planner(ls, notices)
        )
        return {"ok": True, "spec": spec.model_dump(mode="json"), "notices": list(notices)}

    @server.command("tinyforge.newProject")
    async def new_project(
        ls: TinyForgeServer, notices: Notices, request: str, folder: str, board: str = ""
    ) -> dict[str, Any]:
        """A model Claude designs comes as an edit of train.py the editor previews before it is
        used (lsp/preview.py)."""
        from tinyforge import pipeline
        from tinyforge.lsp.preview import offer_proposal

        target = folder_argument(ls, folder)
        spec, written = await asyncio.to_thread(
            pipeline.new_project, request, target, board=board or None, **_planner(ls, notices)
        )
        answer = {
            "ok": True,
            "spec": spec.model_dump(mode="json"),
            "written": written.written,
            "notices": list(notices),
        }
        return await offer_proposal(ls, target, answer)


def _planner(server: TinyForgeServer, notices: Notices) -> dict[str, Any]:
    """The planner the settings choose, and where it says what it did instead."""
    settings = server.settings
    return {
        "default_board": settings.board,
        "planner": settings.planner,
        "planner_options": settings.planner_options(),
        "notices": notices,
    }


def request_at(text: str, rng: lsp.Range) -> tuple[str, bool] | None:
    """The request under the cursor and whether it was explicit (a `# tinyml:` comment) rather
    than just a selection."""
    lines = text.splitlines()
    for number in range(rng.start.line, min(rng.end.line, len(lines) - 1) + 1):
        match = REQUEST_COMMENT.search(lines[number])
        if match and match.group("request").strip():
            return match.group("request").strip(), True
    if rng.start != rng.end:
        selected = _slice(lines, rng).strip().strip("#").strip()
        return (selected, False) if selected else None
    return None


def _slice(lines: list[str], rng: lsp.Range) -> str:
    if rng.start.line >= len(lines):
        return ""  # a stale range: the document has fewer lines now
    if rng.start.line == rng.end.line:
        line = lines[rng.start.line] if rng.start.line < len(lines) else ""
        return line[rng.start.character : rng.end.character]
    parts = [lines[rng.start.line][rng.start.character :]]
    parts += lines[rng.start.line + 1 : rng.end.line]
    if rng.end.line < len(lines):
        parts.append(lines[rng.end.line][: rng.end.character])
    return "\n".join(parts)


def free_folder(parent: Path, name: str) -> Path:
    """A folder name beside the document that holds nothing yet: never write over a user's files."""
    candidate = parent / name
    counter = 2
    while candidate.exists() and (not candidate.is_dir() or any(candidate.iterdir())):
        candidate = parent / f"{name}_{counter}"
        counter += 1
    return candidate


def create_project_edit(
    request: str, document_uri: str, board: str | None, planner: str
) -> tuple[lsp.WorkspaceEdit, Path]:
    """Plan + generate as a WorkspaceEdit that creates the files, so the user can preview them."""
    from tinyforge import generate, pipeline
    from tinyforge.plan.offline import check_request

    # Before anything reads it: looking for board names in a 400,000-character selection
    # alone took over a second.
    check_request(request)
    path = doc_path(document_uri)
    parent = path.parent if path else Path.cwd()
    spec = pipeline.plan(request, default_board=board, planner=planner)
    folder = free_folder(parent, spec.name)
    spec = pipeline.relocate_dataset(spec, folder)
    from tinyforge.lsp.preview import workspace_edit
    from tinyforge.repair.fixes import FileEdit
    from tinyforge.scaffold import data_files

    # No data named: the project's data/ folder (README, one folder per class) comes too.
    files = {**generate.render_project(spec, folder), **data_files(spec)}
    edits = [FileEdit(relpath, "", content) for relpath, content in files.items()]
    return workspace_edit(folder, edits), folder


def create_project_actions(
    server: TinyForgeServer, analysis: DocumentAnalysis, params: lsp.CodeActionParams
) -> list[lsp.CodeAction]:
    found = request_at(analysis.text, params.range)
    if not found:
        return []
    request, explicit = found
    kind = lsp.CodeActionKind.RefactorRewrite
    try:
        # Always the offline planner here: editors ask for code actions on every cursor
        # move, and a network round trip (and its cost) per request is not acceptable.
        # The tinyforge.newProject command uses the configured planner.
        edit, folder = create_project_edit(request, analysis.uri, server.settings.board, "offline")
    except TinyForgeError as exc:
        # Any selection might be a request; only an explicit one deserves the reason it failed.
        if not explicit:
            return []
        disabled = lsp.CodeActionDisabled(reason=str(exc))
        return [lsp.CodeAction(title=f"{CREATE_TITLE}: {exc}", kind=kind, disabled=disabled)]
    return [lsp.CodeAction(title=f"{CREATE_TITLE} (in {folder.name}/)", kind=kind, edit=edit)]
