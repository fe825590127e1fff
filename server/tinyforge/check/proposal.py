"""Code an LLM proposes (a model architecture, an edited train.py), checked before it trains.

Nothing here runs the code. It is parsed (AST), its imports are held to a short list, and each
Keras model in it goes through the same static estimator the editor uses (int8 shapes, arena,
flash) and the same budget check as a build, against the TFLM op list TFLM itself reported.
Every problem is one sentence with the figures, ready to be sent back to the LLM:
"RAM 310.0 KB exceeds the 256.0 KB budget …; largest layer: Conv2D #1 output 96×96×32 = …".
"""

from __future__ import annotations

import ast
from dataclasses import dataclass, field
from typing import Any

from tinyforge.boards import get_board
from tinyforge.check import Verdict, check_budget, kb
from tinyforge.memory.keras_layers import CannotInfer, LayerFigures, ModelEstimate, estimate
from tinyforge.memory.keras_source import SourceModel, find_models
from tinyforge.spec import ProjectSpec

# Besides what the project's train.py already imports: the model may use Keras and arithmetic.
DEFAULT_ALLOWED = frozenset({"keras", "numpy", "math", "__future__"})
# Builtins that would run or import code the import check never sees.
FORBIDDEN_CALLS = frozenset({"exec", "eval", "compile", "__import__", "breakpoint"})


@dataclass
class ProposalCheck:
    problems: list[str] = field(default_factory=list)
    estimates: list[ModelEstimate] = field(default_factory=list)
    verdicts: list[Verdict] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def figures(self) -> str:
        """One line per model: the figures the proposal was judged on."""
        lines = []
        for est, verdict in zip(self.estimates, self.verdicts, strict=False):
            lines.append(
                f"{est.params:,} parameters, arena ≈ {kb(est.arena_bytes_target)}, model ≈ "
                f"{kb(est.model_bytes_estimate)}; RAM {kb(verdict.ram_bytes_estimate)} of "
                f"{kb(verdict.budget['ram_bytes'])}, flash {kb(verdict.flash_bytes_estimate)} of "
                f"{kb(verdict.budget['flash_bytes'])}"
            )
        return "\n".join(lines)


def _module_names(tree: ast.AST) -> list[tuple[str, int]]:
    """(dotted module, line) of every import, anywhere in the code (functions included).

    `from tensorflow import keras` yields `tensorflow.keras`: what matters there is the name.
    """
    found: list[tuple[str, int]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(alias.name, node.lineno) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            module = "." * node.level + (node.module or "")
            if module == "tensorflow":
                found += [(f"tensorflow.{alias.name}", node.lineno) for alias in node.names]
            else:
                found.append((module, node.lineno))
    return found


def allowed_modules(base_source: str | None) -> set[str]:
    """The default list plus the top-level modules the project's own train.py imports."""
    allowed = set(DEFAULT_ALLOWED)
    if base_source:
        try:
            tree = ast.parse(base_source)
        except SyntaxError:
            return allowed
        allowed |= {name.split(".")[0] for name, _ in _module_names(tree) if name[:1] != "."}
    return allowed


def _import_problems(tree: ast.AST, allowed: set[str]) -> list[str]:
    problems = []
    shown = ", ".join(sorted((allowed - {"__future__"}) | {"tensorflow.keras"}))
    for name, line in _module_names(tree):
        parts = name.split(".")
        if name.startswith("."):
            problems.append(f"line {line}: relative import '{name}' is not allowed")
        elif parts[0] in allowed:
            continue
        elif parts[0] == "tensorflow" and parts[1:2] == ["keras"]:
            continue  # TensorFlow's Keras is Keras
        elif parts[0] == "tensorflow":
            problems.append(
                f"line {line}: import of '{name}' is not allowed: of TensorFlow, only "
                f"tensorflow.keras (allowed modules: {shown})"
            )
        else:
            problems.append(
                f"line {line}: import of '{name}' is not allowed (allowed modules: {shown})"
            )
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Name)
            and node.func.id in FORBIDDEN_CALLS
        ):
            problems.append(f"line {node.lineno}: {node.func.id}() is not allowed")
    return problems


