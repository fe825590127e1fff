"""The editor's repair command: proposed fixes as WorkspaceEdits the client can preview and apply.

Nothing is written by the server: the client applies the edit of the fix the user accepts
(workspace/applyEdit), so the editor's undo and preview work as for any refactoring.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from lsprotocol import types as lsp
from lsprotocol.converters import get_converter
from pygls.uris import from_fs_path

from tinyforge.lsp.server import Settings
from tinyforge.repair import Fix, propose_fixes


def workspace_edit(project: Path, fix: Fix) -> lsp.WorkspaceEdit:
    changes: list[lsp.TextDocumentEdit | lsp.CreateFile | lsp.RenameFile | lsp.DeleteFile] = []
    for edit in fix.edits:
        path = project / edit.path
        uri = from_fs_path(str(path)) or path.as_uri()
        if not path.exists():
            changes.append(
                lsp.CreateFile(uri=uri, options=lsp.CreateFileOptions(ignore_if_exists=True))
            )
        text_edits: list[lsp.TextEdit | lsp.AnnotatedTextEdit | lsp.SnippetTextEdit] = [
            lsp.TextEdit(
                range=lsp.Range(
                    start=lsp.Position(line=start[0], character=start[1]),
                    end=lsp.Position(line=end[0], character=end[1]),
                ),
                new_text=text,
            )
            for start, end, text in edit.line_edits()
        ]
        changes.append(
            lsp.TextDocumentEdit(
                text_document=lsp.OptionalVersionedTextDocumentIdentifier(uri=uri, version=None),
                edits=text_edits,
            )
        )
    return lsp.WorkspaceEdit(document_changes=changes)


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
            item["edit"] = converter.unstructure(workspace_edit(project, fix))
        fixes.append(item)
    return {
        "failures": [f.to_dict() for f in result.failures],
        "fixes": fixes,
        "notices": result.notices,
    }
