"""Child process: ONNX model → float32 and full-int8 TFLite with onnx2tf, verified.

Run as `python -m tinyforge.convert.onnx_worker WORK_DIR` once the parent (`convert/onnx.py`)
has written WORK_DIR/job.json, the fixed-shape model and the input arrays. onnx2tf,
TensorFlow and the LiteRT interpreter are imported here only, never in the CLI or the
language server. The answer is WORK_DIR/result.json: either the conversion's figures or
`{"ok": false, ...}` with one sentence that names the ONNX op or node that failed.

Offline by construction: onnx2tf gets the calibration data explicitly (`-cind`), and for
inputs of 3-channel images (where onnx2tf loads sample images for its own output check even
then) a sample file made from the user's data waits in the working directory, where onnx2tf
looks before it would download one.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import re
import sys
import time
import traceback
from collections import deque
from pathlib import Path
from typing import Any

import numpy as np

from tinyforge.convert.onnx_contract import (
    ConversionResult,
    Disagreement,
    Divergence,
    OnnxJob,
    OutputComparison,
    TensorDetails,
)
from tinyforge.convert.quantization import dequantize, quantize

JOB_FILE = "job.json"
RESULT_FILE = "result.json"
FLOAT_TFLITE = "model_float32.tflite"
INT8_TFLITE = "model_int8.tflite"
# What onnx2tf looks for in the current directory before downloading its own sample images.
ONNX2TF_SAMPLE_FILE = "calibration_image_sample_data_20x128x128x3_float32.npy"
_ANSI = re.compile(r"\x1b\[[0-9;]*m")
_NOT_IMPLEMENTED = re.compile(r"No module named 'onnx2tf\.ops\.(\w+)'")
_VALIDATION = re.compile(
    r"onnx_output_name: (?P<name>\S+) shape: .*?validate_result:\s+(?P<result>Matches|Unmatched|"
    r"Skipped)(?:.*?max_abs_error: (?P<err>[-+0-9.eE]+|nan|inf))?"
)


# --- layouts (numpy only, shared with the parent) ---------------------------------------------


def to_channels_last(x: np.ndarray) -> np.ndarray:
    """(N, C, *spatial) → (N, *spatial, C): the layout onnx2tf gives inputs of rank 3 and more."""
    if x.ndim < 3:
        return x
    return np.moveaxis(x, 1, -1)


def channels_last_shape(shape: list[int] | tuple[int, ...]) -> list[int]:
    """The TFLite shape onnx2tf makes of an ONNX shape (batch first, channels second)."""
    shape = list(shape)
    if len(shape) < 3:
        return shape
    return [shape[0], *shape[2:], shape[1]]


def to_onnx_layout(y: np.ndarray, onnx_shape: list[int]) -> np.ndarray:
    """A TFLite output (batch of samples) back in the ONNX output's layout, for comparison."""
    sample = tuple(onnx_shape[1:])
    if y.shape[1:] == sample:
        return y
    if len(onnx_shape) >= 3 and list(y.shape[1:]) == channels_last_shape(onnx_shape)[1:]:
        return np.moveaxis(y, -1, 1)
    return y.reshape(len(y), *sample)


# --- comparing outputs ------------------------------------------------------------------------


def compare(
    reference: np.ndarray, other: np.ndarray, *, scalar_tolerance: float
) -> OutputComparison:
    """Top-1 agreement (or, for one-value outputs, agreement within a tolerance) and errors."""
    ref = reference.reshape(len(reference), -1).astype(np.float64)
    out = other.reshape(len(other), -1).astype(np.float64)
    diff = np.abs(ref - out)
    if ref.shape[1] > 1:
        ref_top, out_top = ref.argmax(axis=1), out.argmax(axis=1)
        agree = ref_top == out_top
        measure = "top-1"
    else:
        span = float(ref.max() - ref.min()) if len(ref) > 1 else 0.0
        tolerance = scalar_tolerance * max(span, float(np.abs(ref).max()), 1e-6)
        agree = diff[:, 0] <= tolerance
        ref_top = out_top = None
        measure = f"within {tolerance:.3g}"
    disagreements = []
    for index in np.flatnonzero(~agree)[:5]:
        entry: Disagreement = {
            "sample": int(index),
            "max_abs_diff": float(diff[index].max()),
            "element": int(diff[index].argmax()),
        }
        if ref_top is not None and out_top is not None:
            entry["reference_top1"] = int(ref_top[index])
            entry["converted_top1"] = int(out_top[index])
        disagreements.append(entry)
    return {
        "measure": measure,
        "agreement": float(agree.mean()) if len(agree) else 1.0,
        "agreeing": int(agree.sum()),
        "samples": len(agree),
        "max_abs_diff": float(diff.max()) if diff.size else 0.0,
        "mean_abs_diff": float(diff.mean()) if diff.size else 0.0,
        "disagreements": disagreements,
    }


