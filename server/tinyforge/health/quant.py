"""Quantization checks on int8 models: ours (after conversion) or the user's (`inspect`).

Static checks read scales and zero points per tensor from the .tflite file (memory.tflite_model,
no TensorFlow, no TFLM): invalid or degenerate scales, zero points out of range, scales that
jump by orders of magnitude from one tensor to the next, and the ops TFLM aborts or
misbehaves on with such values. The one seen in the wild: calibration on (near) constant data
gives the logits a scale of ~1e-8, and TFLM's SOFTMAX kernel then aborts the whole process in
Prepare (its input multiplier beta · scale · 2^26 must exceed 1 — QuantizeMultiplierGreaterThanOne
— checked here against the real interpreter: 1.4e-8 aborts, 1.5e-8 runs).

Checks that need data — saturation on the calibration and test inputs, int8 against float
accuracy per class, the number of calibration samples — are computed by `worker_figures` in the
convert worker (which has the data and TensorFlow's interpreter) and judged here from the
figures it writes to convert.json (`check_figures`).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np

from tinyforge.health import Finding, pct
from tinyforge.memory.tflite_model import TensorInfo, TfliteModel, load_tflite

QUANTIZED = {"int8": (-128, 127), "uint8": (0, 255), "int16": (-32768, 32767)}
# Below this an activation's int8 range covers less than ±1.3e-4: calibration saw (almost)
# one value only.
NEAR_ZERO_SCALE = 1e-6
# TFLM's int8 SOFTMAX Prepare: beta * input_scale * 2^(31 - 5) must be > 1, else it aborts.
SOFTMAX_MIN_PRODUCT = 2.0**-26
# Ops whose int8 kernels take their input's scale into a fixed-point multiplier and give
# nonsense (constant outputs) for a degenerate one.
SCALE_SENSITIVE_OPS = {"LOGISTIC", "TANH", "HARD_SWISH", "LOG_SOFTMAX", "EXP"}
# Ops whose output scale is fixed by the op, not calibrated: a jump there is by design.
FIXED_OUTPUT_OPS = {"SOFTMAX", "LOGISTIC", "TANH", "LOG_SOFTMAX"}
# From one tensor to the next an int8 scale changing by more than this factor loses almost all
# resolution on one side.
SCALE_JUMP = 1e4
SATURATION_SHARE = 0.05
MIN_CALIBRATION_SAMPLES = 100
OVERALL_DROP = 0.02
CLASS_DROP = 0.10
CALIBRATION_FIX = (
    "Calibrate on more, and more varied, representative samples (real inputs spanning every "
    "class, not zeros or a constant), then convert again."
)
DROP_FIX = (
    "Calibrate on more, and more varied, representative samples, or train with "
    "quantization-aware training; float32 is the fallback if it fits."
)


# -- static: scales and zero points ---------------------------------------------------------


def check_tflite(path: Path | str) -> list[Finding]:
    """Quantization findings for a .tflite file (raises ModelFileError if it is not one)."""
    path = Path(path)
    data = path.read_bytes()
    return check_model(load_tflite(data), softmax_betas(data))


def check_model(model: TfliteModel, betas: dict[int, float] | None = None) -> list[Finding]:
    """Static findings on a parsed model; `betas` maps SOFTMAX op index → beta (default 1)."""
    betas = betas or {}
    found: list[Finding] = []
    consumers: dict[int, list[int]] = {}
    for op in model.ops:
        for index in op.inputs:
            if index >= 0:
                consumers.setdefault(index, []).append(op.index)
    degenerate: list[TensorInfo] = []
    for tensor in model.tensors:
        bounds = QUANTIZED.get(tensor.dtype)
        if bounds is None or not tensor.scale:
            continue
        bad = [s for s in tensor.scale if not math.isfinite(s) or s <= 0]
        if bad and not (tensor.is_constant and all(s == 0 for s in bad) and len(tensor.scale) > 1):
            found.append(
                Finding(
                    "error",
                    "quant.bad-scale",
                    f"{_tensor(tensor)} has an invalid quantization scale {bad[0]:g}; "
                    "interpreters divide by it.",
                    "Convert the model again with a representative dataset.",
                    where=_tensor(tensor),
                )
            )
            continue
        lo, hi = bounds
        zero_points = tensor.zero_point or [0]
        if tensor.dtype == "int16" and any(z != 0 for z in zero_points):
            found.append(
                Finding(
                    "error",
                    "quant.bad-zero-point",
                    f"{_tensor(tensor)} is int16 with zero point {zero_points[0]}; TFLM's int16 "
                    "kernels require 0 (symmetric quantization).",
                    "Convert with the 16x8 quantization mode of the TFLite converter.",
                    where=_tensor(tensor),
                )
            )
        elif any(not lo <= z <= hi for z in zero_points):
            found.append(
                Finding(
                    "error",
                    "quant.bad-zero-point",
                    f"{_tensor(tensor)} has zero point {zero_points[0]}, outside the "
                    f"{tensor.dtype} range {lo}..{hi}.",
                    "Convert the model again; the file was written wrongly.",
                    where=_tensor(tensor),
                )
            )
        if not tensor.is_constant and min(tensor.scale) < NEAR_ZERO_SCALE:
            # Weights may have tiny per-channel scales (dead channels): harmless, not checked.
            degenerate.append(tensor)

    handled: set[int] = set()
    for op_index, tensor in softmax_aborts(model, betas):
        handled.add(tensor.index)
        found.append(
            Finding(
                "error",
                "quant.softmax-scale",
                f"{_tensor(tensor)}, the input of SOFTMAX (op {op_index}), has a degenerate "
                f"scale {tensor.scale[0]:.2g} from calibration: TFLM aborts the whole program "
                f"while preparing SOFTMAX when beta × scale is below {SOFTMAX_MIN_PRODUCT:.2g}.",
                CALIBRATION_FIX,
                where=f"SOFTMAX (op {op_index})",
            )
        )
    for tensor in degenerate:
        for op_index in consumers.get(tensor.index, []):
            op = model.ops[op_index]
            if tensor.index in handled:
                break
            if op.op in SCALE_SENSITIVE_OPS:
                handled.add(tensor.index)
                found.append(
                    Finding(
                        "warning",
                        "quant.activation-scale",
                        f"{_tensor(tensor)}, the input of {op.op} (op {op_index}), has a "
                        f"degenerate scale {tensor.scale[0]:.2g}: it only covers "
                        f"±{_span(tensor):.2g}, so {op.op} gives the same output for almost "
                        "every input.",
                        CALIBRATION_FIX,
                        where=f"{op.op} (op {op_index})",
                    )
                )
    rest = [t for t in degenerate if t.index not in handled]
    if rest:
        first = rest[0]
        more = f" and {len(rest) - 1} more tensor(s)" if len(rest) > 1 else ""
        verb = "have" if len(rest) > 1 else "has"
        found.append(
            Finding(
                "warning",
                "quant.degenerate-scale",
                f"{_tensor(first)}{more} {verb} a near-zero scale ({first.scale[0]:.2g}, "
                f"covering ±{_span(first):.2g}): calibration saw (almost) a single value "
                "there, and anything larger saturates on the device.",
                CALIBRATION_FIX,
                where=_tensor(first),
            )
        )
    found += _scale_jumps(model)
    return found


def _scale_jumps(model: TfliteModel) -> list[Finding]:
    found: list[Finding] = []
    for op in model.ops:
        if op.op in FIXED_OUTPUT_OPS:
            continue
        outputs = [model.tensors[i] for i in op.outputs if i >= 0]
        inputs = [
            model.tensors[i]
            for i in op.inputs
            if i >= 0 and not model.tensors[i].is_constant and model.tensors[i].dtype in QUANTIZED
        ]
        for out in outputs:
            if out.dtype not in QUANTIZED or len(out.scale) != 1 or out.scale[0] <= 0:
                continue
            for inp in inputs:
                if len(inp.scale) != 1 or inp.scale[0] <= 0:
                    continue
                ratio = out.scale[0] / inp.scale[0]
                if ratio > SCALE_JUMP or ratio < 1 / SCALE_JUMP:
                    found.append(
                        Finding(
                            "warning",
                            "quant.scale-jump",
                            f"The scale jumps by {ratio:.2g}× across {op.op} (op {op.index}), "
                            f"from {_tensor(inp)} ({inp.scale[0]:.2g}) to {_tensor(out)} "
                            f"({out.scale[0]:.2g}): one side keeps almost no resolution.",
                            CALIBRATION_FIX,
                            where=f"{op.op} (op {op.index})",
                        )
                    )
                    break
    return found


def _tensor(tensor: TensorInfo) -> str:
    return f"tensor {tensor.index} '{short_name(tensor.name)}'"


def short_name(name: str) -> str:
    """A converter's tensor name cut to its layer: 'm/dense_1/MatMul;m/…' → 'dense_1/MatMul'."""
    first = name.split(";", 1)[0]
    return "/".join(first.split("/")[-2:])


