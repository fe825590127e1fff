"""Keras model scripts: static memory diagnostics, a figures lens, hover, and fixes.

A static pass over the source (never executed) finds each model, infers its int8 shapes and
estimates arena, RAM and flash against the project's budget. After a build, the measured
figures in report.json replace the estimates for that project.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lsprotocol import types as lsp

from tinyforge.check import Verdict, check_budget, kb
from tinyforge.lsp.documents import context_for, doc_path
from tinyforge.lsp.preview import workspace_edit
from tinyforge.lsp.server import TinyForgeServer
from tinyforge.memory.keras_layers import CannotInfer, LayerFigures, ModelEstimate, estimate
from tinyforge.memory.keras_source import SourceLayer, SourceModel, find_models
from tinyforge.project import ProjectContext
from tinyforge.repair.edits import (
    Shrunk,
    replace_activations,
    replacement_for,
    shrink,
    tflm_runs,
)
from tinyforge.repair.fixes import FileEdit, split_lines
from tinyforge.report import BuildReport, current_report

SOURCE = "tinyforge"
# The estimator's arena planning grows faster than linearly with the layers (4,000 took 1.5 s,
# 30,000 took 44 s, on every request): past this, a model is not sized as you type. Models
# that fit a microcontroller have far fewer (MobileNetV2's Keras definition: about 155).
MAX_LAYERS = 500


@dataclass
class Analysis:
    model: SourceModel
    estimate: ModelEstimate | None
    problem: CannotInfer | None
    verdict: Verdict | None
    measured: BuildReport | None = None


def _hints(ctx: ProjectContext) -> dict[str, Any]:
    """Names a script takes from the project (e.g. `num_classes`) resolve from the spec."""
    hints: dict[str, Any] = {}
    if ctx.spec is not None:
        n = ctx.spec.num_classes or (len(ctx.spec.classes) if ctx.spec.classes else None)
        if n:
            for name in ("num_classes", "n_classes", "NUM_CLASSES", "N_CLASSES", "classes_count"):
                hints[name] = n
        hints["INPUT_SHAPE"] = tuple(ctx.spec.input_shape)
    return hints


def _measured(ctx: ProjectContext, path: Path | None) -> BuildReport | None:
    """The build report of the project whose training script this is, if it is current."""
    if ctx.root is None or path is None or path.resolve() != (ctx.root / "train.py").resolve():
        return None
    return current_report(ctx.root)


def _verdict(est: ModelEstimate, ctx: ProjectContext) -> Verdict | None:
    """The estimate against the project's budget (None when no board is known)."""
    if ctx.board is None or ctx.budget is None:
        return None
    largest = est.largest_activation()
    return check_budget(
        board=ctx.board,
        budget=ctx.budget,
        model_bytes=est.model_bytes_estimate,
        arena_bytes_target=est.arena_bytes_target,
        ops=est.ops,
        largest_tensor=_describe(largest) if largest else None,
    )


def analyse(text: str, ctx: ProjectContext, path: Path | None = None) -> list[Analysis]:
    try:
        models = find_models(text, _hints(ctx))
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return []  # half-typed code: nothing to say until it parses again
    results = []
    for model in models:
        if len(model.layers) > MAX_LAYERS:
            results.append(Analysis(model, None, _too_many_layers(model), None))
            continue
        try:
            est = estimate(model)
        except CannotInfer as exc:
            results.append(Analysis(model, None, exc, None))
            continue
        results.append(
            Analysis(
                model,
                est,
                None,
                _verdict(est, ctx),
                _measured(ctx, path) if len(models) == 1 else None,
            )
        )
    return results


def _too_many_layers(model: SourceModel) -> CannotInfer:
    return CannotInfer(
        -1,
        f"it has {len(model.layers):,} layers, over the {MAX_LAYERS} sized as you type "
        "(tinyforge inspect sizes the converted model)",
    )


def _describe(fig: LayerFigures) -> str:
    dims = "×".join(str(d) for d in fig.out_shape)
    return f"{fig.class_name} output {dims} = {kb(fig.activation_bytes)}"


def _layer_range(layer: SourceLayer) -> lsp.Range:
    return lsp.Range(
        start=lsp.Position(line=layer.line, character=layer.col),
        end=lsp.Position(line=layer.end_line, character=layer.end_col),
    )


