"""`tinyforge inspect` for .onnx files: ops, what TFLM cannot run, and a rough memory picture.

Exact figures need the model converted to TFLite (onnx2tf, `tinyforge convert`); before that,
the ONNX graph is parsed with the `onnx` package, each node is mapped to the TFLite builtin(s)
the conversion produces, and those are checked against the ops the installed TFLM registers
(asked of TFLM itself, see `ops.py`). Nodes without any TFLite equivalent are listed as such.

With every shape known, the graph is also planned as if converted to int8 (one TFLite op per
node, batch 1): `onnx_estimate` gives its activation floor and arena estimate, marked as
approximate, since the converted graph folds and splits nodes.
"""

from __future__ import annotations

import math
from collections import Counter
from pathlib import Path
from typing import Any

from tinyforge.errors import ModelFileError, StageError
from tinyforge.memory.tflite_model import OpInfo, TensorInfo, TfliteModel
from tinyforge.report import InspectReport

# ONNX op → TFLite builtin(s) it becomes (empty: folded away). Conv is decided per node.
ONNX_TO_TFLITE: dict[str, tuple[str, ...]] = {
    "ConvTranspose": ("TRANSPOSE_CONV",),
    "Gemm": ("FULLY_CONNECTED",),
    "MatMul": ("FULLY_CONNECTED",),
    "Relu": ("RELU",),
    "Clip": ("RELU6",),
    "LeakyRelu": ("LEAKY_RELU",),
    "PRelu": ("PRELU",),
    "Sigmoid": ("LOGISTIC",),
    "Tanh": ("TANH",),
    "Softmax": ("SOFTMAX",),
    "LogSoftmax": ("LOG_SOFTMAX",),
    "HardSwish": ("HARD_SWISH",),
    "HardSigmoid": ("MUL", "ADD", "RELU6"),
    "Elu": ("ELU",),
    "Gelu": ("GELU",),
    "Exp": ("EXP",),
    "Log": ("LOG",),
    "Sqrt": ("SQRT",),
    "Reciprocal": ("DIV",),
    "Pow": ("POW",),
    "Abs": ("ABS",),
    "Neg": ("NEG",),
    "Floor": ("FLOOR",),
    "Ceil": ("CEIL",),
    "Round": ("ROUND",),
    "Sin": ("SIN",),
    "Cos": ("COS",),
    "MaxPool": ("MAX_POOL_2D",),
    "AveragePool": ("AVERAGE_POOL_2D",),
    "GlobalAveragePool": ("MEAN",),
    "GlobalMaxPool": ("REDUCE_MAX",),
    "ReduceMean": ("MEAN",),
    "ReduceMax": ("REDUCE_MAX",),
    "ReduceMin": ("REDUCE_MIN",),
    "ReduceSum": ("SUM",),
    "ReduceProd": ("REDUCE_PROD",),
    "Add": ("ADD",),
    "Sub": ("SUB",),
    "Mul": ("MUL",),
    "Div": ("DIV",),
    "Max": ("MAXIMUM",),
    "Min": ("MINIMUM",),
    "Sum": ("ADD_N",),
    "Concat": ("CONCATENATION",),
    "Reshape": ("RESHAPE",),
    "Flatten": ("RESHAPE",),
    "Squeeze": ("SQUEEZE",),
    "Unsqueeze": ("EXPAND_DIMS",),
    "Transpose": ("TRANSPOSE",),
    "Pad": ("PAD",),
    "Slice": ("STRIDED_SLICE",),
    "Split": ("SPLIT",),
    "Gather": ("GATHER",),
    "Resize": ("RESIZE_BILINEAR",),
    "Upsample": ("RESIZE_NEAREST_NEIGHBOR",),
    "BatchNormalization": ("MUL", "ADD"),
    "InstanceNormalization": ("MEAN", "SQUARED_DIFFERENCE", "RSQRT", "MUL", "ADD"),
    "LayerNormalization": ("MEAN", "SQUARED_DIFFERENCE", "RSQRT", "MUL", "ADD"),
    "Shape": ("SHAPE",),
    "Cast": ("CAST",),
    "ArgMax": ("ARG_MAX",),
    "ArgMin": ("ARG_MIN",),
    "Expand": ("BROADCAST_TO",),
    "Tile": ("TILE",),
    "DepthToSpace": ("DEPTH_TO_SPACE",),
    "SpaceToDepth": ("SPACE_TO_DEPTH",),
    "LSTM": ("UNIDIRECTIONAL_SEQUENCE_LSTM",),
    "Where": ("SELECT_V2",),
    "Equal": ("EQUAL",),
    "Greater": ("GREATER",),
    "Less": ("LESS",),
    "GreaterOrEqual": ("GREATER_EQUAL",),
    "LessOrEqual": ("LESS_EQUAL",),
    "Not": ("LOGICAL_NOT",),
    "And": ("LOGICAL_AND",),
    "Or": ("LOGICAL_OR",),
    "TopK": ("TOPK_V2",),
    "OneHot": ("ONE_HOT",),
    "Range": ("RANGE",),
    "NonMaxSuppression": ("NON_MAX_SUPPRESSION_V5",),
    "LRN": ("LOCAL_RESPONSE_NORMALIZATION",),
    "QuantizeLinear": ("QUANTIZE",),
    "DequantizeLinear": ("DEQUANTIZE",),
    "Identity": (),
    "Dropout": (),
    "Constant": (),
    "ConstantOfShape": (),
}