def _span(tensor: TensorInfo) -> float:
    return 127.5 * tensor.scale[0]


def softmax_betas(data: bytes) -> dict[int, float]:
    """SOFTMAX op index → beta, read from the flatbuffer's SoftmaxOptions (missing ones: 1)."""
    import tflite

    betas: dict[int, float] = {}
    try:
        graph = tflite.Model.GetRootAsModel(data, 0).Subgraphs(0)
        for i in range(graph.OperatorsLength()):
            op = graph.Operators(i)
            if op.BuiltinOptionsType() == tflite.BuiltinOptions.SoftmaxOptions:
                table = op.BuiltinOptions()
                options = tflite.SoftmaxOptions()
                options.Init(table.Bytes, table.Pos)
                betas[i] = float(options.Beta())
    except Exception:  # a model load_tflite accepted but whose options are odd: assume beta 1
        return betas
    return betas


def crash_explanation(path: Path) -> tuple[str, str] | None:
    """(op phrase, cause) for a TFLM crash that the model's quantization explains, else None.

    Used by memory.measure when TFLM aborts its child process: TFLM prints nothing before
    such an abort, so the static findings are the only way to name the op.
    """
    try:
        data = Path(path).read_bytes()
        model = load_tflite(data)
        betas = softmax_betas(data)
        softmax = softmax_aborts(model, betas)
        findings = check_model(model, betas)
    except Exception:  # explaining a crash must never raise a second error
        return None
    if softmax:
        op_index, tensor = softmax[0]
        return (
            f", most likely while preparing op SOFTMAX (node {op_index})",
            f"its input {_tensor(tensor)} has a degenerate scale {tensor.scale[0]:.2g} from "
            f"calibration, below the {SOFTMAX_MIN_PRODUCT:.2g} TFLM's SOFTMAX kernel needs, so "
            "it aborts; calibrate on more varied, representative data and convert again",
        )
    for finding in findings:
        if finding.severity == "error":
            return "", f"{finding.message.rstrip('.')}; {finding.fix.rstrip('.').lower()}"
    return None


