"""The emit stage: the firmware for a converted, measured model (C array, test sample, main.cpp).

Shared by both front ends of the pipeline: a model TinyForge trained (pipeline.py, from the
artifacts its training and conversion left) and a model the user brought (convert/onnx.py).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from tinyforge.boards import Board
from tinyforge.convert import c_array
from tinyforge.generate import (
    ARTIFACTS_DIR,
    CONVERT_FILE,
    MAIN_CPP,
    METRICS_FILE,
    MODEL_DATA_CC,
    MODEL_DATA_H,
    MODEL_TFLITE,
    SAMPLE_INPUT,
    render,
    render_main_cpp,
)
from tinyforge.generate.files import WriteResult, write_generated
from tinyforge.memory.tflite_model import TfliteModel, tflm_resolver_method
from tinyforge.spec import ProjectSpec


def emit_firmware(
    project_dir: Path,
    *,
    board: Board,
    model: TfliteModel,
    quantization: str,
    sample: np.ndarray,
    sample_label_index: int,
    labels: list[str],
    arena_bytes: int,
    arena_target_bytes: int,
    threshold: float | None = None,
) -> WriteResult:
    """The C array of project_dir/model.tflite with a test sample, and the TFLM main.cpp."""
    tflite_bytes = (project_dir / MODEL_TFLITE).read_bytes()
    label_index = sample_label_index
    resolver = sorted({tflm_resolver_method(op.op) for op in model.ops})
    common = {"source": MODEL_TFLITE, "model_bytes": len(tflite_bytes)}
    files = {
        MODEL_DATA_H: render(
            "model_data.h.j2",
            **common,
            quantization=quantization,
            sample_len=int(sample.size),
            sample_label_index=label_index,
            sample_label=labels[label_index] if label_index < len(labels) else str(label_index),
            sample_ctype=c_array.c_type(sample.dtype),
        ),
        MODEL_DATA_CC: render(
            "model_data.cc.j2",
            **common,
            model_array=c_array.hex_bytes(tflite_bytes),
            sample_ctype=c_array.c_type(sample.dtype),
            sample_array=c_array.numbers(sample.reshape(-1).tolist()),
        ),
        MAIN_CPP: render_main_cpp(
            board=board,
            model_bytes=len(tflite_bytes),
            quantization=quantization,
            labels=labels,
            arena_bytes=arena_bytes,
            arena_target_bytes=arena_target_bytes,
            resolver_methods=resolver,
            threshold=threshold,
        ),
    }
    return write_generated(project_dir, files)


def emit_trained_firmware(
    project_dir: Path,
    spec: ProjectSpec,
    board: Board,
    model: TfliteModel,
    *,
    arena_bytes: int,
    arena_target_bytes: int,
    classes: list[str],
) -> WriteResult:
    """`emit_firmware` for a model TinyForge trained: the test sample, its label and an anomaly
    detector's threshold come from what the training and the conversion left in ARTIFACTS_DIR."""
    artifacts = project_dir / ARTIFACTS_DIR
    converted = json.loads((artifacts / CONVERT_FILE).read_text("utf-8"))
    metrics = json.loads((artifacts / METRICS_FILE).read_text("utf-8"))
    return emit_firmware(
        project_dir,
        board=board,
        model=model,
        quantization=spec.quantization.value,
        sample=np.load(artifacts / SAMPLE_INPUT),
        sample_label_index=int(converted["sample_label"]),
        labels=classes or [str(i) for i in range(spec.num_classes or 2)],
        arena_bytes=arena_bytes,
        arena_target_bytes=arena_target_bytes,
        threshold=metrics.get("threshold"),
    )
