"""Code actions: create a project from a `# tinyml: <request>` comment, and model fixes."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from lsprotocol import types as lsp

from tinyforge.errors import TinyForgeError
from tinyforge.lsp.documents import doc_path
from tinyforge.lsp.server import TinyForgeServer

# The request is the rest of the line, stripped in code: `.+?\s*$` backtracked quadratically
# over a long run of spaces (a 30,000-character line held the server for seconds).
REQUEST_COMMENT = re.compile(r"#\s*tinyml\s*:(?P<request>.*)", re.IGNORECASE)
CREATE_TITLE = "Create TinyML project from this request"


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


def code_actions(server: TinyForgeServer, params: lsp.CodeActionParams) -> list[lsp.CodeAction]:
    document = server.workspace.get_text_document(params.text_document.uri)
    actions: list[lsp.CodeAction] = []
    found = request_at(document.source, params.range)
    if found:
        request, explicit = found
        try:
            # Always the offline planner here: editors ask for code actions on every cursor
            # move, and a network round trip (and its cost) per request is not acceptable.
            # The tinyforge.newProject command uses the configured planner.
            edit, folder = create_project_edit(
                request, document.uri, server.settings.board, "offline"
            )
            actions.append(
                lsp.CodeAction(
                    title=f"{CREATE_TITLE} (in {folder.name}/)",
                    kind=lsp.CodeActionKind.RefactorRewrite,
                    edit=edit,
                )
            )
        except TinyForgeError as exc:
            # Any selection might be a request; only an explicit one deserves the reason it failed.
            if not explicit:
                return actions + _model_actions(server, document, params)
            actions.append(
                lsp.CodeAction(
                    title=f"{CREATE_TITLE}: {exc}",
                    kind=lsp.CodeActionKind.RefactorRewrite,
                    disabled=lsp.CodeActionDisabled(reason=str(exc)),
                )
            )
    return actions + _model_actions(server, document, params)


def _model_actions(
    server: TinyForgeServer, document: Any, params: lsp.CodeActionParams
) -> list[lsp.CodeAction]:
    from tinyforge.lsp.data import data_code_actions
    from tinyforge.lsp.firmware import firmware_code_actions
    from tinyforge.lsp.fit import fit_code_actions
    from tinyforge.lsp.model_checks import model_code_actions
    from tinyforge.lsp.onnx_convert import onnx_export_actions

    # Fixes for the model script's estimates, and for a PlatformIO build's memory overflow;
    # converting what a `torch.onnx.export(...)` call writes.
    return (
        model_code_actions(server, document, params)
        + firmware_code_actions(server, params)
        + onnx_export_actions(server, document, params)
        + fit_code_actions(server, document, params)
        # tinyforge.toml naming a class the dataset lacks: take the data's labels.
        + data_code_actions(document, params)
    )


def register(server: TinyForgeServer) -> None:
    @server.feature(
        lsp.TEXT_DOCUMENT_CODE_ACTION,
        lsp.CodeActionOptions(
            code_action_kinds=[lsp.CodeActionKind.QuickFix, lsp.CodeActionKind.RefactorRewrite]
        ),
    )
    def on_code_action(ls: TinyForgeServer, params: lsp.CodeActionParams) -> list[lsp.CodeAction]:
        return code_actions(ls, params)
