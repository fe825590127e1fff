"""Find Keras model definitions in Python source without running it (AST only).

The editor calls this on every change of a training script, so it must be fast and must never
execute user code. It understands `Sequential([...])`, `model.add(...)` and the functional API
(`x = layers.Conv2D(...)(x)`, `keras.Model(inputs, outputs)`), resolves literal arguments and
module- or function-level constants, and reports what it could not resolve instead of guessing.
Layers come out as Keras-style `{"class_name", "config"}` descriptions with source positions.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass, field
from typing import Any

# Positional parameters of the layers the estimator knows, in Keras's order.
POSITIONAL = {
    "Dense": ("units", "activation"),
    "Conv1D": ("filters", "kernel_size", "strides", "padding"),
    "Conv2D": ("filters", "kernel_size", "strides", "padding"),
    "SeparableConv1D": ("filters", "kernel_size", "strides", "padding"),
    "SeparableConv2D": ("filters", "kernel_size", "strides", "padding"),
    "DepthwiseConv2D": ("kernel_size", "strides", "padding", "depth_multiplier"),
    "DepthwiseConv1D": ("kernel_size", "strides", "padding", "depth_multiplier"),
    "MaxPooling1D": ("pool_size", "strides", "padding"),
    "MaxPooling2D": ("pool_size", "strides", "padding"),
    "AveragePooling1D": ("pool_size", "strides", "padding"),
    "AveragePooling2D": ("pool_size", "strides", "padding"),
    "MaxPool1D": ("pool_size", "strides", "padding"),
    "MaxPool2D": ("pool_size", "strides", "padding"),
    "AvgPool1D": ("pool_size", "strides", "padding"),
    "AvgPool2D": ("pool_size", "strides", "padding"),
    "Dropout": ("rate",),
    "SpatialDropout1D": ("rate",),
    "SpatialDropout2D": ("rate",),
    "Reshape": ("target_shape",),
    "Activation": ("activation",),
    "ReLU": ("max_value", "negative_slope", "threshold"),
    "LeakyReLU": ("negative_slope",),
    "Softmax": ("axis",),
    "ZeroPadding2D": ("padding",),
    "ZeroPadding1D": ("padding",),
    "UpSampling2D": ("size",),
    "Concatenate": ("axis",),
    "Rescaling": ("scale", "offset"),
    "Resizing": ("height", "width"),
    "Normalization": ("axis",),
    "Embedding": ("input_dim", "output_dim"),
    "LSTM": ("units",),
    "GRU": ("units",),
    "SimpleRNN": ("units",),
    "Permute": ("dims",),
    "RepeatVector": ("n",),
    "Lambda": ("function",),
    "Cropping2D": ("cropping",),
    "GaussianNoise": ("stddev",),
}
# The static pass's budget: the editor runs it on every keystroke, so a file of `X = X * X`
# lines (each squaring the last) or `T = T + T` (each doubling a tuple) must end quickly. Past
# these limits a value is Unknown ("too large to evaluate"), never computed.
MAX_INT_BITS = 256  # sizes, shapes and counts are far smaller
MAX_ITEMS = 10_000  # a tuple or list built by `+`
MAX_STEPS = 200_000  # evaluations per find_models call
# Sources longer than this are not analysed at all (the editor says so once).
MAX_SOURCE_CHARS = 1_000_000
INPUT_CALLS = {"Input", "InputLayer"}
MODEL_CALLS = {"Model", "Functional"}
SEQUENTIAL_CALLS = {"Sequential"}


class Unknown:
    """A value the static pass could not resolve (named so the message can say which)."""

    def __init__(self, text: str) -> None:
        self.text = text

    def __repr__(self) -> str:
        return f"<unknown {self.text}>"


@dataclass
class SourceLayer:
    class_name: str
    config: dict[str, Any]
    inbound: list[int]  # indexes into SourceModel.layers; -1 is the model input
    line: int  # 0-based, like LSP positions
    col: int
    end_line: int
    end_col: int
    var: str | None = None
    # Source range (line, col, end_line, end_col; 0-based) of literal int/str arguments.
    literal_ranges: dict[str, tuple[int, int, int, int]] = field(default_factory=dict)

    @property
    def unresolved(self) -> list[str]:
        return [f"{k}={v.text}" for k, v in self.config.items() if isinstance(v, Unknown)]


@dataclass
class SourceModel:
    kind: str  # "sequential" | "functional"
    line: int
    col: int
    end_line: int
    end_col: int
    var: str | None = None
    input_shape: tuple[Any, ...] | Unknown | None = None
    input_line: int | None = None
    layers: list[SourceLayer] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)


def _call_name(node: ast.AST) -> str | None:
    """`layers.Conv2D` / `keras.layers.Conv2D` / `Conv2D` → "Conv2D"."""
    if isinstance(node, ast.Call):
        node = node.func
    if isinstance(node, ast.Attribute):
        return node.attr
    if isinstance(node, ast.Name):
        return node.id
    return None


class _Budget:
    """Evaluation steps left for one find_models call, shared by every scope."""

    def __init__(self, steps: int = MAX_STEPS) -> None:
        self.steps = steps


def _too_large(value: Any) -> bool:
    if isinstance(value, int):
        return value.bit_length() > MAX_INT_BITS
    if isinstance(value, (tuple, list, str)):
        return len(value) > MAX_ITEMS
    return False


class _Scope:
    """Constants visible to a model definition: module level, then the enclosing function."""

    def __init__(self, hints: dict[str, Any], budget: _Budget | None = None) -> None:
        self.values: dict[str, Any] = dict(hints)
        self.budget = budget or _Budget()

    def collect(self, body: list[ast.stmt]) -> None:
        for stmt in body:
            if isinstance(stmt, ast.Assign) and len(stmt.targets) == 1:
                target = stmt.targets[0]
                if isinstance(target, ast.Name):
                    self._bind(target.id, self.eval(stmt.value))
            elif (
                isinstance(stmt, ast.AnnAssign) and isinstance(stmt.target, ast.Name) and stmt.value
            ):
                self._bind(stmt.target.id, self.eval(stmt.value))

    def _bind(self, name: str, value: Any) -> None:
        if not isinstance(value, Unknown):
            self.values[name] = value
        elif isinstance(value.text, str) and value.text.startswith("(a value too large"):
            # Past the budget the name holds no known value (not the last one that fitted).
            self.values.pop(name, None)

    def eval(self, node: ast.AST) -> Any:
        self.budget.steps -= 1
        if self.budget.steps < 0:
            return Unknown("(the file is too complex to evaluate statically)")
        value = self._eval(node)
        if _too_large(value):
            return Unknown("(a value too large to evaluate statically)")
        return value

    def _eval(self, node: ast.AST) -> Any:
        try:
            return ast.literal_eval(node)
        except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
            pass
        if isinstance(node, ast.Name):
            return self.values.get(node.id, Unknown(node.id))
        if isinstance(node, (ast.Tuple, ast.List)):
            items = [self.eval(e) for e in node.elts]
            bad = [i for i in items if isinstance(i, Unknown)]
            if bad:
                return bad[0]
            return tuple(items) if isinstance(node, ast.Tuple) else list(items)
        if isinstance(node, ast.BinOp) and isinstance(
            node.op, (ast.Add, ast.Sub, ast.Mult, ast.FloorDiv)
        ):
            left, right = self.eval(node.left), self.eval(node.right)
            if isinstance(left, int) and isinstance(right, int):
                if left.bit_length() + right.bit_length() > MAX_INT_BITS:
                    return Unknown("(a value too large to evaluate statically)")
                if isinstance(node.op, ast.Add):
                    return left + right
                if isinstance(node.op, ast.Sub):
                    return left - right
                if isinstance(node.op, ast.Mult):
                    return left * right
                return left // right if right else Unknown(ast.unparse(node))
            if (
                isinstance(left, tuple)
                and isinstance(right, tuple)
                and isinstance(node.op, ast.Add)
            ):
                if len(left) + len(right) > MAX_ITEMS:
                    return Unknown("(a value too large to evaluate statically)")
                return left + right
        if isinstance(node, ast.Call) and _call_name(node) == "len" and node.args:
            value = self.eval(node.args[0])
            if isinstance(value, (list, tuple, str)):
                return len(value)
        if isinstance(node, ast.Attribute):
            # e.g. `layers.Dense(10, activation=tf.nn.relu)`: keep the attribute name.
            return node.attr
        try:
            return Unknown(ast.unparse(node))
        except Exception:  # unparse can fail on odd trees; the name is only for messages
            return Unknown("expression")


def _layer_from_call(call: ast.Call, scope: _Scope) -> SourceLayer | None:
    name = _call_name(call)
    if not name or not name[:1].isupper() or name in INPUT_CALLS | MODEL_CALLS | SEQUENTIAL_CALLS:
        return None
    config: dict[str, Any] = {}
    ranges: dict[str, tuple[int, int, int, int]] = {}
    named = [*zip(POSITIONAL.get(name, ()), call.args, strict=False)]
    named += [(kw.arg, kw.value) for kw in call.keywords if kw.arg]
    for param, arg in named:
        config[param] = scope.eval(arg)
        if isinstance(arg, ast.Constant) and type(arg.value) in (int, str):
            ranges[param] = (
                arg.lineno - 1,
                arg.col_offset,
                (arg.end_lineno or arg.lineno) - 1,
                arg.end_col_offset or arg.col_offset,
            )
    return SourceLayer(
        class_name=name,
        config=config,
        inbound=[],
        line=call.lineno - 1,
        col=call.col_offset,
        end_line=(call.end_lineno or call.lineno) - 1,
        end_col=call.end_col_offset or call.col_offset,
        literal_ranges=ranges,
    )


def _input_shape(call: ast.Call, scope: _Scope) -> tuple[Any, ...] | Unknown | None:
    for kw in call.keywords:
        if kw.arg in ("shape", "input_shape", "batch_shape"):
            value = scope.eval(kw.value)
            if isinstance(value, Unknown):
                return value
            shape = tuple(value) if isinstance(value, (list, tuple)) else (value,)
            return shape[1:] if kw.arg == "batch_shape" else shape
    if call.args:
        value = scope.eval(call.args[0])
        if isinstance(value, Unknown):
            return value
        return tuple(value) if isinstance(value, (list, tuple)) else (value,)
    return None


def _sequential(call: ast.Call, scope: _Scope, var: str | None) -> SourceModel:
    model = SourceModel(
        "sequential",
        call.lineno - 1,
        call.col_offset,
        (call.end_lineno or call.lineno) - 1,
        call.end_col_offset or 0,
        var,
    )
    items: list[ast.expr] = []
    if call.args and isinstance(call.args[0], (ast.List, ast.Tuple)):
        items = list(call.args[0].elts)
    for kw in call.keywords:
        if kw.arg == "layers" and isinstance(kw.value, (ast.List, ast.Tuple)):
            items = list(kw.value.elts)
    for item in items:
        _add_sequential_item(model, item, scope)
    return model


def _add_sequential_item(model: SourceModel, item: ast.expr, scope: _Scope) -> None:
    if not isinstance(item, ast.Call):
        model.problems.append(f"line {item.lineno}: a layer that is not a direct call")
        return
    name = _call_name(item)
    if name in INPUT_CALLS:
        model.input_shape = _input_shape(item, scope)
        model.input_line = item.lineno - 1
        return
    layer = _layer_from_call(item, scope)
    if layer is None:
        model.problems.append(f"line {item.lineno}: {name or 'a call'} is not a known Keras layer")
        return
    if model.input_shape is None and "input_shape" in layer.config:
        shape = layer.config.pop("input_shape")
        model.input_shape = tuple(shape) if isinstance(shape, (list, tuple)) else shape
        model.input_line = layer.line
    layer.inbound = [len(model.layers) - 1]
    model.layers.append(layer)


class _FunctionalTracker:
    """Follows `x = Layer(...)(x)` assignments inside one scope (function or module)."""

    def __init__(self, scope: _Scope) -> None:
        self.scope = scope
        self.tensors: dict[str, tuple[str, int]] = {}  # var → ("input", -1) | ("layer", index)
        self.inputs: dict[str, tuple[Any, int]] = {}
        self.layers: list[SourceLayer] = []
        self.models: list[SourceModel] = []

    def _ref(self, node: ast.AST) -> list[int] | None:
        if isinstance(node, ast.Name) and node.id in self.tensors:
            return [self.tensors[node.id][1]]
        if isinstance(node, (ast.List, ast.Tuple)):
            refs = [self._ref(e) for e in node.elts]
            if all(r is not None for r in refs):
                return [i for r in refs for i in r]  # type: ignore[union-attr]
        return None

    def assign(self, var: str, value: ast.expr) -> None:
        if isinstance(value, ast.Call) and _call_name(value) in INPUT_CALLS:
            self.tensors[var] = ("input", -1)
            self.inputs[var] = (_input_shape(value, self.scope), value.lineno - 1)
            return
        # Layer(...)(tensor)
        if isinstance(value, ast.Call) and isinstance(value.func, ast.Call) and value.args:
            inbound = self._ref(value.args[0])
            layer = _layer_from_call(value.func, self.scope)
            if inbound is not None and layer is not None:
                layer.inbound = inbound
                layer.var = var
                self.layers.append(layer)
                self.tensors[var] = ("layer", len(self.layers) - 1)
                return
        if isinstance(value, ast.Call) and _call_name(value) in MODEL_CALLS:
            self.model(value, var)

    def model(self, call: ast.Call, var: str | None) -> None:
        args = {kw.arg: kw.value for kw in call.keywords if kw.arg}
        inputs = args.get("inputs", call.args[0] if call.args else None)
        outputs = args.get("outputs", call.args[1] if len(call.args) > 1 else None)
        if inputs is None or outputs is None:
            return
        model = SourceModel(
            "functional",
            call.lineno - 1,
            call.col_offset,
            (call.end_lineno or call.lineno) - 1,
            call.end_col_offset or 0,
            var,
        )
        input_names = [inputs.id] if isinstance(inputs, ast.Name) else []
        if isinstance(inputs, (ast.List, ast.Tuple)):
            input_names = [e.id for e in inputs.elts if isinstance(e, ast.Name)]
        if len(input_names) != 1 or input_names[0] not in self.inputs:
            model.problems.append("only models with one keras.Input are analysed")
            self.models.append(model)
            return
        model.input_shape, model.input_line = self.inputs[input_names[0]]
        out_refs = self._ref(outputs)
        if out_refs is None or len(out_refs) != 1:
            model.problems.append("only models with one output tensor are analysed")
            self.models.append(model)
            return
        # Keep the layers the output depends on, in definition order (a valid execution order).
        needed: set[int] = set()
        stack = [out_refs[0]]
        while stack:
            index = stack.pop()
            if index >= 0 and index not in needed:
                needed.add(index)
                stack.extend(self.layers[index].inbound)
        order = sorted(needed)
        remap = {old: new for new, old in enumerate(order)}
        remap[-1] = -1
        for old in order:
            layer = self.layers[old]
            model.layers.append(
                SourceLayer(
                    layer.class_name,
                    dict(layer.config),
                    [remap[i] for i in layer.inbound],
                    layer.line,
                    layer.col,
                    layer.end_line,
                    layer.end_col,
                    layer.var,
                    dict(layer.literal_ranges),
                )
            )
        self.models.append(model)


def _scan_body(body: list[ast.stmt], scope: _Scope, found: list[SourceModel]) -> None:
    scope.collect(body)
    tracker = _FunctionalTracker(scope)
    sequential_by_var: dict[str, SourceModel] = {}
    for stmt in body:
        if isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef)):
            inner = _Scope({}, scope.budget)
            inner.values = dict(scope.values)
            # A parameter's default stands for its value (`def build(num_classes=2)`), unless
            # the project already said otherwise.
            args = stmt.args
            positional = [*args.posonlyargs, *args.args]
            pairs = list(
                zip(positional[len(positional) - len(args.defaults) :], args.defaults, strict=True)
            )
            pairs += [(a, d) for a, d in zip(args.kwonlyargs, args.kw_defaults, strict=True) if d]
            for arg, default in pairs:
                evaluated = inner.eval(default)
                if not isinstance(evaluated, Unknown):
                    inner.values.setdefault(arg.arg, evaluated)
            _scan_body(stmt.body, inner, found)
            continue
        if isinstance(stmt, ast.ClassDef):
            continue
        target = None
        value: ast.expr | None = None
        if (
            isinstance(stmt, ast.Assign)
            and len(stmt.targets) == 1
            and isinstance(stmt.targets[0], ast.Name)
        ):
            target, value = stmt.targets[0].id, stmt.value
        elif isinstance(stmt, (ast.Return, ast.Expr)):
            value = stmt.value
        elif isinstance(stmt, ast.AnnAssign) and isinstance(stmt.target, ast.Name):
            target, value = stmt.target.id, stmt.value
        if value is None:
            continue
        # `model.add(layers.X(...))` on a Sequential defined above.
        if (
            isinstance(value, ast.Call)
            and isinstance(value.func, ast.Attribute)
            and value.func.attr == "add"
            and isinstance(value.func.value, ast.Name)
            and value.func.value.id in sequential_by_var
            and value.args
        ):
            _add_sequential_item(sequential_by_var[value.func.value.id], value.args[0], scope)
            continue
        if isinstance(value, ast.Call) and _call_name(value) in SEQUENTIAL_CALLS:
            model = _sequential(value, scope, target)
            found.append(model)
            if target:
                sequential_by_var[target] = model
            continue
        if target:
            tracker.assign(target, value)
        elif isinstance(value, ast.Call) and _call_name(value) in MODEL_CALLS:
            tracker.model(value, None)
    found.extend(tracker.models)


def find_models(source: str, hints: dict[str, Any] | None = None) -> list[SourceModel]:
    """Every Keras model defined in `source`. Raises SyntaxError for code that does not parse,
    ValueError for a source over MAX_SOURCE_CHARS."""
    if len(source) > MAX_SOURCE_CHARS:
        raise ValueError(
            f"the file has {len(source):,} characters, over the {MAX_SOURCE_CHARS:,} TinyForge "
            "analyses"
        )
    tree = ast.parse(source)
    found: list[SourceModel] = []
    _scan_body(tree.body, _Scope(hints or {}), found)
    found.sort(key=lambda m: (m.line, m.col))
    return found
