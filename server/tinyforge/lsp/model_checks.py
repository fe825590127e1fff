"""Keras model scripts: static memory diagnostics, a figures lens, hover, and quick fixes.

A static pass over the source (never executed) finds each model, infers its int8 shapes and
estimates arena, RAM and flash against the project's budget, the arena with the editor's
`tinyforge.arenaMargin` added. After a build, the measured figures in report.json replace the
estimates for that project. The figures are computed once per version of a script (its
analysis keeps them, lsp/analyses.py): its diagnostics, lens, hover and fixes share them.

The fixes are the fix engine's (repair/edits.py, as `tinyforge repair` makes them): widths
scaled until the model fits, an activation TFLite Micro lacks replaced; and full-int8
quantization where a script converts to float TFLite.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lsprotocol import types as lsp

from tinyforge.check import Verdict, Violation, check_budget, kb
from tinyforge.lsp.analyses import DocumentAnalysis
from tinyforge.lsp.preview import workspace_edit
from tinyforge.lsp.server import TinyForgeServer
from tinyforge.memory.keras_layers import CannotInfer, LayerFigures, ModelEstimate, estimate
from tinyforge.memory.keras_source import SourceLayer, SourceModel, find_models
from tinyforge.project import ProjectContext
from tinyforge.repair.edits import replace_activations, replacement_for, shrink, tflm_runs
from tinyforge.repair.fixes import FileEdit, split_lines
from tinyforge.report import BuildReport, current_report

SOURCE = "tinyforge"
# The estimator's arena planning grows faster than linearly with the layers (4,000 took 1.5 s,
# 30,000 took 44 s, on every request): past this, a model is not sized as you type. Models
# that fit a microcontroller have far fewer (MobileNetV2's Keras definition: about 155).
MAX_LAYERS = 500


def register(server: TinyForgeServer) -> None:
    server.features.checks.append((lambda name: name.endswith(".py"), model_check))
    server.features.lenses.append(code_lenses)
    server.features.hovers.append(hover_at)
    server.features.code_actions.append(model_code_actions)


@dataclass
class Analysis:
    """One model of a script, and its figures."""

    model: SourceModel
    estimate: ModelEstimate | None
    problem: CannotInfer | None
    verdict: Verdict | None
    measured: BuildReport | None = None
    margin: int = 0  # bytes the editor's setting adds to the arena


def models(server: TinyForgeServer, analysis: DocumentAnalysis) -> list[Analysis]:
    """The script's models and their figures, computed once per version of the script."""
    if not analysis.name.endswith(".py"):
        return []
    settings = analysis.settings
    return analysis.part(
        "models",
        lambda: analyse(
            analysis.text,
            analysis.context(server.projects),
            analysis.path,
            settings.arena_margin,
        ),
    )


def analyse(
    text: str, ctx: ProjectContext, path: Path | None = None, margin: int = 0
) -> list[Analysis]:
    try:
        found = find_models(text, _hints(ctx))
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return []  # half-typed code: nothing to say until it parses again
    results = []
    for model in found:
        if len(model.layers) > MAX_LAYERS:
            results.append(Analysis(model, None, _too_many_layers(model), None))
            continue
        try:
            est = estimate(model)
        except CannotInfer as exc:
            results.append(Analysis(model, None, exc, None))
            continue
        measured = _measured(ctx, path) if len(found) == 1 else None
        results.append(Analysis(model, est, None, _verdict(est, ctx, margin), measured, margin))
    return results


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


def _verdict(est: ModelEstimate, ctx: ProjectContext, margin: int) -> Verdict | None:
    """The estimate, its arena plus `margin`, against the project's budget (None when no
    board is known)."""
    if ctx.board is None or ctx.budget is None:
        return None
    largest = est.largest_activation()
    return check_budget(
        board=ctx.board,
        budget=ctx.budget,
        model_bytes=est.model_bytes_estimate,
        arena_bytes_target=est.arena_bytes_target + margin,
        ops=est.ops,
        largest_tensor=_describe(largest) if largest else None,
    )