# --- running the models -----------------------------------------------------------------------


def run_onnx(path: Path, input_name: str, inputs: np.ndarray) -> np.ndarray:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.log_severity_level = 3
    try:
        session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    except Exception as exc:  # the reference must run for the verification to mean anything
        raise ConversionFailed(
            "reference_failed",
            f"onnxruntime cannot run the ONNX model to verify the conversion: {_reason(exc, [])}",
        ) from None
    return np.stack([session.run(None, {input_name: x[np.newaxis]})[0][0] for x in inputs])


def run_tflite(
    model_bytes: bytes, inputs: np.ndarray
) -> tuple[np.ndarray, dict[str, Any], dict[str, Any]]:
    """Outputs (dequantized) of N samples in LiteRT's interpreter; input and output details."""
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_content=model_bytes)
    interpreter.allocate_tensors()
    inp = interpreter.get_input_details()[0]
    out = interpreter.get_output_details()[0]
    results = []
    for sample in inputs:
        interpreter.set_tensor(inp["index"], quantize(sample[np.newaxis], inp))
        interpreter.invoke()
        results.append(dequantize(interpreter.get_tensor(out["index"])[0], out))
    return np.stack(results), inp, out


def _details(details: dict[str, Any]) -> TensorDetails:
    scale, zero_point = details["quantization"]
    return {
        "name": details["name"],
        "shape": [int(d) for d in details["shape"]],
        "dtype": np.dtype(details["dtype"]).name,
        "scale": float(scale),
        "zero_point": int(zero_point),
    }


# --- onnx2tf ----------------------------------------------------------------------------------


class _Tee(io.TextIOBase):
    """Passes onnx2tf's prints through (the parent streams them) and keeps the last lines."""

    def __init__(self, stream: Any, keep: int = 400) -> None:
        self._stream = stream
        self.lines: deque[str] = deque(maxlen=keep)
        self._partial = ""

    def write(self, text: str) -> int:
        self._stream.write(text)
        self._partial += text
        *done, self._partial = self._partial.split("\n")
        self.lines.extend(_ANSI.sub("", line) for line in done)
        return len(text)

    def flush(self) -> None:
        self._stream.flush()


class ConversionFailed(Exception):
    def __init__(self, kind: str, message: str, **detail: Any) -> None:
        super().__init__(message)
        self.kind = kind
        self.detail = detail


def _onnx2tf(job: OnnxJob, work: Path, out_dir: Path, **options: Any) -> list[str]:
    """Run onnx2tf.convert with the job's input; returns its printed lines."""
    try:
        import onnx2tf
    except ImportError as exc:
        raise ConversionFailed(
            "missing",
            f"onnx2tf is not installed (missing module {exc.name}): install the converter with "
            "pip install 'tinyforge[onnx]'.",
        ) from None

    tee = _Tee(sys.stdout)
    try:
        with contextlib.redirect_stdout(tee):
            onnx2tf.convert(
                input_onnx_file_path=str(work / job["fixed_model"]),
                output_folder_path=str(out_dir),
                not_use_onnxsim=True,  # onnxsim is not installed (and wants the network)
                verbosity="error",
                **options,
            )
    except SystemExit as exc:
        # onnx2tf calls sys.exit(1) after printing an ERROR line for some input problems.
        raise _failure(job, None, list(tee.lines)) from exc
    except Exception as exc:
        raise _failure(job, exc, list(tee.lines)) from exc
    return list(tee.lines)


