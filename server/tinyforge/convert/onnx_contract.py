"""What `convert/onnx.py` and its child process (`onnx_worker.py`) say to each other.

The parent writes an `OnnxJob` as job.json in the work folder and runs the worker there; the
worker answers with a `ConversionResult` in result.json. Both are JSON files, so these are
TypedDicts: the same plain dicts, with every key and its type checked on both sides (mypy).
Nothing here imports numpy, TensorFlow or onnx.
"""

from __future__ import annotations

from typing import NotRequired, TypedDict


class OnnxNode(TypedDict):
    name: str
    op_type: str
    inputs: list[str]
    outputs: list[str]


class OnnxJob(TypedDict):
    model_name: str  # the user's file name, for sentences
    original_model: str  # the reference onnxruntime runs (the user's model, or its fixed copy)
    original_input_name: str
    fixed_model: str  # in the work folder: static shapes, what onnx2tf converts
    input_name: str
    input_shape: list[int]
    calibration: str  # .npy files in the work folder
    verify: str
    quantization: str  # "int8" | "float32"
    min_agreement: float
    nodes: list[OnnxNode]


class Disagreement(TypedDict):
    sample: int
    max_abs_diff: float
    element: int
    reference_top1: NotRequired[int]  # outputs with more than one value
    converted_top1: NotRequired[int]


class OutputComparison(TypedDict):
    """A converted model's outputs against ONNX's on the same inputs (report.Comparison)."""

    measure: str  # "top-1", or "within <tolerance>" for one-value outputs
    agreement: float
    agreeing: int
    samples: int
    max_abs_diff: float
    mean_abs_diff: float
    disagreements: list[Disagreement]  # the first five


class TensorDetails(TypedDict):
    name: str
    shape: list[int]
    dtype: str
    scale: float
    zero_point: int


class Divergence(TypedDict, total=False):
    """Where onnx2tf's graph first differs from ONNX's (onnx2tf's own per-node check)."""

    tensor: str | None
    node: str | None
    op_type: str | None
    max_abs_error: float | None
    matching_inputs: list[str]
    checked: int
    error: str  # the check itself failed


# Functional form: "float" is a key, and in a class body it would shadow the type.
ConversionResult = TypedDict(  # noqa: UP013
    "ConversionResult",
    {
        "ok": bool,
        # A failure: its kind and one sentence; an op onnx2tf cannot convert, and its node.
        "kind": str,
        "error": str,
        "op_type": str,
        "node": str | None,
        # The conversion.
        "onnx2tf_seconds": float,
        "float": OutputComparison,
        "int8": OutputComparison,
        "float_model_bytes": int,
        "model_bytes": int,  # the deployed model (int8, or float32)
        "output_shape": list[int],
        "input_layout": str,  # "channels_last" | "onnx"
        "input": TensorDetails,
        "output": TensorDetails,
        "sample_index": int,
        "sample_label": int,
        "divergence": Divergence | None,
        "seconds": float,
        # Added by the parent.
        "log_tail": str,
        "notices": list[str],
        "calibration": str,
        "onnx_ops": dict[str, int],
    },
    total=False,
)