def _model_range(model: SourceModel) -> lsp.Range:
    return lsp.Range(
        start=lsp.Position(line=model.line, character=model.col),
        end=lsp.Position(line=model.line, character=model.col + 1),
    )


def model_diagnostics(
    text: str, ctx: ProjectContext, path: Path | None = None
) -> list[lsp.Diagnostic]:
    found: list[lsp.Diagnostic] = []
    from tinyforge.memory.ops import tflm_supported_ops

    for a in analyse(text, ctx, path):
        model = a.model
        if a.problem is not None:
            where = (
                model.layers[a.problem.layer] if 0 <= a.problem.layer < len(model.layers) else None
            )
            rng = _layer_range(where) if where else _model_range(model)
            found.append(
                lsp.Diagnostic(
                    range=rng,
                    message=f"TinyForge cannot size this model statically: {a.problem}.",
                    severity=lsp.DiagnosticSeverity.Information,
                    source=SOURCE,
                    code="cannot-infer",
                )
            )
            continue
        est = a.estimate
        assert est is not None
        supported = tflm_supported_ops()
        for fig, layer in zip(est.layers, model.layers, strict=True):
            for op in [fig.op, *fig.extra_ops]:
                if op and op not in supported:
                    found.append(
                        lsp.Diagnostic(
                            range=_layer_range(layer),
                            message=f"{layer.class_name} becomes the TFLite op {op}, "
                            "which TFLite Micro cannot run.",
                            severity=lsp.DiagnosticSeverity.Warning,
                            source=SOURCE,
                            code="unsupported-op",
                        )
                    )
        if a.measured is not None:
            found += _measured_diagnostics(a, est, model)
            continue
        if a.verdict is None:
            continue
        ctx_board = a.verdict.budget
        for violation in a.verdict.violations:
            if violation.resource == "ram":
                culprit = max(est.layers, key=lambda f: f.activation_bytes)
                message = (
                    f"tensor arena ≈ {kb(est.arena_bytes_target)} (RAM ≈ "
                    f"{kb(violation.figure)} with runtime) exceeds the "
                    f"{ctx.board.id if ctx.board else ''} RAM budget of "
                    f"{kb(ctx_board['ram_bytes'])}; largest: {_describe(culprit)}"
                )
            else:
                culprit = max(est.layers, key=lambda f: f.param_bytes)
                message = (
                    f"flash ≈ {kb(violation.figure)} (model ≈ {kb(est.model_bytes_estimate)}) "
                    f"exceeds the {ctx.board.id if ctx.board else ''} flash budget of "
                    f"{kb(ctx_board['flash_bytes'])}; largest: {culprit.class_name} with "
                    f"{culprit.params:,} parameters"
                )
            found.append(
                lsp.Diagnostic(
                    range=_layer_range(model.layers[culprit.index]),
                    message=message,
                    severity=lsp.DiagnosticSeverity.Error,
                    source=SOURCE,
                    code=f"over-budget-{violation.resource}",
                )
            )
    return found


def _measured_diagnostics(
    a: Analysis, est: ModelEstimate, model: SourceModel
) -> list[lsp.Diagnostic]:
    """After a build, the converted model's exact figures speak instead of the estimate."""
    assert a.measured is not None
    found = []
    for violation in a.measured.violations:
        key = "activation_bytes" if violation.resource == "ram" else "param_bytes"
        culprit = max(est.layers, key=lambda f: getattr(f, key))
        found.append(
            lsp.Diagnostic(
                range=_layer_range(model.layers[culprit.index]),
                message=f"measured after build: {violation.message}",
                severity=lsp.DiagnosticSeverity.Error,
                source=SOURCE,
                code=f"over-budget-{violation.resource}",
            )
        )
    return found


