"""The dataset as the editor sees it from tinyforge.toml: what would stop a build, said early.

- classes the data does not have (the build's own sentence) on `classes`, with the quick fix
  that takes the data's labels (the same edit as `tinyforge repair`);
- class folders still empty, or a data folder not there yet (a project planned without data),
  on the [dataset] `path`, naming each folder and what to record into it.

Cheap enough for every change: folder listings and a CSV's label column, cached per file
version; a CSV's values are left to the build.
"""

from __future__ import annotations

from pathlib import Path

from lsprotocol import types as lsp

from tinyforge.boards import get_board
from tinyforge.errors import TinyForgeError
from tinyforge.lsp.analyses import DocumentAnalysis
from tinyforge.lsp.documents import find_key_line, line_range
from tinyforge.lsp.server import TinyForgeServer
from tinyforge.reconcile import DIAGNOSTIC_CODE, labels_fix, mismatch_sentence, reconcile
from tinyforge.scaffold import is_default_data
from tinyforge.spec import SPEC_FILENAME, DatasetKind, ProjectSpec

SOURCE = "tinyforge"
EMPTY_DATA_CODE = "data.not-ready"


def register(server: TinyForgeServer) -> None:
    server.features.checks.append((lambda name: name == SPEC_FILENAME, data_check))
    server.features.code_actions.append(data_code_actions)


def data_check(server: TinyForgeServer, analysis: DocumentAnalysis) -> list[lsp.Diagnostic]:
    """Only on a spec with no problem of its own (lsp/project_files.py says those)."""
    spec = _spec(analysis.text)
    if spec is None:
        return []
    try:
        get_board(spec.board)
    except TinyForgeError:
        return []
    return spec_data_diagnostics(analysis.text, analysis.path)


def _spec(text: str) -> ProjectSpec | None:
    try:
        return ProjectSpec.from_toml_text(text)
    except TinyForgeError:
        return None  # the spec's own diagnostics say what is wrong with it


def _line(lines: list[str], *candidates: int | None) -> int:
    return next((c for c in candidates if c is not None), 0)


def spec_data_diagnostics(text: str, spec_path: Path | None) -> list[lsp.Diagnostic]:
    if spec_path is None:
        return []
    spec = _spec(text)
    if spec is None or spec.model is not None:
        return []
    project = spec_path.parent
    lines = text.splitlines() or [""]
    found: list[lsp.Diagnostic] = []
    result = reconcile(spec, project)
    if result.missing:
        line = _line(
            lines, find_key_line(lines, "classes"), find_key_line(lines, "path", "dataset")
        )
        found.append(
            lsp.Diagnostic(
                range=line_range(line, lines[line]),
                message=mismatch_sentence(spec, result),
                severity=lsp.DiagnosticSeverity.Error,
                source=SOURCE,
                code=DIAGNOSTIC_CODE,
            )
        )
        return found
    not_ready = _data_not_ready(spec, project)
    if not_ready:
        line = _line(
            lines, find_key_line(lines, "path", "dataset"), find_key_line(lines, "kind", "dataset")
        )
        found.append(
            lsp.Diagnostic(
                range=line_range(line, lines[line]),
                message=not_ready,
                severity=lsp.DiagnosticSeverity.Warning,
                source=SOURCE,
                code=EMPTY_DATA_CODE,
            )
        )
    return found


def _data_not_ready(spec: ProjectSpec, project: Path) -> str | None:
    """The build's own sentence for a data folder still to be filled, or None."""
    from tinyforge import datasets

    folder = spec.dataset.kind is DatasetKind.FOLDER
    if not folder and not is_default_data(spec):
        return None  # a CSV is read in full by the build only: too slow for every keystroke
    if spec.dataset.kind is DatasetKind.CSV:
        path = datasets.resolve_path(spec, project)
        if path is not None and path.exists():
            return None
    try:
        if folder:
            datasets.folder_ready(spec, project)
        else:
            datasets.validate(spec, project)  # the default CSV, not there: says what to record
    except (TinyForgeError, OSError) as exc:
        return str(exc)
    return None


def data_code_actions(
    server: TinyForgeServer, analysis: DocumentAnalysis, params: lsp.CodeActionParams
) -> list[lsp.CodeAction]:
    """On tinyforge.toml with a class the data lacks: take the data's labels."""
    from tinyforge.lsp.preview import workspace_edit

    path = analysis.path
    if path is None or path.name != SPEC_FILENAME:
        return []
    spec = _spec(analysis.text)
    if spec is None:
        return []
    fix = labels_fix(analysis.text, spec, path.parent)
    if fix is None:
        return []
    diagnostics = [d for d in params.context.diagnostics if d.code == DIAGNOSTIC_CODE]
    return [
        lsp.CodeAction(
            title=fix.title,
            kind=lsp.CodeActionKind.QuickFix,
            diagnostics=diagnostics or None,
            is_preferred=True,
            edit=workspace_edit(path.parent, fix.edits, uris={path: analysis.uri}),
        )
    ]
