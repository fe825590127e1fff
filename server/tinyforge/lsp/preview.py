"""Edits the user sees before they apply: whole-file WorkspaceEdits whose change annotation
needs confirmation, so VS Code shows its refactor preview (a diff per file) and applies the edit
only when the user accepts it. Shared by the fit command (the chosen model) and the new-project
command (Claude's model design): the server proposes, the editor applies, the server itself
writes nothing.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from lsprotocol import types as lsp
from lsprotocol.converters import get_converter
from pygls.uris import from_fs_path

from tinyforge.lsp.server import TinyForgeServer

# The editor's answer to the preview may wait on the user: long, but not forever.
APPLY_TIMEOUT = 600.0

DocumentChange = lsp.TextDocumentEdit | lsp.CreateFile | lsp.RenameFile | lsp.DeleteFile


def file_uri(path: Path) -> str:
    return from_fs_path(str(path)) or path.as_uri()


def current_text(server: TinyForgeServer, path: Path) -> str | None:
    """The editor's buffer when the file is open (unsaved edits included), else the file on
    disk; None when there is neither."""
    uri = file_uri(path)
    if uri in server.workspace.text_documents:
        return server.workspace.get_text_document(uri).source
    return path.read_text(encoding="utf-8") if path.is_file() else None


def whole_file_changes(
    uri: str, old: str | None, new: str, annotation: str
) -> list[DocumentChange]:
    """Replace the whole text of `uri` (created first when `old` is None) under `annotation`."""
    changes: list[DocumentChange] = []
    if old is None:
        changes.append(
            lsp.CreateFile(uri=uri, options=lsp.CreateFileOptions(ignore_if_exists=True))
        )
    lines = (old or "").split("\n")
    end = lsp.Position(line=len(lines) - 1, character=len(lines[-1]))
    changes.append(
        lsp.TextDocumentEdit(
            text_document=lsp.OptionalVersionedTextDocumentIdentifier(uri=uri, version=None),
            edits=[
                lsp.AnnotatedTextEdit(
                    range=lsp.Range(start=lsp.Position(line=0, character=0), end=end),
                    new_text=new,
                    annotation_id=annotation,
                )
            ],
        )
    )
    return changes


def confirmed_edit(
    changes: list[DocumentChange], annotation: str, label: str, description: str
) -> lsp.WorkspaceEdit:
    """`changes` under one annotation the user must confirm (the editor's preview)."""
    return lsp.WorkspaceEdit(
        document_changes=changes,
        change_annotations={
            annotation: lsp.ChangeAnnotation(
                label=label, needs_confirmation=True, description=description
            )
        },
    )


def can_preview(server: TinyForgeServer) -> bool:
    """Whether the client applies edits on request and previews annotated ones."""
    caps = server.client_capabilities
    workspace = caps.workspace if caps else None
    if workspace is None or not workspace.apply_edit:
        return False
    edits = workspace.workspace_edit
    return bool(edits and edits.change_annotation_support and edits.document_changes)


async def offer_edit(
    server: TinyForgeServer, result: dict[str, Any], raw: dict[str, Any]
) -> dict[str, Any]:
    """Ask the editor to preview and apply `result["edit"]` (unless `{"apply": false}`);
    `result["applied"]` then says whether the user accepted it. A client that cannot preview
    gets the result as it is: the edit is in it, for the client to apply."""
    if not result.get("edit") or raw.get("apply") is False or not can_preview(server):
        return result
    edit = get_converter().structure(result["edit"], lsp.WorkspaceEdit)
    try:
        answer = await asyncio.wait_for(
            server.workspace_apply_edit_async(
                lsp.ApplyWorkspaceEditParams(edit=edit, label=result.get("label"))
            ),
            timeout=APPLY_TIMEOUT,
        )
    except Exception as exc:  # the result stands; the edit is in it for the client to apply
        result["applied"] = False
        result["apply_error"] = str(exc) or type(exc).__name__
        return result
    result["applied"] = bool(getattr(answer, "applied", False))
    return result


# -- Claude's model design for a new project --------------------------------------------------

PROPOSAL_ANNOTATION = "tinyforge-claude-model"
PROPOSAL_LABEL = "Claude's model design for train.py"


async def offer_proposal(
    server: TinyForgeServer, project: Path, answer: dict[str, Any]
) -> dict[str, Any]:
    """The new project's model proposal (pipeline.pending_proposal) as an edit of train.py the
    user previews: taken into the editor's buffer or declined, the saved proposal goes; when
    the editor cannot ask, it waits beside train.py and the notices say how to take it."""
    from tinyforge import pipeline
    from tinyforge.generate import TRAIN_SCRIPT

    pending = pipeline.pending_proposal(project)
    if pending is None:
        return answer
    script = project / TRAIN_SCRIPT
    changes = whole_file_changes(
        file_uri(script), current_text(server, script), pending.proposed, PROPOSAL_ANNOTATION
    )
    edit = confirmed_edit(
        changes,
        PROPOSAL_ANNOTATION,
        PROPOSAL_LABEL,
        "Checked against the budget and TFLite Micro's ops; nothing of it has run.",
    )
    answer.update(edit=get_converter().unstructure(edit), label=PROPOSAL_LABEL, diff=pending.diff())
    answer = await offer_edit(server, answer, {})
    notices = answer.setdefault("notices", [])
    if "applied" in answer and "apply_error" not in answer:
        pipeline.discard_proposal(project)  # the user answered: in the buffer, or declined
        if not answer["applied"]:
            notices.append("Kept TinyForge's own train.py.")
    else:
        notices.append(
            f"Claude's model design waits in {project / pipeline.PROPOSAL_FILE}: use it with "
            f"`tinyforge accept-proposal {project}`."
        )
    return answer