def _failure(job: OnnxJob, exc: BaseException | None, lines: list[str]) -> ConversionFailed:
    """One sentence for an onnx2tf failure: the op or node it stopped at, and why."""
    nodes = {n["name"]: n["op_type"] for n in job.get("nodes", [])}
    text = "".join(traceback.format_exception(exc)) if exc is not None else ""
    missing = _NOT_IMPLEMENTED.search(text) or _NOT_IMPLEMENTED.search("\n".join(lines))
    node = getattr(exc, "onnx_op_name", None)
    if node is None:
        for line in reversed(lines):
            if "onnx_op_name:" in line:
                node = line.split("onnx_op_name:", 1)[1].strip()
                break
    if node:
        node = re.sub(r"^wa/", "/", str(node))  # onnx2tf's own prefix for renamed nodes
    if missing:
        op = missing.group(1)
        users = [name for name, op_type in nodes.items() if op_type == op]
        where = f" (node {users[0]})" if users else ""
        return ConversionFailed(
            "unsupported_op",
            f"onnx2tf cannot convert ONNX op {op}{where}: it has no TensorFlow equivalent in "
            "onnx2tf; replace that op in the model before exporting it.",
            op_type=op,
            node=users[0] if users else None,
        )
    reason = _reason(exc, lines)
    if node:
        op_type = nodes.get(node) or nodes.get(node.lstrip("/")) or "?"
        return ConversionFailed(
            "node_failed",
            f"onnx2tf failed converting ONNX node {node} ({op_type}): {reason}",
            op_type=op_type,
            node=node,
        )
    return ConversionFailed("conversion_failed", f"onnx2tf failed: {reason}")


def _reason(exc: BaseException | None, lines: list[str]) -> str:
    if exc is not None:
        message = str(exc).strip().splitlines()
        head = message[0] if message else ""
        # TensorFlow's shape errors put the useful part after the op's long description.
        for line in message:
            if "Dimensions must be equal" in line or "Incompatible shapes" in line:
                head = line.strip()
                break
        text = f"{type(exc).__name__}: {head}" if head else type(exc).__name__
    else:
        errors = [line.split("ERROR:", 1)[1].strip() for line in lines if "ERROR:" in line] or [
            "it stopped without saying why"
        ]
        text = errors[0]
    text = text.rstrip(".")
    return (text[:300] + "…") if len(text) > 300 else text + "."


def locate_divergence(job: OnnxJob, work: Path, sample_nhwc: np.ndarray) -> Divergence | None:
    """First ONNX node whose output differs in onnx2tf's TensorFlow graph (onnx2tf's -cotof)."""
    path = work / "divergence_input.npy"
    np.save(path, sample_nhwc[np.newaxis].astype(np.float32))
    try:
        lines = _onnx2tf(
            job,
            work,
            work / "onnx2tf_check",
            custom_input_op_name_np_data_path=[[job["input_name"], str(path)]],
            check_onnx_tf_outputs_elementwise_close_full=True,
            check_onnx_tf_outputs_elementwise_close_rtol=1e-3,
            check_onnx_tf_outputs_elementwise_close_atol=1e-3,
        )
    except ConversionFailed:
        return None
    producers = {out: n for n in job.get("nodes", []) for out in n["outputs"]}
    results: dict[str, str] = {}
    first: tuple[str, str | None] | None = None
    for line in lines:
        match = _VALIDATION.search(line)
        if not match:
            continue
        results[match.group("name")] = match.group("result")
        if first is None and match.group("result") == "Unmatched":
            first = (match.group("name"), match.group("err"))
    checked = len(results)
    if first is not None:
        name, err = first
        node = producers.get(name) or producers.get(name.lstrip("/"))
        # The node's inputs that still match: the difference starts in this node.
        matching = [i for i in (node["inputs"] if node else []) if results.get(i) == "Matches"]
        return {
            "tensor": name,
            "node": node["name"] if node else None,
            "op_type": node["op_type"] if node else None,
            "max_abs_error": float(err) if err else None,
            "matching_inputs": matching,
        }
    return {"tensor": None, "checked": checked} if checked else None


def fold_constants(path: Path) -> Path:
    """The model with constants folded by onnxruntime's basic graph optimisations.

    onnx2tf expects onnxsim to have folded shape computations (PyTorch exports `repeat` as
    ConstantOfShape → Expand → Tile, which onnx2tf cannot convert unfolded); onnxsim is not
    installed, and onnxruntime's basic level does that folding with standard ONNX ops only.
    Falls back to the model as it is when onnxruntime cannot optimise it.
    """
    import onnxruntime as ort

    target = path.with_name(path.stem + ".folded.onnx")
    options = ort.SessionOptions()
    options.log_severity_level = 3
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_BASIC
    options.optimized_model_filepath = str(target)
    try:
        ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    except Exception as exc:  # an optimisation is a help, not a requirement
        print(f"[tinyforge] constant folding skipped ({type(exc).__name__}: {exc})", flush=True)
        return path
    return target if target.is_file() else path