def _tflite_ops(node: Any, initializers: dict[str, Any]) -> tuple[str, ...] | None:
    """The TFLite builtins a node becomes, or None when there is no equivalent."""
    if node.domain not in ("", "ai.onnx"):
        return None
    if node.op_type == "Conv":
        group = next((a.i for a in node.attribute if a.name == "group"), 1)
        if group == 1:
            return ("CONV_2D",)
        weights = initializers.get(node.input[1]) if len(node.input) > 1 else None
        # group == input channels with one filter per group: depthwise; other groups are
        # split into several convolutions.
        if weights is not None and len(weights.dims) >= 2 and weights.dims[1] == 1:
            return ("DEPTHWISE_CONV_2D",)
        return ("CONV_2D", "SPLIT", "CONCATENATION")
    if node.op_type == "Clip":
        return ("RELU6",)
    return ONNX_TO_TFLITE.get(node.op_type)


def load_onnx(path: Path) -> Any:
    """The ModelProto of an .onnx file, or ModelFileError with one sentence."""
    import onnx
    from google.protobuf.message import DecodeError

    try:
        model = onnx.load(str(path), load_external_data=False)
    except (DecodeError, ValueError, RuntimeError, UnicodeDecodeError, OSError) as exc:
        raise ModelFileError(
            f"'{path}' is not a valid ONNX model: it is truncated or corrupt "
            f"({type(exc).__name__})."
        ) from None
    if not model.graph.node:
        raise ModelFileError(f"'{path}' is not a usable ONNX model: its graph has no nodes.")
    return model


def onnx_report(path: Path) -> InspectReport:
    model = load_onnx(path)
    graph = model.graph
    initializers = {init.name: init for init in graph.initializer}
    onnx_ops = Counter(
        f"{n.domain}:{n.op_type}" if n.domain not in ("", "ai.onnx") else n.op_type
        for n in graph.node
    )
    tflite_ops: Counter[str] = Counter()
    no_equivalent: list[str] = []
    for node in graph.node:
        mapped = _tflite_ops(node, initializers)
        if mapped is None:
            name = f"{node.domain}:{node.op_type}" if node.domain else node.op_type
            if name not in no_equivalent:
                no_equivalent.append(name)
            continue
        tflite_ops.update(mapped)
    report = InspectReport.unmeasured(
        model_bytes=path.stat().st_size,
        onnx_ops=dict(onnx_ops),
        ops=dict(tflite_ops),
        layers=[],
        problems=[],
        notes=[
            "Exact memory figures need the model converted to TFLite (onnx2tf, e.g. "
            "`tinyforge convert`); ops are mapped to the TFLite builtins the conversion makes."
        ],
    )
    try:
        from tinyforge.memory.ops import tflm_supported_ops

        supported = tflm_supported_ops()
    except StageError as exc:
        report.notes.append(f"Could not ask TFLM which ops it runs: {exc}")
    else:
        missing = [op for op in tflite_ops if op not in supported]
        report.unsupported_ops = no_equivalent + missing
        if no_equivalent:
            report.problems.append(
                f"ONNX op(s) {', '.join(no_equivalent)} have no TFLite builtin equivalent."
            )
        if missing:
            users = sorted(
                {
                    n.op_type
                    for n in graph.node
                    if set(_tflite_ops(n, initializers) or ()) & set(missing)
                }
            )
            report.problems.append(
                f"TFLM cannot run {', '.join(missing)} (from ONNX {', '.join(users)})."
            )
    estimate = _rough_estimate(model)
    if estimate is not None:
        report.layers = estimate.pop("layers")
        report.onnx_estimate = estimate
    return report