def softmax_aborts(
    model: TfliteModel, betas: dict[int, float] | None = None
) -> list[tuple[int, TensorInfo]]:
    """(op index, input tensor) of the int8 SOFTMAX ops TFLM aborts on while preparing."""
    betas = betas or {}
    found = []
    for op in model.ops:
        if op.op != "SOFTMAX" or not op.inputs or op.inputs[0] < 0:
            continue
        tensor = model.tensors[op.inputs[0]]
        if tensor.dtype not in ("int8", "uint8") or len(tensor.scale) != 1:
            continue
        if 0 < betas.get(op.index, 1.0) * tensor.scale[0] <= SOFTMAX_MIN_PRODUCT:
            found.append((op.index, tensor))
    return found


# -- with data: computed in the convert worker, judged here ----------------------------------


def worker_figures(
    tflite_bytes: bytes,
    calibration: np.ndarray,
    x_test: np.ndarray,
    y_test: np.ndarray,
    float_decisions: np.ndarray,
    int8_decisions: np.ndarray,
    num_classes: int,
) -> dict[str, Any]:
    """Figures for convert.json: calibration size, per-class accuracy, saturation per tensor.

    Runs in the convert worker (it imports ai_edge_litert); the inputs are float samples and
    the decisions are class indices for y_test, of the float and of the int8 model. x_test
    are the test samples the calibrated ranges should cover (an anomaly detector's anomalies
    are meant to leave them: the caller leaves those out).
    """
    figures: dict[str, Any] = {"calibration_samples": len(calibration)}
    figures["per_class"] = [
        {
            "class": c,
            "samples": int(np.sum(y_test == c)),
            "float_correct": int(np.sum((y_test == c) & (float_decisions == c))),
            "int8_correct": int(np.sum((y_test == c) & (int8_decisions == c))),
        }
        for c in range(num_classes)
    ]
    figures["saturation"] = {
        "calibration": _saturation(tflite_bytes, calibration),
        "test": _saturation(tflite_bytes, x_test[:500]),
    }
    return figures


