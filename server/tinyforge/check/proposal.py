"""Code an LLM proposes (a model architecture, an edited train.py), checked before it trains.

Nothing here runs the code. It is parsed (AST), its imports are held to a short list, what it
changes in train.py is held to an allow-list (a model-building function may hold Keras layer
constructors, arithmetic, literals, loops over literals and train.py's constants), and each
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


# --- What proposed code may contain ------------------------------------------------------------
# A model-building function (build_model, build_models, or a function the proposal adds) is held
# to an allow-list: Keras layer constructors, arithmetic, literals, loops over literals and the
# constants train.py defines. Other code the proposal changes (a repair of main or load_data) is
# held to the import list and may not reach code-running builtins, dunders or the shell.
MODEL_FUNCTIONS = frozenset({"build_model", "build_models"})
KERAS_ROOTS = frozenset({"keras", "layers", "tf"})
# NumPy arithmetic a model function may use (constant weights, sizes).
NUMPY_FUNCTIONS = frozenset({"full", "ones", "zeros", "prod", "sqrt", "float32", "int8", "array"})
SAFE_BUILTINS = frozenset(
    {"range", "len", "int", "float", "bool", "min", "max", "abs", "round", "tuple", "list", "sum"}
)
# Methods a model function may call on its own locals (a layer, a tensor, a normalizer).
LOCAL_METHODS = frozenset({"adapt", "add", "shape", "set_weights", "output", "input", "summary"})
# Names no proposed code may use: they run or reach code without an import.
FORBIDDEN_NAMES = frozenset(
    {
        *FORBIDDEN_CALLS,
        "getattr",
        "setattr",
        "delattr",
        "globals",
        "locals",
        "vars",
        "open_code",
        "__builtins__",
        "__loader__",
        "__spec__",
        "importlib",
    }
)
ALLOWED_DUNDERS = frozenset({"__name__", "__file__"})
# What other changed code may use of os and sys (train.py's own uses).
OS_ATTRIBUTES = frozenset({"environ", "getenv", "path", "makedirs", "fspath", "sep", "cpu_count"})
SYS_ATTRIBUTES = frozenset({"argv", "exit", "stderr", "stdout", "version_info"})
_MODEL_NODES = (
    ast.arguments,
    ast.arg,
    ast.keyword,
    ast.Return,
    ast.Assign,
    ast.AugAssign,
    ast.AnnAssign,
    ast.Expr,
    ast.For,
    ast.If,
    ast.Pass,
    ast.Call,
    ast.Attribute,
    ast.Subscript,
    ast.Slice,
    ast.Name,
    ast.Constant,
    ast.List,
    ast.Tuple,
    ast.Dict,
    ast.Starred,
    ast.BinOp,
    ast.UnaryOp,
    ast.BoolOp,
    ast.Compare,
    ast.IfExp,
    ast.ListComp,
    ast.comprehension,
    ast.expr_context,
    ast.operator,
    ast.unaryop,
    ast.boolop,
    ast.cmpop,
    ast.Import,
    ast.ImportFrom,
    ast.alias,
)


def _is_dunder(name: str) -> bool:
    return name.startswith("__") and name.endswith("__") and len(name) > 4


def _dotted(node: ast.AST) -> list[str] | None:
    """`a.b.c` as ["a", "b", "c"]; None when the chain does not start at a name."""
    parts: list[str] = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if not isinstance(node, ast.Name):
        return None
    return [node.id, *reversed(parts)]


def _is_literal_iterable(node: ast.AST) -> bool:
    """A list or tuple of constants, or range() of constants and names: a loop over literals."""
    if isinstance(node, (ast.List, ast.Tuple)):
        return all(isinstance(e, ast.Constant) for e in node.elts)
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "range":
        return not node.keywords and all(
            isinstance(a, (ast.Constant, ast.Name, ast.BinOp)) for a in node.args
        )
    return False


def _allowed_chain(chain: list[str], local: set[str]) -> bool:
    """A method of a local (`normalizer.adapt`) or NumPy arithmetic (`np.full`)."""
    if chain[0] in local:
        return len(chain) == 2 and chain[1] in LOCAL_METHODS
    return chain[0] in {"np", "numpy"} and len(chain) == 2 and chain[1] in NUMPY_FUNCTIONS


def _module_constants(tree: ast.Module) -> set[str]:
    """The names train.py defines at module level by assignment (INPUT_SHAPE, CLASSES, …)."""
    names: set[str] = set()
    for node in tree.body:
        targets = node.targets if isinstance(node, ast.Assign) else []
        if isinstance(node, ast.AnnAssign):
            targets = [node.target]
        for target in targets:
            for sub in ast.walk(target):
                if isinstance(sub, ast.Name):
                    names.add(sub.id)
    return names


def _model_function_problems(func: ast.FunctionDef, constants: set[str]) -> list[str]:
    """What a model-building function contains beyond the allow-list."""
    problems: list[str] = []

    def bad(node: ast.AST, what: str) -> None:
        problems.append(
            f"line {getattr(node, 'lineno', func.lineno)}: {what} is not allowed in {func.name}()"
        )

    if func.decorator_list:
        bad(func, "a decorator")
    local: set[str] = {
        a.arg for a in (*func.args.posonlyargs, *func.args.args, *func.args.kwonlyargs)
    }
    for extra in (func.args.vararg, func.args.kwarg):
        if extra is not None:
            local.add(extra.arg)
    for node in ast.walk(func):
        if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
            local.add(node.id)
        elif isinstance(node, ast.alias):
            local.add((node.asname or node.name).split(".")[0])
    annotations = {
        id(sub)
        for a in ast.walk(func.args)
        if isinstance(a, ast.arg) and a.annotation is not None
        for sub in ast.walk(a.annotation)
    }
    if func.returns is not None:
        annotations |= {id(sub) for sub in ast.walk(func.returns)}
    known = local | constants | SAFE_BUILTINS | KERAS_ROOTS | {"np", "numpy"}
    for node in ast.walk(func):
        if node is func or id(node) in annotations:
            if isinstance(node, ast.Call):
                bad(node, "a call in an annotation")
            continue
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda | ast.ClassDef):
            bad(node, "a nested function or class")
        elif not isinstance(node, _MODEL_NODES):
            bad(node, f"'{type(node).__name__}'")
        elif isinstance(node, ast.Import | ast.ImportFrom):
            continue  # held to keras and tensorflow.keras below
        elif isinstance(node, ast.Name):
            if _is_dunder(node.id) or node.id in FORBIDDEN_NAMES:
                bad(node, f"the name '{node.id}'")
            elif node.id not in known:
                bad(
                    node, f"the name '{node.id}' (not a Keras name, a local or a train.py constant)"
                )
        elif isinstance(node, ast.Attribute):
            chain = _dotted(node)
            if _is_dunder(node.attr):
                bad(node, f"the attribute '{node.attr}'")
            elif chain is None:
                if node.attr not in LOCAL_METHODS:  # e.g. layers.Dense(4)(x).shape
                    bad(node, f"the attribute '.{node.attr}'")
            elif chain[0] in KERAS_ROOTS:
                if chain[0] == "tf" and chain[1:2] != ["keras"]:
                    bad(node, f"'{'.'.join(chain)}' (of TensorFlow, only tf.keras)")
            elif _allowed_chain(chain, local):
                continue
            elif len(chain) == 2:
                bad(node, f"the attribute access '{'.'.join(chain)}'")
        elif isinstance(node, ast.For | ast.comprehension):
            if not _is_literal_iterable(node.iter):
                bad(node.iter, "a loop over anything but a literal list or range()")
            if isinstance(node, ast.For) and node.orelse:
                bad(node, "for … else")
    for name, line in _module_names(func):
        parts = name.split(".")
        if not (parts[0] == "keras" or parts[:2] == ["tensorflow", "keras"]):
            problems.append(f"line {line}: import of '{name}' is not allowed in {func.name}()")
    return problems


def _general_problems(node: ast.AST) -> list[str]:
    """Changed code outside the model functions: no code-running builtins, dunders or shell."""
    problems: list[str] = []
    for sub in ast.walk(node):
        line = getattr(sub, "lineno", 0)
        if isinstance(sub, ast.Name) and (
            sub.id in FORBIDDEN_NAMES or (_is_dunder(sub.id) and sub.id not in ALLOWED_DUNDERS)
        ):
            problems.append(f"line {line}: the name '{sub.id}' is not allowed")
        elif isinstance(sub, ast.Attribute):
            chain = _dotted(sub)
            if _is_dunder(sub.attr):
                problems.append(f"line {line}: the attribute '{sub.attr}' is not allowed")
            elif chain and len(chain) >= 2 and chain[0] == "os" and chain[1] not in OS_ATTRIBUTES:
                problems.append(f"line {line}: os.{chain[1]} is not allowed")
            elif chain and len(chain) >= 2 and chain[0] == "sys" and chain[1] not in SYS_ATTRIBUTES:
                problems.append(f"line {line}: sys.{chain[1]} is not allowed")
    return problems


def _changed_nodes(tree: ast.Module, base_source: str | None) -> list[ast.stmt]:
    """Top-level statements of `tree` that the project's train.py does not hold as they are."""
    if not base_source:
        return list(tree.body)
    try:
        base = ast.parse(base_source)
    except SyntaxError:
        return list(tree.body)
    known = {ast.dump(node) for node in base.body}
    return [node for node in tree.body if ast.dump(node) not in known]


def _allow_list_problems(tree: ast.Module, base_source: str | None) -> list[str]:
    base_names: set[str] = set()
    if base_source:
        try:
            base_names = {
                n.name for n in ast.parse(base_source).body if isinstance(n, ast.FunctionDef)
            }
        except SyntaxError:
            base_names = set()
    constants = _module_constants(tree)
    problems: list[str] = []
    for node in _changed_nodes(tree, base_source):
        if isinstance(node, ast.FunctionDef) and (
            node.name in MODEL_FUNCTIONS or (base_source and node.name not in base_names)
        ):
            problems += _model_function_problems(node, constants)
        elif isinstance(node, ast.AsyncFunctionDef | ast.ClassDef) or (
            isinstance(node, ast.Expr) and isinstance(node.value, ast.Call)
        ):
            if base_source:
                problems.append(f"line {node.lineno}: new module-level code is not allowed")
            else:
                problems += _general_problems(node)
        else:
            problems += _general_problems(node)
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
    result.problems += _allow_list_problems(tree, base_source)
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
