"""The last build's health findings as diagnostics, on tinyforge.toml and on train.py.

Cheap by design: it reads the project's report.json (no dataset, no model, no scikit-learn),
so it can run on every change. The findings are those of the last build; they say so.
"""

from __future__ import annotations

import re
from pathlib import Path

from lsprotocol import types as lsp

from tinyforge.generate import REPORT_FILE, TRAIN_SCRIPT
from tinyforge.health import Finding
from tinyforge.lsp.analyses import DocumentAnalysis
from tinyforge.lsp.documents import find_key_line, line_range
from tinyforge.lsp.server import TinyForgeServer
from tinyforge.report import load_findings
from tinyforge.spec import SPEC_FILENAME

SOURCE = "tinyforge"
_SEVERITY = {
    "error": lsp.DiagnosticSeverity.Error,
    "warning": lsp.DiagnosticSeverity.Warning,
    "info": lsp.DiagnosticSeverity.Information,
}
# Findings about the training set-up rather than the data: shown on the script too.
_SCRIPT_CODES = {"baseline.beaten", "data.needs-scaling"}


def register(server: TinyForgeServer) -> None:
    server.features.checks.append((lambda name: name == SPEC_FILENAME, spec_check))
    server.features.checks.append((lambda name: name == TRAIN_SCRIPT, script_check))


def spec_check(server: TinyForgeServer, analysis: DocumentAnalysis) -> list[lsp.Diagnostic]:
    return spec_health_diagnostics(analysis.text, analysis.path)


def script_check(server: TinyForgeServer, analysis: DocumentAnalysis) -> list[lsp.Diagnostic]:
    return script_health_diagnostics(analysis.text, analysis.path)


def _about_training(finding: Finding) -> bool:
    return finding.code in _SCRIPT_CODES or finding.where == "train.py"


def _diagnostic(line: int, text_line: str, finding: Finding) -> lsp.Diagnostic:
    return lsp.Diagnostic(
        range=line_range(line, text_line),
        message=f"Last build: {finding.sentence()}",
        severity=_SEVERITY.get(finding.severity, lsp.DiagnosticSeverity.Information),
        source=SOURCE,
        code=finding.code,
    )


def _table_line(lines: list[str], table: str) -> int | None:
    for number, line in enumerate(lines):
        if re.match(rf"^\s*\[\s*{re.escape(table)}\s*\]", line):
            return number
    return None


def spec_health_diagnostics(text: str, spec_path: Path | None) -> list[lsp.Diagnostic]:
    """Data findings on [dataset] `path` (or `kind`), quantization ones on `quantization`,
    training set-up ones on [training] `epochs`."""
    if spec_path is None:
        return []
    findings = load_findings(spec_path.parent / REPORT_FILE)
    if not findings:
        return []
    lines = text.splitlines() or [""]

    def first(*candidates: int | None) -> int:
        return next((c for c in candidates if c is not None), 0)

    dataset = first(
        find_key_line(lines, "path", "dataset"),
        find_key_line(lines, "kind", "dataset"),
        _table_line(lines, "dataset"),
    )
    quantization = first(find_key_line(lines, "quantization"), dataset)
    training = first(
        find_key_line(lines, "epochs", "training"), _table_line(lines, "training"), dataset
    )
    found = []
    for finding in findings:
        if finding.family == "quant":
            line = quantization
        elif _about_training(finding):
            line = training
        else:
            line = dataset
        found.append(_diagnostic(line, lines[line], finding))
    return found


def script_health_diagnostics(text: str, script_path: Path | None) -> list[lsp.Diagnostic]:
    """Training set-up findings of the last build on the project's train.py (`EPOCHS =`)."""
    if script_path is None:
        return []
    findings = [f for f in load_findings(script_path.parent / REPORT_FILE) if _about_training(f)]
    if not findings:
        return []
    lines = text.splitlines() or [""]
    line = next(
        (n for n, t in enumerate(lines) if re.match(r"^EPOCHS\s*=", t)),
        next((n for n, t in enumerate(lines) if t.startswith("def build_model")), 0),
    )
    return [_diagnostic(line, lines[line], f) for f in findings]