def write_sample_images(calibration_nhwc: np.ndarray, work: Path) -> None:
    """onnx2tf's 20×128×128×3 sample file, made from the user's own 3-channel inputs."""
    x = calibration_nhwc[:20]
    rows = (np.arange(128) * x.shape[1] // 128).clip(0, x.shape[1] - 1)
    cols = (np.arange(128) * x.shape[2] // 128).clip(0, x.shape[2] - 1)
    resized = x[:, rows][:, :, cols].astype(np.float32)  # nearest neighbour, no extra deps
    reps = -(-20 // len(resized))
    np.save(work / ONNX2TF_SAMPLE_FILE, np.concatenate([resized] * reps)[:20])


# --- the job ----------------------------------------------------------------------------------


def convert(work: Path) -> ConversionResult:
    job: OnnxJob = json.loads((work / JOB_FILE).read_text(encoding="utf-8"))
    started = time.monotonic()
    os.chdir(work)  # onnx2tf looks for its sample file in the current directory
    calibration = np.load(work / job["calibration"])
    verify = np.load(work / job["verify"])
    calibration_nhwc = to_channels_last(calibration).astype(np.float32)
    np.save(work / "calibration_nhwc.npy", calibration_nhwc)
    if calibration_nhwc.ndim == 4 and calibration_nhwc.shape[-1] == 3:
        write_sample_images(calibration_nhwc, work)

    job["fixed_model"] = fold_constants(work / job["fixed_model"]).name
    print(f"[tinyforge] onnx2tf: converting {job['model_name']} …", flush=True)
    # Mean 0 and std 1: the calibration data is already what the model takes.
    rank = calibration_nhwc.ndim
    zeros, ones = np.zeros([1] * rank, np.float32), np.ones([1] * rank, np.float32)
    int8 = job["quantization"] == "int8"
    options: dict[str, Any] = {
        "custom_input_op_name_np_data_path": [
            [job["input_name"], str(work / "calibration_nhwc.npy"), zeros, ones]
        ],
    }
    if int8:
        options.update(
            output_integer_quantized_tflite=True,
            quant_type="per-channel",
            input_quant_dtype="int8",
            output_quant_dtype="int8",
        )
    _onnx2tf(job, work, work / "onnx2tf", **options)
    convert_seconds = time.monotonic() - started
    stem = Path(job["fixed_model"]).stem
    float_path = work / "onnx2tf" / f"{stem}_float32.tflite"
    int8_path = work / "onnx2tf" / f"{stem}_full_integer_quant.tflite"
    if not float_path.is_file() or (int8 and not int8_path.is_file()):
        what = "full-integer" if float_path.is_file() else "float32"
        raise ConversionFailed(
            "conversion_failed",
            f"onnx2tf wrote no {what} TFLite model for {job['model_name']}: TensorFlow Lite's "
            "converter rejected the graph (see the log with -v).",
        )
    float_bytes = float_path.read_bytes()
    int8_bytes = b""
    (work / FLOAT_TFLITE).write_bytes(float_bytes)
    print(f"[tinyforge] float32 TFLite {len(float_bytes):,} bytes", flush=True)
    if int8:
        int8_bytes = int8_path.read_bytes()
        (work / INT8_TFLITE).write_bytes(int8_bytes)
        print(f"[tinyforge] full-int8 TFLite {len(int8_bytes):,} bytes", flush=True)
    print(
        f"[tinyforge] converted in {convert_seconds:.1f} s; verifying on {len(verify)} inputs",
        flush=True,
    )

    # Verification: the user's own ONNX model in onnxruntime is the reference.
    reference = run_onnx(Path(job["original_model"]), job["original_input_name"], verify)
    np.save(work / "onnx_outputs.npy", reference)
    output_shape = [1, *reference.shape[1:]]
    verify_nhwc = to_channels_last(verify).astype(np.float32)
    float_out, float_in, float_details = run_tflite(
        float_bytes, _fit(verify_nhwc, verify, float_bytes)
    )
    float_cmp = compare(reference, to_onnx_layout(float_out, output_shape), scalar_tolerance=1e-3)
    print(
        f"[tinyforge] float32 vs ONNX: {float_cmp['measure']} agreement "
        f"{100 * float_cmp['agreement']:.1f}%, max abs diff {float_cmp['max_abs_diff']:.3g}",
        flush=True,
    )
    result: ConversionResult = {
        "ok": True,
        "onnx2tf_seconds": round(convert_seconds, 2),
        "float": float_cmp,
        "float_model_bytes": len(float_bytes),
        "output_shape": output_shape,
        "input_layout": "channels_last"
        if list(float_in["shape"]) != list(job["input_shape"])
        else "onnx",
    }
    deployed = int8_bytes if int8 else float_bytes
    model_in = _fit(verify_nhwc, verify, deployed)
    if int8:
        device_out, inp, out = run_tflite(int8_bytes, model_in)
        int8_cmp = compare(
            reference, to_onnx_layout(device_out, output_shape), scalar_tolerance=0.05
        )
        print(
            f"[tinyforge] int8 vs ONNX: {int8_cmp['measure']} agreement "
            f"{100 * int8_cmp['agreement']:.1f}%, max abs diff {int8_cmp['max_abs_diff']:.3g}",
            flush=True,
        )
        result["int8"] = int8_cmp
    else:
        device_out, inp, out = float_out, float_in, float_details
    np.save(work / "device_inputs.npy", model_in)
    # The firmware's baked-in sample: the first input whose deployed answer agrees with ONNX,
    # so the serial output shows a known prediction.
    flat_ref = reference.reshape(len(reference), -1)
    flat_out = device_out.reshape(len(device_out), -1)
    agreeing = np.flatnonzero(flat_ref.argmax(axis=1) == flat_out.argmax(axis=1))
    index = int(agreeing[0]) if len(agreeing) else 0
    np.save(work / "sample_input.npy", quantize(model_in[index][np.newaxis], inp)[0])
    result.update(
        {
            "model_bytes": len(deployed),
            "input": _details(inp),
            "output": _details(out),
            "sample_index": index,
            "sample_label": int(flat_ref[index].argmax()),
        }
    )
    threshold = float(job["min_agreement"])
    if float_cmp["agreement"] < threshold and float_cmp["disagreements"]:
        print("[tinyforge] locating where the outputs diverge (onnx2tf's per-node check)…")
        first = float_cmp["disagreements"][0]["sample"]
        try:
            result["divergence"] = locate_divergence(job, work, verify_nhwc[first])
        except Exception as exc:  # the diagnosis is a bonus: its failure must not hide the cause
            result["divergence"] = {"error": f"{type(exc).__name__}: {exc}"}
    result["seconds"] = round(time.monotonic() - started, 2)
    return result


def _fit(nhwc: np.ndarray, onnx_layout: np.ndarray, model_bytes: bytes) -> np.ndarray:
    """The inputs in whichever layout the converted model's input has."""
    from ai_edge_litert.interpreter import Interpreter

    shape = list(Interpreter(model_content=model_bytes).get_input_details()[0]["shape"])
    for candidate in (nhwc, onnx_layout):
        if list(candidate.shape[1:]) == shape[1:]:
            return candidate
    raise ConversionFailed(
        "layout",
        f"The converted model's input has shape {shape}, which matches neither the ONNX "
        f"layout {list(onnx_layout.shape[1:])} nor its channels-last form.",
    )


def main(argv: list[str] | None = None) -> int:
    args = argv if argv is not None else sys.argv[1:]
    if len(args) != 1:
        print("usage: python -m tinyforge.convert.onnx_worker WORK_DIR", file=sys.stderr)
        return 2
    work = Path(args[0]).resolve()
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    result: ConversionResult
    try:
        result = convert(work)
    except ConversionFailed as exc:
        result = {"ok": False, "kind": exc.kind, "error": str(exc)}
        if "op_type" in exc.detail:  # an op onnx2tf cannot convert, and the node using it
            result["op_type"] = exc.detail["op_type"]
            result["node"] = exc.detail.get("node")
    except Exception as exc:  # anything else still ends in one sentence (traceback in the log)
        traceback.print_exc()
        result = {
            "ok": False,
            "kind": "internal",
            "error": f"The conversion failed unexpectedly: {_reason(exc, [])}",
        }
    (work / RESULT_FILE).write_text(json.dumps(result, indent=2), encoding="utf-8")
    return 0 if result.get("ok") else 1


if __name__ == "__main__":
    sys.exit(main())