def _saturation(tflite_bytes: bytes, x: np.ndarray) -> dict[str, float]:
    """Share of each int8 activation's values clipped at the rails, over samples x.

    The model input is judged on the float values (clipped when quantized); other activations
    by values at the int8 limits, leaving out the lower one where it means 0 (after ReLU) and
    the outputs of ops with a fixed range (softmax probabilities of 1 are not saturation).
    """
    from ai_edge_litert.interpreter import Interpreter

    model = load_tflite(tflite_bytes)
    if not len(x) or len(model.inputs) != 1:
        return {}
    fixed = {o for op in model.ops if op.op in FIXED_OUTPUT_OPS for o in op.outputs}
    watched = [
        t
        for t in model.tensors
        if t.dtype in ("int8", "uint8")
        and not t.is_constant
        and len(t.scale) == 1
        and t.index not in fixed
        and t.index not in model.inputs
    ]
    interp = Interpreter(model_content=tflite_bytes, experimental_preserve_all_tensors=True)
    interp.allocate_tensors()
    detail = interp.get_input_details()[0]
    scale, zero_point = detail["quantization"]
    lo, hi = QUANTIZED.get(np.dtype(detail["dtype"]).name, (-128, 127))
    shares: dict[str, float] = {}
    if scale:
        q = x.astype(np.float64) / scale + zero_point
        shares[_key(model.tensors[model.inputs[0]])] = float(
            np.mean((q < lo - 0.5) | (q > hi + 0.5))
        )
    at_rail = dict.fromkeys((t.index for t in watched), 0)
    total = dict.fromkeys((t.index for t in watched), 0)
    for sample in x:
        quantized = (
            np.clip(np.round(sample[np.newaxis] / scale + zero_point), lo, hi)
            if scale
            else sample[np.newaxis]
        )
        interp.set_tensor(detail["index"], quantized.astype(detail["dtype"]))
        interp.invoke()
        for t in watched:
            values = interp.get_tensor(t.index)
            t_lo, t_hi = QUANTIZED[t.dtype]
            hits = values == t_hi
            if (t.zero_point or [0])[0] != t_lo:
                hits |= values == t_lo
            at_rail[t.index] += int(hits.sum())
            total[t.index] += values.size
    for t in watched:
        if total[t.index]:
            shares[_key(t)] = at_rail[t.index] / total[t.index]
    return shares


def _key(tensor: TensorInfo) -> str:
    return f"{tensor.index}:{tensor.name}"


def check_figures(figures: dict[str, Any], classes: list[str]) -> list[Finding]:
    """Findings from the worker's figures (see worker_figures)."""
    found: list[Finding] = []
    samples = figures.get("calibration_samples")
    if samples is not None and samples < MIN_CALIBRATION_SAMPLES:
        found.append(
            Finding(
                "warning",
                "quant.few-calibration-samples",
                f"int8 calibration used only {samples} samples; ranges taken from fewer than "
                f"{MIN_CALIBRATION_SAMPLES} often miss values the device will see.",
                "Give the training split more samples: conversion calibrates on up to 300.",
                where="calibration",
            )
        )
    for where, label in (("calibration", "calibration"), ("test", "test")):
        shares = (figures.get("saturation") or {}).get(where) or {}
        worst = sorted(shares.items(), key=lambda kv: -kv[1])
        over = [(k, v) for k, v in worst if v > SATURATION_SHARE]
        if over:
            key, share = over[0]
            index, _, name = key.partition(":")
            name = short_name(name)
            more = ""
            if len(over) > 1:
                more = f" ({len(over) - 1} more tensor(s) over {pct(SATURATION_SHARE)})"
            found.append(
                Finding(
                    "warning",
                    f"quant.saturation-{where}",
                    f"{pct(share)} of the values of tensor {index} '{name}' are clipped at the "
                    f"int8 limits on the {label} samples{more}: the calibrated range is too "
                    "narrow for them.",
                    CALIBRATION_FIX,
                    where=f"tensor {index} '{name}'",
                )
            )
    per_class = figures.get("per_class") or []
    total = sum(c["samples"] for c in per_class)
    if total:
        float_acc = sum(c["float_correct"] for c in per_class) / total
        int8_acc = sum(c["int8_correct"] for c in per_class) / total
        suffering = []
        for c in per_class:
            lost = c["float_correct"] - c["int8_correct"]
            if c["samples"] and lost >= 2 and lost / c["samples"] >= CLASS_DROP:
                name = classes[c["class"]] if c["class"] < len(classes) else str(c["class"])
                suffering.append((lost / c["samples"], name, c))
        suffering.sort(key=lambda item: -item[0])
        if float_acc - int8_acc >= OVERALL_DROP or suffering:
            worst_text = "; ".join(
                f"'{name}' {pct(c['float_correct'] / c['samples'])} → "
                f"{pct(c['int8_correct'] / c['samples'])}"
                for _, name, c in suffering[:3]
            )
            found.append(
                Finding(
                    "warning",
                    "quant.accuracy-drop",
                    f"int8 accuracy {pct(int8_acc)} against float {pct(float_acc)} on the test "
                    f"split"
                    + (f"; the classes that suffer most: {worst_text}" if worst_text else "")
                    + ".",
                    DROP_FIX,
                    where=f"class '{suffering[0][1]}'" if suffering else "int8 model",
                )
            )
    return found