def _too_many_layers(model: SourceModel) -> CannotInfer:
    return CannotInfer(
        -1,
        f"it has {len(model.layers):,} layers, over the {MAX_LAYERS} sized as you type "
        "(tinyforge inspect sizes the converted model)",
    )


def _describe(fig: LayerFigures) -> str:
    dims = "×".join(str(d) for d in fig.out_shape)
    return f"{fig.class_name} output {dims} = {kb(fig.activation_bytes)}"


def _arena(a: Analysis) -> str:
    assert a.estimate is not None
    arena = kb(a.estimate.arena_bytes_target)
    return f"{arena} + {kb(a.margin)} margin" if a.margin else arena


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


def _diagnostic(
    rng: lsp.Range, message: str, severity: lsp.DiagnosticSeverity, code: str
) -> lsp.Diagnostic:
    return lsp.Diagnostic(range=rng, message=message, severity=severity, source=SOURCE, code=code)


# -- diagnostics ------------------------------------------------------------------------------


def model_check(server: TinyForgeServer, analysis: DocumentAnalysis) -> list[lsp.Diagnostic]:
    found: list[lsp.Diagnostic] = []
    board = analysis.context(server.projects).board
    for a in models(server, analysis):
        if a.problem is not None:
            found.append(_cannot_size(a))
            continue
        found += _unsupported_ops(a)
        if a.measured is not None:
            found += _measured_diagnostics(a)
        elif a.verdict is not None:
            found += [_over_budget(a, v, board.id if board else "") for v in a.verdict.violations]
    return found


def _cannot_size(a: Analysis) -> lsp.Diagnostic:
    assert a.problem is not None
    layers = a.model.layers
    where = layers[a.problem.layer] if 0 <= a.problem.layer < len(layers) else None
    rng = _layer_range(where) if where else _model_range(a.model)
    message = f"TinyForge cannot size this model statically: {a.problem}."
    return _diagnostic(rng, message, lsp.DiagnosticSeverity.Information, "cannot-infer")


def _unsupported_ops(a: Analysis) -> list[lsp.Diagnostic]:
    from tinyforge.memory.ops import tflm_supported_ops

    assert a.estimate is not None
    supported = tflm_supported_ops()
    found = []
    for fig, layer in zip(a.estimate.layers, a.model.layers, strict=True):
        for op in [fig.op, *fig.extra_ops]:
            if op and op not in supported:
                message = (
                    f"{layer.class_name} becomes the TFLite op {op}, which TFLite Micro cannot run."
                )
                warning = lsp.DiagnosticSeverity.Warning
                found.append(_diagnostic(_layer_range(layer), message, warning, "unsupported-op"))
    return found


def _over_budget(a: Analysis, violation: Violation, board: str) -> lsp.Diagnostic:
    assert a.estimate is not None and a.verdict is not None
    est, budget = a.estimate, a.verdict.budget
    if violation.resource == "ram":
        culprit = max(est.layers, key=lambda f: f.activation_bytes)
        message = (
            f"tensor arena ≈ {_arena(a)} (RAM ≈ {kb(violation.figure)} with runtime) exceeds "
            f"the {board} RAM budget of {kb(budget['ram_bytes'])}; largest: {_describe(culprit)}"
        )
    else:
        culprit = max(est.layers, key=lambda f: f.param_bytes)
        message = (
            f"flash ≈ {kb(violation.figure)} (model ≈ {kb(est.model_bytes_estimate)}) "
            f"exceeds the {board} flash budget of {kb(budget['flash_bytes'])}; largest: "
            f"{culprit.class_name} with {culprit.params:,} parameters"
        )
    rng = _layer_range(a.model.layers[culprit.index])
    code = f"over-budget-{violation.resource}"
    return _diagnostic(rng, message, lsp.DiagnosticSeverity.Error, code)