def spec_hints(spec: ProjectSpec, extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """Names a training script takes from the project (`num_classes`, INPUT_SHAPE)."""
    hints: dict[str, Any] = {"INPUT_SHAPE": tuple(spec.input_shape)}
    n = spec.num_classes or (len(spec.classes) if spec.classes else None)
    n = n or (extra or {}).get("num_classes")
    if n:
        for name in ("num_classes", "n_classes", "NUM_CLASSES", "N_CLASSES", "classes_count"):
            hints[name] = n
    return hints


def describe_layer(fig: LayerFigures) -> str:
    dims = "×".join(str(d) for d in fig.out_shape)
    return f"{fig.class_name} #{fig.index} output {dims} = {kb(fig.activation_bytes)}"


def check_source(
    source: str,
    spec: ProjectSpec,
    *,
    base_source: str | None = None,
    supported_ops: frozenset[str] | None = None,
    hints: dict[str, Any] | None = None,
) -> ProposalCheck:
    """Problems of `source` as the project's training code; empty when it may train.

    `supported_ops` defaults to what the installed TFLM reports; `base_source` is the train.py
    the proposal replaces (its imports are allowed too).
    """
    result = ProposalCheck()
    try:
        tree = ast.parse(source)
    except SyntaxError as exc:
        result.problems.append(f"the code does not parse: line {exc.lineno}: {exc.msg}")
        return result
    result.problems += _import_problems(tree, allowed_modules(base_source))
    try:
        models = find_models(source, spec_hints(spec, hints))
    except (SyntaxError, ValueError, RecursionError) as exc:
        result.problems.append(f"the code cannot be read statically: {exc}")
        return result
    if not models:
        result.problems.append(
            "no Keras model definition found (keras.Sequential([...]) or "
            "keras.Model(inputs, outputs) with constant sizes)"
        )
        return result
    if supported_ops is None:
        from tinyforge.memory.ops import tflm_supported_ops

        supported_ops = tflm_supported_ops()
    board = get_board(spec.board)
    for model in models:
        _check_model(model, spec, board, supported_ops, result)
    return result


def _check_model(
    model: SourceModel,
    spec: ProjectSpec,
    board: Any,
    supported: frozenset[str],
    result: ProposalCheck,
) -> None:
    try:
        est = estimate(model)
    except CannotInfer as exc:
        where = ""
        if 0 <= exc.layer < len(model.layers):
            layer = model.layers[exc.layer]
            where = f" at {layer.class_name} (line {layer.line + 1})"
        result.problems.append(
            f"the model cannot be sized statically{where}: {exc}; use constant sizes so its "
            "memory can be checked before training"
        )
        return
    for fig in est.layers:
        for op in (fig.op, *fig.extra_ops):
            if op and op not in supported:
                name = op.removeprefix("ACTIVATION:")
                result.problems.append(
                    f"{fig.class_name} #{fig.index} (line {model.layers[fig.index].line + 1}) "
                    f"becomes the op {name}, which TFLite Micro cannot run"
                )
    largest = est.largest_activation()
    verdict = check_budget(
        board=board,
        budget=spec.budget,
        model_bytes=est.model_bytes_estimate,
        arena_bytes_target=est.arena_bytes_target,
        ops=est.ops,
    )
    result.estimates.append(est)
    result.verdicts.append(verdict)
    for violation in verdict.violations:
        if violation.resource == "ram":
            culprit = describe_layer(largest) if largest else "none"
            result.problems.append(f"{violation.message}; largest layer: {culprit}")
        else:
            heavy = max(est.layers, key=lambda f: f.param_bytes)
            result.problems.append(
                f"{violation.message}; weights ≈ {kb(est.model_bytes_estimate)}, largest layer: "
                f"{heavy.class_name} #{heavy.index} with {heavy.params:,} parameters"
            )


def replace_function(source: str, name: str, new_function: str) -> str:
    """`source` with its top-level `def name(...)` replaced by `new_function` (whole lines).

    Raises ValueError when either side does not hold exactly that function.
    """
    tree = ast.parse(source)
    target = next((n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == name), None)
    if target is None:
        raise ValueError(f"the project's train.py has no top-level def {name}()")
    try:
        proposed = ast.parse(new_function.strip("\n") + "\n")
    except SyntaxError as exc:
        raise ValueError(
            f"the proposed function does not parse: line {exc.lineno}: {exc.msg}"
        ) from None
    defs = [n for n in proposed.body if isinstance(n, ast.FunctionDef)]
    if len(proposed.body) != 1 or not defs or defs[0].name != name:
        raise ValueError(f"the proposal must be exactly one function, def {name}(...)")
    lines = source.splitlines(keepends=True)
    start = (target.decorator_list[0].lineno if target.decorator_list else target.lineno) - 1
    end = target.end_lineno or target.lineno
    body = new_function.strip("\n") + "\n"
    return "".join(lines[:start]) + body + "".join(lines[end:])