def lens_text(a: Analysis) -> str | None:
    if a.measured is not None and a.measured.budget is not None:
        m, b = a.measured, a.measured.budget
        return (
            f"flash {kb(m.flash_bytes_estimate or 0)} / {kb(b.flash_bytes)} · RAM "
            f"{kb(m.ram_bytes_estimate or 0)} / {kb(b.ram_bytes)} (measured; arena "
            f"{m.arena_bytes_target or 0:,} B)"
        )
    if a.estimate is None or a.verdict is None:
        return None
    v = a.verdict
    return (
        f"flash {kb(v.flash_bytes_estimate)} / {kb(v.budget['flash_bytes'])} · RAM "
        f"{kb(v.ram_bytes_estimate)} / {kb(v.budget['ram_bytes'])} (estimate; arena "
        f"≈ {kb(a.estimate.arena_bytes_target)})"
    )


def code_lenses(server: TinyForgeServer, uri: str) -> list[lsp.CodeLens]:
    if uri not in server.workspace.text_documents:
        return []  # lenses are for open documents; a closed or deleted file has none
    document = server.workspace.get_text_document(uri)
    ctx = context_for(server.settings.board, uri)
    lenses = []
    for a in analyse(document.source, ctx, doc_path(uri)):
        text = lens_text(a)
        if text:
            lenses.append(
                lsp.CodeLens(
                    range=_model_range(a.model), command=lsp.Command(title=text, command="")
                )
            )
    return lenses


def hover_at(
    text: str, position: lsp.Position, server: TinyForgeServer, uri: str
) -> lsp.Hover | None:
    if doc_path(uri) is None or not uri.endswith(".py"):
        return None
    ctx = context_for(server.settings.board, uri)
    for a in analyse(text, ctx, doc_path(uri)):
        if a.estimate is None:
            continue
        for fig, layer in zip(a.estimate.layers, a.model.layers, strict=True):
            inside = (
                (layer.line, layer.col)
                <= (position.line, position.character)
                <= (
                    layer.end_line,
                    layer.end_col,
                )
            )
            if inside:
                dims = "×".join(str(d) for d in fig.out_shape)
                lines = [
                    f"**{layer.class_name}** → `{fig.op or 'folded away by the converter'}`",
                    f"- output shape: {dims} (int8)",
                    f"- parameters: {fig.params:,} ({fig.param_bytes:,} bytes int8)",
                    f"- activation: {fig.activation_bytes:,} bytes",
                    f"- MACs: {fig.macs:,}",
                ]
                return lsp.Hover(
                    contents=lsp.MarkupContent(
                        kind=lsp.MarkupKind.Markdown, value="\n".join(lines)
                    ),
                    range=_layer_range(layer),
                )
    return None


def _shrink_fix(a: Analysis, ctx: ProjectContext, text: str) -> Shrunk | None:
    """filters/units scaled (not the output layer's) until the same estimator says it fits the
    project's budget: the shrink search `tinyforge repair` runs too (repair/edits.py)."""
    if ctx.board is None or ctx.budget is None:
        return None

    def fits(est: ModelEstimate) -> bool:
        verdict = _verdict(est, ctx)
        return verdict is not None and verdict.fits

    shrunk = shrink(text, a.model, fits)
    return shrunk if shrunk is not None and shrunk.fits else None


def _document_edit(document: Any, after: str) -> lsp.WorkspaceEdit:
    """The document's text replaced by `after`, as every fix reaches the editor."""
    path = doc_path(document.uri) or Path(document.uri)
    edit = FileEdit(path.name, document.source, after)
    return workspace_edit(path.parent, [edit], uris={path: document.uri})


def model_code_actions(
    server: TinyForgeServer, document: Any, params: lsp.CodeActionParams
) -> list[lsp.CodeAction]:
    if not document.uri.endswith(".py"):
        return []
    ctx = context_for(server.settings.board, document.uri)
    actions: list[lsp.CodeAction] = []
    over = [d for d in params.context.diagnostics if str(d.code or "").startswith("over-budget")]
    for a in analyse(document.source, ctx, doc_path(document.uri)):
        if a.verdict is None or a.verdict.fits or a.measured is not None:
            continue
        start, end = (
            a.model.line,
            max(layer.end_line for layer in a.model.layers) if a.model.layers else a.model.line,
        )
        if not (start <= params.range.start.line <= end) and not over:
            continue
        shrunk = _shrink_fix(a, ctx, document.source)
        if shrunk is None:
            continue
        board = ctx.board.id if ctx.board else "the board"
        actions.append(
            lsp.CodeAction(
                title=f"Shrink model to fit {board} (filters/units × {shrunk.factor:.2f})",
                kind=lsp.CodeActionKind.QuickFix,
                diagnostics=over or None,
                is_preferred=True,
                edit=_document_edit(document, shrunk.after),
            )
        )
    actions += _replace_activation_actions(document, ctx, params)
    int8 = _int8_action(document)
    if int8 is not None:
        actions.append(int8)
    return actions


