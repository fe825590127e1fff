"""How a change reaches the editor: the server proposes WorkspaceEdits, the editor applies them
(its undo and preview work as for any refactoring), the server itself writes nothing.

Every fix, quick fix, new project and model proposal is a list of the fix engine's FileEdits
(a file's text before and after, repair/fixes.py) turned into a WorkspaceEdit by
`workspace_edit`. An edit whose change annotation needs confirmation makes VS Code show its
refactor preview (a diff per file) first: the fit command (the chosen model) and the
new-project command (Claude's model design) ask the editor to apply theirs that way.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any

from lsprotocol import types as lsp
from lsprotocol.converters import get_converter

from tinyforge.lsp.documents import file_uri, open_text
from tinyforge.lsp.server import TinyForgeServer
from tinyforge.repair.fixes import FileEdit, end_of

# The editor's answer to the preview may wait on the user: long, but not forever.
APPLY_TIMEOUT = 600.0

DocumentChange = lsp.TextDocumentEdit | lsp.CreateFile | lsp.RenameFile | lsp.DeleteFile


@dataclass(frozen=True)
class Confirmation:
    """The change annotation of an edit the user confirms in the editor's preview."""

    id: str
    label: str
    description: str


def current_text(server: TinyForgeServer, path: Path) -> str | None:
    """The editor's buffer when the file is open (unsaved edits included), else the file on
    disk; None when there is neither."""
    text = open_text(server, path)
    if text is not None:
        return text
    return path.read_text(encoding="utf-8") if path.is_file() else None


def workspace_edit(
    root: Path,
    edits: Iterable[FileEdit],
    *,
    confirm: Confirmation | None = None,
    uris: Mapping[Path, str] = MappingProxyType({}),
) -> lsp.WorkspaceEdit:
    """The WorkspaceEdit of `edits` (paths relative to `root`; `uris`: the editor's own URIs of
    the documents it has open, which are never created).

    A file not there yet is created first, never over one that appeared since. Under `confirm`
    each file's text is replaced whole (the preview shows the diff); otherwise only its changed
    lines are. Without files to create or a confirmation the edit also comes as plain
    `changes`, which every client applies; those with `documentChanges` prefer them.
    """
    document_changes: list[DocumentChange] = []
    changes: dict[str, list[lsp.TextEdit]] = {}
    for edit in edits:
        path = root / edit.path
        uri = uris.get(path) or file_uri(path)
        if not path.exists() and path not in uris:
            options = lsp.CreateFileOptions(overwrite=False, ignore_if_exists=False)
            document_changes.append(lsp.CreateFile(uri=uri, options=options))
        text_edits: list[lsp.TextEdit | lsp.AnnotatedTextEdit | lsp.SnippetTextEdit]
        if confirm is None:
            changes[uri] = _changed_lines(edit)
            text_edits = list(changes[uri])
        else:
            text_edits = [_whole_file(edit, confirm.id)]
        document_changes.append(
            lsp.TextDocumentEdit(
                text_document=lsp.OptionalVersionedTextDocumentIdentifier(uri=uri, version=None),
                edits=text_edits,
            )
        )
    plain = confirm is None and all(isinstance(c, lsp.TextDocumentEdit) for c in document_changes)
    annotations = None
    if confirm is not None:
        annotation = lsp.ChangeAnnotation(
            label=confirm.label, needs_confirmation=True, description=confirm.description
        )
        annotations = {confirm.id: annotation}
    return lsp.WorkspaceEdit(
        changes=changes if plain else None,
        document_changes=document_changes,
        change_annotations=annotations,
    )


def _changed_lines(edit: FileEdit) -> list[lsp.TextEdit]:
    return [
        lsp.TextEdit(range=_range(start, end), new_text=text)
        for start, end, text in edit.line_edits()
    ]


def _whole_file(edit: FileEdit, annotation: str) -> lsp.AnnotatedTextEdit:
    return lsp.AnnotatedTextEdit(
        range=_range((0, 0), end_of(edit.before)), new_text=edit.after, annotation_id=annotation
    )


def _range(start: tuple[int, int], end: tuple[int, int]) -> lsp.Range:
    return lsp.Range(
        start=lsp.Position(line=start[0], character=start[1]),
        end=lsp.Position(line=end[0], character=end[1]),
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
    server: TinyForgeServer, result: dict[str, Any], *, apply: bool = True
) -> dict[str, Any]:
    """Ask the editor to preview and apply `result["edit"]` (unless not to `apply` it);
    `result["applied"]` then says whether the user accepted it. A client that cannot preview
    gets the result as it is: the edit is in it, for the client to apply."""
    if not result.get("edit") or not apply or not can_preview(server):
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

PROPOSAL_LABEL = "Claude's model design for train.py"
PROPOSAL = Confirmation(
    "tinyforge-claude-model",
    PROPOSAL_LABEL,
    "Checked against the budget and TFLite Micro's ops; nothing of it has run.",
)


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
    current = current_text(server, project / TRAIN_SCRIPT) or ""
    edit = workspace_edit(
        project, [FileEdit(TRAIN_SCRIPT, current, pending.proposed)], confirm=PROPOSAL
    )
    answer.update(edit=get_converter().unstructure(edit), label=PROPOSAL_LABEL, diff=pending.diff())
    answer = await offer_edit(server, answer)
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