def _measured_diagnostics(a: Analysis) -> list[lsp.Diagnostic]:
    """After a build, the converted model's exact figures speak instead of the estimate."""
    assert a.measured is not None and a.estimate is not None
    found = []
    for violation in a.measured.violations:
        key = "activation_bytes" if violation.resource == "ram" else "param_bytes"
        culprit = max(a.estimate.layers, key=lambda f: getattr(f, key))
        rng = _layer_range(a.model.layers[culprit.index])
        message = f"measured after build: {violation.message}"
        code = f"over-budget-{violation.resource}"
        found.append(_diagnostic(rng, message, lsp.DiagnosticSeverity.Error, code))
    return found


# -- lens and hover ---------------------------------------------------------------------------


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
        f"≈ {_arena(a)})"
    )


def code_lenses(server: TinyForgeServer, analysis: DocumentAnalysis) -> list[lsp.CodeLens]:
    lenses = []
    for a in models(server, analysis):
        text = lens_text(a)
        if text:
            command = lsp.Command(title=text, command="")
            lenses.append(lsp.CodeLens(range=_model_range(a.model), command=command))
    return lenses


def hover_at(
    server: TinyForgeServer, analysis: DocumentAnalysis, position: lsp.Position
) -> lsp.Hover | None:
    if analysis.path is None:
        return None
    at = (position.line, position.character)
    for a in models(server, analysis):
        if a.estimate is None:
            continue
        for fig, layer in zip(a.estimate.layers, a.model.layers, strict=True):
            if (layer.line, layer.col) <= at <= (layer.end_line, layer.end_col):
                dims = "×".join(str(d) for d in fig.out_shape)
                lines = [
                    f"**{layer.class_name}** → `{fig.op or 'folded away by the converter'}`",
                    f"- output shape: {dims} (int8)",
                    f"- parameters: {fig.params:,} ({fig.param_bytes:,} bytes int8)",
                    f"- activation: {fig.activation_bytes:,} bytes",
                    f"- MACs: {fig.macs:,}",
                ]
                value = "\n".join(lines)
                contents = lsp.MarkupContent(kind=lsp.MarkupKind.Markdown, value=value)
                return lsp.Hover(contents=contents, range=_layer_range(layer))
    return None


# -- quick fixes ------------------------------------------------------------------------------


def model_code_actions(
    server: TinyForgeServer, analysis: DocumentAnalysis, params: lsp.CodeActionParams
) -> list[lsp.CodeAction]:
    if not analysis.name.endswith(".py"):
        return []
    actions = _shrink_actions(server, analysis, params)
    actions += _replace_activation_actions(server, analysis, params)
    int8 = _int8_action(analysis)
    if int8 is not None:
        actions.append(int8)
    return actions


def _document_edit(analysis: DocumentAnalysis, after: str) -> lsp.WorkspaceEdit:
    """The document's text replaced by `after`, as every fix reaches the editor."""
    path = analysis.path or Path(analysis.uri)
    edit = FileEdit(path.name, analysis.text, after)
    return workspace_edit(path.parent, [edit], uris={path: analysis.uri})


def _shrink_actions(
    server: TinyForgeServer, analysis: DocumentAnalysis, params: lsp.CodeActionParams
) -> list[lsp.CodeAction]:
    """filters/units scaled (not the output layer's) until the same estimator says it fits the
    project's budget: the shrink search `tinyforge repair` runs too (repair/edits.py)."""
    ctx = analysis.context(server.projects)
    if ctx.board is None or ctx.budget is None:
        return []
    over = [d for d in params.context.diagnostics if str(d.code or "").startswith("over-budget")]
    actions = []
    for a in models(server, analysis):
        if a.verdict is None or a.verdict.fits or a.measured is not None:
            continue
        last = max((layer.end_line for layer in a.model.layers), default=a.model.line)
        if not (a.model.line <= params.range.start.line <= last) and not over:
            continue
        shrunk = _shrunk(analysis, a, ctx)
        if shrunk is None:
            continue
        factor, after = shrunk
        actions.append(
            lsp.CodeAction(
                title=f"Shrink model to fit {ctx.board.id} (filters/units × {factor:.2f})",
                kind=lsp.CodeActionKind.QuickFix,
                diagnostics=over or None,
                is_preferred=True,
                edit=_document_edit(analysis, after),
            )
        )
    return actions