def _rough_estimate(model: Any) -> dict[str, Any] | None:
    """Plan the ONNX graph as if it were an int8 TFLite graph, one op per node."""
    import onnx
    from onnx import shape_inference

    from tinyforge.memory.estimate import estimate_model

    fixed = onnx.ModelProto()
    fixed.CopyFrom(model)
    for graph_input in fixed.graph.input:
        dims = graph_input.type.tensor_type.shape.dim
        if dims and not dims[0].HasField("dim_value"):
            dims[0].dim_value = 1  # a symbolic batch: TFLM runs batch 1, as converters fix it
    try:
        inferred = shape_inference.infer_shapes(fixed)
    except Exception:  # shape inference is best effort: no estimate then
        return None
    graph = inferred.graph
    initializers = {init.name: init for init in graph.initializer}
    shapes: dict[str, tuple[int, ...]] = {}
    # Declared outputs may lack a shape that inference found: value_info comes last, and wins.
    for info in (*graph.output, *graph.input, *graph.value_info):
        if not info.type.tensor_type.HasField("shape"):
            continue
        dims = []
        for position, dim in enumerate(info.type.tensor_type.shape.dim):
            if dim.HasField("dim_value"):
                dims.append(dim.dim_value)
            elif position == 0:
                dims.append(1)  # a symbolic batch: TFLM runs batch 1
            else:
                return None
        shapes[info.name] = tuple(dims)
    tensors: list[TensorInfo] = []
    index_of: dict[str, int] = {}
    # Weights in TFLite's layouts, which decide the per-channel arrays TFLM allocates:
    # FULLY_CONNECTED [out, in], CONV_2D [out, kh, kw, in], DEPTHWISE_CONV_2D [1, kh, kw, out].
    layouts: dict[str, tuple[int, ...]] = {}
    for node in graph.node:
        mapped = _tflite_ops(node, initializers) or ()
        weight = initializers.get(node.input[1]) if len(node.input) > 1 else None
        if weight is None or not mapped:
            continue
        dims = tuple(weight.dims)
        if mapped[0] == "FULLY_CONNECTED" and len(dims) == 2:
            trans_b = next((a.i for a in node.attribute if a.name == "transB"), 0)
            layouts[node.input[1]] = dims if trans_b else (dims[1], dims[0])
        elif mapped[0] == "CONV_2D" and len(dims) == 4:
            layouts[node.input[1]] = (dims[0], dims[2], dims[3], dims[1])
        elif mapped[0] == "DEPTHWISE_CONV_2D" and len(dims) == 4:
            layouts[node.input[1]] = (1, dims[2], dims[3], dims[0])

    def tensor(name: str) -> int:
        if name in index_of:
            return index_of[name]
        constant = name in initializers
        shape = (
            layouts.get(name) or tuple(initializers[name].dims) if constant else shapes.get(name)
        )
        if shape is None:
            raise KeyError(name)
        index_of[name] = len(tensors)
        tensors.append(
            TensorInfo(
                index=len(tensors),
                name=name,
                shape=shape,
                dtype="int8",
                nbytes=math.prod(shape),
                is_constant=constant,
                is_variable=False,
                scale=[1.0],
                zero_point=[0],
            )
        )
        return index_of[name]

    ops: list[OpInfo] = []
    try:
        inputs = tuple(tensor(i.name) for i in graph.input if i.name not in initializers)
        for node in graph.node:
            node_ops = _tflite_ops(node, {init.name: init for init in graph.initializer})
            if node_ops == ():
                continue
            ins = tuple(tensor(n) if n else -1 for n in node.input)
            outs = tuple(tensor(n) for n in node.output if n)
            name = node_ops[0] if node_ops else node.op_type
            ops.append(OpInfo(index=len(ops), op=name, inputs=ins, outputs=outs))
        outputs = tuple(tensor(o.name) for o in graph.output)
    except KeyError:
        return None
    tflite = TfliteModel(
        tensors=tuple(tensors),
        ops=tuple(ops),
        inputs=inputs,
        outputs=outputs,
        model_bytes=onnx.ModelProto.ByteSize(model),
        subgraph_count=1,
    )
    static = estimate_model(tflite)
    return {
        "basis": "the ONNX graph planned as int8, one TFLite op per node (approximate)",
        "arena_floor_bytes": static.floor_bytes,
        "arena_bytes_estimate": static.arena_bytes,
        "arena_bytes_target_estimate": static.arena_bytes_target,
        "layers": [layer.to_dict() for layer in static.layers],
    }
