"""Parse a .tflite flatbuffer with the `tflite` schema bindings (no TensorFlow, no TFLM).

Only subgraph 0 is described in detail: it is the graph TFLM runs from `Invoke()`; other
subgraphs (IF/WHILE bodies) are counted but not listed.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tinyforge.errors import ModelFileError

if TYPE_CHECKING:
    import tflite

_FILE_IDENTIFIER = b"TFL3"


@cache
def _schema() -> Any:
    """The `tflite` schema package, imported on first use: importing it loads hundreds of
    generated modules (~0.3 s), which the language server must not pay at start-up."""
    import tflite

    return tflite


@cache
def _dtype_names() -> dict[int, str]:
    """TensorType enum value → lower-case numpy-style name ('int8', 'float32', ...), taken from
    the schema itself so that new types in a newer `tflite` package need no code change."""
    return {
        value: name.lower()
        for name, value in vars(_schema().TensorType).items()
        if not name.startswith("_") and isinstance(value, int)
    }


# Bytes per element; types without a fixed size (string, resource, variant) are absent, and
# int4 is packed two per byte (handled in _nbytes).
_ITEMSIZE: dict[str, int] = {
    "float32": 4, "float16": 2, "bfloat16": 2, "float64": 8,
    "int8": 1, "uint8": 1, "int16": 2, "uint16": 2, "int32": 4, "uint32": 4,
    "int64": 8, "uint64": 8, "bool": 1, "complex64": 8, "complex128": 16,
}  # fmt: skip


@dataclass(frozen=True)
class TensorInfo:
    index: int
    name: str
    shape: tuple[int, ...]
    dtype: str
    nbytes: int  # 0 when a dimension is unknown (< 0) or the type has no fixed size
    is_constant: bool  # has data in the model's buffers (weights, biases, constant shapes)
    is_variable: bool
    scale: list[float]
    zero_point: list[int]


@dataclass(frozen=True)
class OpInfo:
    index: int
    op: str  # builtin name like 'CONV_2D'; custom ops are 'CUSTOM:<custom_code>'
    inputs: tuple[int, ...]  # tensor indices; -1 marks an omitted optional input
    outputs: tuple[int, ...]


@dataclass
class TfliteModel:
    tensors: tuple[TensorInfo, ...]
    ops: tuple[OpInfo, ...]  # execution order of subgraph 0
    inputs: tuple[int, ...]  # tensor indices of subgraph 0's inputs
    outputs: tuple[int, ...]
    model_bytes: int
    subgraph_count: int
    # Tensor and op counts of the other subgraphs (IF/WHILE bodies): TFLM allocates their
    # structs too, though only subgraph 0 is described here.
    other_subgraph_tensors: tuple[int, ...] = ()
    other_subgraph_ops: tuple[int, ...] = ()
    # Names of the model's metadata entries, e.g. 'OfflineMemoryAllocation' (an offline arena
    # plan that TFLM follows instead of its own planner).
    metadata_names: tuple[str, ...] = ()

    def op_counts(self) -> dict[str, int]:
        """How many times each op occurs in subgraph 0, in first-use order."""
        return dict(Counter(op.op for op in self.ops))

    @property
    def input_tensors(self) -> list[TensorInfo]:
        return [self.tensors[i] for i in self.inputs]

    @property
    def output_tensors(self) -> list[TensorInfo]:
        return [self.tensors[i] for i in self.outputs]

    def largest_activation(self) -> str | None:
        """The largest tensor the arena holds, in words ("CONV_2D output 24×24×8 int8 = 4.5
        KB"): what the budget's over-RAM sentence names as the thing to shrink."""
        produced = {out: op for op in self.ops for out in op.outputs}
        candidates = [t for t in self.tensors if not t.is_constant and t.nbytes > 0]
        if not candidates:
            return None
        largest = max(candidates, key=lambda t: t.nbytes)
        op = produced.get(largest.index)
        where = f"{op.op} output" if op else "input"
        dims = "×".join(str(d) for d in largest.shape if d != 1) or "1"
        return f"{where} {dims} {largest.dtype} = {largest.nbytes / 1024:.1f} KB"


def load_tflite(path_or_bytes: str | Path | bytes | bytearray | memoryview) -> TfliteModel:
    """Parse a .tflite file or its bytes; raise ModelFileError with one sentence if unusable."""
    if isinstance(path_or_bytes, bytes | bytearray | memoryview):
        data = bytes(path_or_bytes)
        label = "The model data"
    else:
        path = Path(path_or_bytes)
        label = f"'{path}'"
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            raise ModelFileError(f"Model file {label} does not exist.") from None
        except IsADirectoryError:
            raise ModelFileError(
                f"Model path {label} is a directory, not a .tflite file."
            ) from None
        except OSError as exc:
            raise ModelFileError(f"Model file {label} cannot be read ({exc.strerror}).") from None

    # The identifier sits right after the 4-byte root offset; checking it first turns text
    # files, ONNX/Keras files and empty files into a clear message instead of a parse error.
    if len(data) < 8 or data[4:8] != _FILE_IDENTIFIER:
        raise ModelFileError(
            f"{label} is not a TensorFlow Lite model (it lacks the 'TFL3' file identifier)."
        )
    try:
        return _parse(data)
    except ModelFileError as exc:
        raise ModelFileError(f"{label} is corrupt: {exc}") from None
    except Exception as exc:  # any failure inside the flatbuffer reader means a broken file
        raise ModelFileError(
            f"{label} is truncated or corrupt: its TFLite flatbuffer could not be parsed "
            f"({type(exc).__name__})."
        ) from None


def _parse(data: bytes) -> TfliteModel:
    model = _schema().Model.GetRootAsModel(data, 0)
    subgraph_count = model.SubgraphsLength()
    if subgraph_count == 0:
        raise ModelFileError("it has no subgraphs.")
    graph = model.Subgraphs(0)
    buffer_count = model.BuffersLength()
    opcode_count = model.OperatorCodesLength()

    constant_buffers = {i for i in range(buffer_count) if _buffer_has_data(model, i, len(data))}

    tensors = []
    tensor_count = graph.TensorsLength()
    for i in range(tensor_count):
        tensor = graph.Tensors(i)
        buffer_index = tensor.Buffer()
        if not 0 <= buffer_index < max(buffer_count, 1):
            raise ModelFileError(f"tensor {i} refers to missing buffer {buffer_index}.")
        dtype = _dtype_names().get(tensor.Type(), f"type{tensor.Type()}")
        shape = tuple(int(d) for d in _vector(tensor.ShapeLength(), tensor.ShapeAsNumpy))
        scale: list[float] = []
        zero_point: list[int] = []
        quant = tensor.Quantization()
        if quant is not None:
            scale = [float(s) for s in _vector(quant.ScaleLength(), quant.ScaleAsNumpy)]
            zero_point = [int(z) for z in _vector(quant.ZeroPointLength(), quant.ZeroPointAsNumpy)]
        name = tensor.Name()
        tensors.append(
            TensorInfo(
                index=i,
                name=name.decode("utf-8", "replace") if name else "",
                shape=shape,
                dtype=dtype,
                nbytes=_nbytes(shape, dtype),
                is_constant=buffer_index in constant_buffers,
                is_variable=bool(tensor.IsVariable()),
                scale=scale,
                zero_point=zero_point,
            )
        )

    opcode_names = [_opcode_name(model.OperatorCodes(j)) for j in range(opcode_count)]
    ops = []
    for i in range(graph.OperatorsLength()):
        operator = graph.Operators(i)
        opcode_index = operator.OpcodeIndex()
        if not 0 <= opcode_index < opcode_count:
            raise ModelFileError(f"op {i} refers to missing operator code {opcode_index}.")
        inputs = _tensor_refs(operator.InputsLength(), operator.InputsAsNumpy, tensor_count, i)
        outputs = _tensor_refs(operator.OutputsLength(), operator.OutputsAsNumpy, tensor_count, i)
        ops.append(OpInfo(index=i, op=opcode_names[opcode_index], inputs=inputs, outputs=outputs))

    graph_inputs = _tensor_refs(graph.InputsLength(), graph.InputsAsNumpy, tensor_count, None)
    graph_outputs = _tensor_refs(graph.OutputsLength(), graph.OutputsAsNumpy, tensor_count, None)
    others = [model.Subgraphs(k) for k in range(1, subgraph_count)]
    metadata_names = []
    for k in range(model.MetadataLength()):
        name = model.Metadata(k).Name()
        metadata_names.append(name.decode("utf-8", "replace") if name else "")
    return TfliteModel(
        tensors=tuple(tensors),
        ops=tuple(ops),
        inputs=graph_inputs,
        outputs=graph_outputs,
        model_bytes=len(data),
        subgraph_count=subgraph_count,
        other_subgraph_tensors=tuple(g.TensorsLength() for g in others),
        other_subgraph_ops=tuple(g.OperatorsLength() for g in others),
        metadata_names=tuple(metadata_names),
    )


def _vector(length: int, as_numpy: object) -> list[Any]:
    # The generated *AsNumpy() accessors return the int 0 for absent vectors; asking for the
    # length first avoids that, and numpy raises if a vector runs past the end of the file.
    if length == 0:
        return []
    return list(as_numpy())  # type: ignore[operator]


def _tensor_refs(
    length: int, as_numpy: object, tensor_count: int, op: int | None
) -> tuple[int, ...]:
    refs = tuple(int(v) for v in _vector(length, as_numpy))
    for ref in refs:
        if not -1 <= ref < tensor_count:
            where = f"op {op}" if op is not None else "the subgraph"
            raise ModelFileError(f"{where} refers to missing tensor {ref}.")
    return refs


def _buffer_has_data(model: tflite.Model, index: int, file_size: int) -> bool:
    buffer = model.Buffers(index)
    length = buffer.DataLength()
    if length:
        # Touch the vector as an array view: numpy raises if it extends past the file's end,
        # which is how a truncated weights section is caught.
        buffer.DataAsNumpy()
        return True
    # Models over 2 GB keep buffer data after the flatbuffer, addressed by offset/size.
    offset, size = buffer.Offset(), buffer.Size()
    if offset > 1 and size > 0:
        if offset + size > file_size:
            raise ModelFileError(f"buffer {index} extends past the end of the file.")
        return True
    return False


def _opcode_name(opcode: tflite.OperatorCode) -> str:
    # Codes above 127 live only in builtin_code; older files only fill the deprecated field.
    code = max(opcode.BuiltinCode(), opcode.DeprecatedBuiltinCode())
    if code == _schema().BuiltinOperator.CUSTOM:
        custom = opcode.CustomCode()
        return f"CUSTOM:{custom.decode('utf-8', 'replace') if custom else ''}"
    from tflite.utils import BUILTIN_OPCODE2NAME

    return str(BUILTIN_OPCODE2NAME.get(code, f"BUILTIN_{code}"))


def _nbytes(shape: tuple[int, ...], dtype: str) -> int:
    if any(d < 0 for d in shape):
        return 0
    count = math.prod(shape)
    if dtype == "int4":
        return (count + 1) // 2
    return count * _ITEMSIZE.get(dtype, 0)


# --- MicroMutableOpResolver method names -------------------------------------------------

# Ops whose Add* method does not follow the CamelCase rule (checked against TFLM's
# tensorflow/lite/micro/micro_mutable_op_resolver.h; TFLM's own generator script gets these
# wrong too).
_BUILTIN_METHOD_EXCEPTIONS: dict[str, str] = {
    "BATCH_MATMUL": "AddBatchMatMul",
    "CUMSUM": "AddCumSum",
    "PADV2": "AddPadV2",
    "UNIDIRECTIONAL_SEQUENCE_LSTM": "AddUnidirectionalSequenceLSTM",
}
# Custom ops that MicroMutableOpResolver registers itself, by their custom_code.
_CUSTOM_METHODS: dict[str, str] = {
    "TFLite_Detection_PostProcess": "AddDetectionPostprocess",
    "CIRCULAR_BUFFER": "AddCircularBuffer",
    "ethos-u": "AddEthosU",
    "TFLM_DECODE": "AddDecode",
    "SignalDelay": "AddDelay",
    "SignalEnergy": "AddEnergy",
    "SignalFftAutoScale": "AddFftAutoScale",
    "SignalFilterBank": "AddFilterBank",
    "SignalFilterBankLog": "AddFilterBankLog",
    "SignalFilterBankSquareRoot": "AddFilterBankSquareRoot",
    "SignalFilterBankSpectralSubtraction": "AddFilterBankSpectralSubtraction",
    "SignalFramer": "AddFramer",
    "SignalIrfft": "AddIrfft",
    "SignalOverlapAdd": "AddOverlapAdd",
    "SignalPCAN": "AddPCAN",
    "SignalRfft": "AddRfft",
    "SignalStacker": "AddStacker",
    "SignalWindow": "AddWindow",
}
_BUILTIN_NAME = re.compile(r"[A-Z][A-Z0-9]*(_[A-Z0-9]+)*")


def tflm_resolver_method(op: str) -> str:
    """The MicroMutableOpResolver method that registers `op` ('CONV_2D' → 'AddConv2D').

    Custom ops are given as 'CUSTOM:<custom_code>'; only those TFLM itself ships have a
    method, any other raises ValueError (it needs `AddCustom(name, registration)` and a kernel
    written for it).
    """
    if op.startswith("CUSTOM:"):
        code = op.removeprefix("CUSTOM:")
        if code in _CUSTOM_METHODS:
            return _CUSTOM_METHODS[code]
        raise ValueError(
            f"Custom op '{code}' has no MicroMutableOpResolver method: it needs "
            f'AddCustom("{code}", <registration>) and a kernel of its own.'
        )
    if op == "CUSTOM" or not _BUILTIN_NAME.fullmatch(op):
        raise ValueError(f"'{op}' is not a TFLite builtin op name like 'CONV_2D'.")
    if op in _BUILTIN_METHOD_EXCEPTIONS:
        return _BUILTIN_METHOD_EXCEPTIONS[op]
    # The general rule (as in TFLM's generate_micro_mutable_op_resolver_from_model.py): each
    # '_'-separated word is capitalised, words starting with a digit are upper-cased ('2D').
    words = []
    for word in op.split("_"):
        words.append(word.capitalize() if word[0].isalpha() else word.upper())
    return "Add" + "".join(words)