def register(server: TinyForgeServer) -> None:
    @server.feature(lsp.TEXT_DOCUMENT_CODE_LENS)
    def on_code_lens(ls: TinyForgeServer, params: lsp.CodeLensParams) -> list[lsp.CodeLens]:
        if not params.text_document.uri.endswith(".py"):
            return []
        return code_lenses(ls, params.text_document.uri)


# -- fixes beyond shrinking --------------------------------------------------------------------


def _replace_activation_actions(
    document: Any, ctx: ProjectContext, params: lsp.CodeActionParams
) -> list[lsp.CodeAction]:
    """On a layer whose activation TFLM cannot run: the replacement `tinyforge repair` makes."""
    from tinyforge.memory.ops import tflm_supported_ops

    supported = tflm_supported_ops()
    actions = []
    for a in analyse(document.source, ctx, doc_path(document.uri)):
        for layer in a.model.layers:
            if not (layer.line <= params.range.start.line <= layer.end_line):
                continue
            act = layer.config.get("activation")
            if not isinstance(act, str) or "activation" not in layer.literal_ranges:
                continue
            if tflm_runs(act, supported):
                continue
            after, _ = replace_activations(document.source, [layer], supported)
            actions.append(
                lsp.CodeAction(
                    title=f'Replace activation "{act}" with "{replacement_for(act, supported)}" '
                    "(TFLite Micro runs it)",
                    kind=lsp.CodeActionKind.QuickFix,
                    edit=_document_edit(document, after),
                )
            )
    return actions


FLOAT_CONVERTER = re.compile(r"^(?P<indent>\s*)(?P<var>\w+)\s*=\s*.*TFLiteConverter\.from_\w+\(")
# [ \t], not \s: with re.M a \s* ran on over every following blank line, at every line start.
TRAINING_ARRAY = re.compile(
    r"^[ \t]*(?P<name>(x|X)_?train\w*|train_(x|images|data|features))[ \t]*[,=]", re.M
)


def _int8_action(document: Any) -> lsp.CodeAction | None:
    """Where a script converts to float TFLite, offer full-int8 post-training quantization."""
    text = document.source
    lines = split_lines(text)
    for number, line in enumerate(lines):
        match = FLOAT_CONVERTER.match(line)
        if not match:
            continue
        var = match.group("var")
        if re.search(rf"\b{re.escape(var)}\.(representative_dataset|inference_input_type)\b", text):
            return None
        data = TRAINING_ARRAY.search(text)
        if data is None:
            return None  # no training array to calibrate with: nothing honest to insert
        indent = match.group("indent")
        body = [
            "# Full-int8 quantization: a quarter of the flash and arena of float32.",
            "def representative_dataset():",
            f"    for sample in {data.group('name')}[:300]:",
            '        yield [sample[None].astype("float32")]',
            "",
            f"{var}.optimizations = [tf.lite.Optimize.DEFAULT]",
            f"{var}.representative_dataset = representative_dataset",
            f"{var}.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]",
            f"{var}.inference_input_type = tf.int8",
            f"{var}.inference_output_type = tf.int8",
        ]
        end = number + 1
        # The converter call may span lines: insert after its closing parenthesis.
        depth = line.count("(") - line.count(")")
        while depth > 0 and end < len(lines):
            depth += lines[end].count("(") - lines[end].count(")")
            end += 1
        new_text = "".join(f"{indent}{b}\n" if b else "\n" for b in body)
        if end == len(lines) and not lines[-1].endswith(("\n", "\r")):
            new_text = "\n" + new_text  # the call ends the file: start a line of its own
        after = "".join(lines[:end]) + new_text + "".join(lines[end:])
        return lsp.CodeAction(
            title="Use int8 quantization",
            kind=lsp.CodeActionKind.QuickFix,
            edit=_document_edit(document, after),
        )
    return None