def _shrunk(
    analysis: DocumentAnalysis, a: Analysis, ctx: ProjectContext
) -> tuple[float, str] | None:
    """The factor and the script's text once `a`'s model fits; searched once per model and
    version of the script (code actions are asked for at every move of the cursor)."""

    def fits(est: ModelEstimate) -> bool:
        verdict = _verdict(est, ctx, a.margin)
        return verdict is not None and verdict.fits

    def search() -> tuple[float, str] | None:
        shrunk = shrink(analysis.text, a.model, fits)
        return (shrunk.factor, shrunk.after) if shrunk is not None and shrunk.fits else None

    return analysis.part(f"shrink {a.model.line}:{a.model.col}", search)


def _replace_activation_actions(
    server: TinyForgeServer, analysis: DocumentAnalysis, params: lsp.CodeActionParams
) -> list[lsp.CodeAction]:
    """On a layer whose activation TFLM cannot run: the replacement `tinyforge repair` makes."""
    from tinyforge.memory.ops import tflm_supported_ops

    supported = tflm_supported_ops()
    actions = []
    for a in models(server, analysis):
        for layer in a.model.layers:
            if not (layer.line <= params.range.start.line <= layer.end_line):
                continue
            act = layer.config.get("activation")
            if not isinstance(act, str) or "activation" not in layer.literal_ranges:
                continue
            if tflm_runs(act, supported):
                continue
            after, _ = replace_activations(analysis.text, [layer], supported)
            new = replacement_for(act, supported)
            title = f'Replace activation "{act}" with "{new}" (TFLite Micro runs it)'
            kind = lsp.CodeActionKind.QuickFix
            actions.append(
                lsp.CodeAction(title=title, kind=kind, edit=_document_edit(analysis, after))
            )
    return actions


FLOAT_CONVERTER = re.compile(r"^(?P<indent>\s*)(?P<var>\w+)\s*=\s*.*TFLiteConverter\.from_\w+\(")
# [ \t], not \s: with re.M a \s* ran on over every following blank line, at every line start.
TRAINING_ARRAY = re.compile(
    r"^[ \t]*(?P<name>(x|X)_?train\w*|train_(x|images|data|features))[ \t]*[,=]", re.M
)


def _int8_action(analysis: DocumentAnalysis) -> lsp.CodeAction | None:
    """Where a script converts to float TFLite, offer full-int8 post-training quantization."""
    text = analysis.text
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
        end = number + 1
        # The converter call may span lines: insert after its closing parenthesis.
        depth = line.count("(") - line.count(")")
        while depth > 0 and end < len(lines):
            depth += lines[end].count("(") - lines[end].count(")")
            end += 1
        new_text = _quantization_lines(match.group("indent"), var, data.group("name"))
        if end == len(lines) and not lines[-1].endswith(("\n", "\r")):
            new_text = "\n" + new_text  # the call ends the file: start a line of its own
        after = "".join(lines[:end]) + new_text + "".join(lines[end:])
        kind = lsp.CodeActionKind.QuickFix
        edit = _document_edit(analysis, after)
        return lsp.CodeAction(title="Use int8 quantization", kind=kind, edit=edit)
    return None


def _quantization_lines(indent: str, var: str, samples: str) -> str:
    body = [
        "# Full-int8 quantization: a quarter of the flash and arena of float32.",
        "def representative_dataset():",
        f"    for sample in {samples}[:300]:",
        '        yield [sample[None].astype("float32")]',
        "",
        f"{var}.optimizations = [tf.lite.Optimize.DEFAULT]",
        f"{var}.representative_dataset = representative_dataset",
        f"{var}.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]",
        f"{var}.inference_input_type = tf.int8",
        f"{var}.inference_output_type = tf.int8",
    ]
    return "".join(f"{indent}{b}\n" if b else "\n" for b in body)
