"""Static arena estimate vs the real TFLM interpreter, on models built here.

The static plan must reproduce TFLM's head byte for byte and its tail exactly for calibrated
ops; the smallest arena it predicts must never be below the measured one (an under-estimate
crashes a device) and within 2% above it. TFLM runs in child processes only.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tinyforge.memory.estimate import estimate_model
from tinyforge.memory.keras_estimate import KerasEstimateError, estimate_from_description
from tinyforge.memory.measure import ArenaMeasurement, measure_arena
from tinyforge.memory.plan import PlannedBuffer, greedy_offsets, plan_head
from tinyforge.memory.target import target_arena_bytes
from tinyforge.memory.tflite_model import OpInfo, TensorInfo, TfliteModel, load_tflite


def _convert(tf: Any, model: Any, quant: str, path: Path) -> Path:
    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    if quant == "int8":
        shape = tuple(model.inputs[0].shape[1:])
        rng = np.random.default_rng(0)

        def representative() -> Iterator[list[np.ndarray]]:
            for _ in range(8):
                yield [rng.random((1, *shape), dtype=np.float32)]

        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.representative_dataset = representative
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        converter.inference_input_type = tf.int8
        converter.inference_output_type = tf.int8
    path.write_bytes(converter.convert())
    return path


@pytest.fixture(scope="module")
def zoo(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[Path, dict[str, Any]]]:
    """name → (.tflite path, Keras definition as keras_estimate's description)."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import keras
    import tensorflow as tf

    from tinyforge.memory._keras_child import describe

    keras.utils.set_random_seed(0)
    L = keras.layers
    out = tmp_path_factory.mktemp("zoo")
    x = keras.Input((12, 12, 4))
    y = L.Conv2D(4, 3, padding="same", activation="relu")(x)
    y = L.ReLU()(L.Add()([x, y]))
    residual = keras.Model(x, L.Dense(3)(L.GlobalAveragePooling2D()(y)))
    models = {
        "dense_int8": (
            keras.Sequential([keras.Input((20,)), L.Dense(32, "relu"), L.Dense(4, "softmax")]),
            "int8",
        ),
        "cnn_int8": (
            keras.Sequential(
                [
                    keras.Input((20, 20, 1)),
                    L.Conv2D(8, 3, activation="relu"),
                    L.MaxPooling2D(),
                    L.DepthwiseConv2D(3, padding="same", activation="relu"),
                    L.Conv2D(16, 1, strides=2),
                    L.Flatten(),
                    L.Dense(5),
                ]
            ),
            "int8",
        ),
        "residual_int8": (residual, "int8"),
        "conv1d_float32": (
            keras.Sequential(
                [
                    keras.Input((40, 2)),
                    L.Conv1D(8, 5, activation="relu"),
                    L.GlobalAveragePooling1D(),
                    L.Dense(3),
                ]
            ),
            "float32",
        ),
        # Normalization as TinyForge's sensor models use it (per feature: SUB, MUL) and as its
        # keyword-spotting models do (one scalar: the MUL folds into the convolution).
        "normalized_dense_int8": (
            keras.Sequential(
                [
                    keras.Input((6,)),
                    L.Normalization(axis=-1, mean=[1.0] * 6, variance=[4.0] * 6),
                    L.Dense(8, "relu"),
                    L.Dense(3, "softmax"),
                ]
            ),
            "int8",
        ),
        "normalized_cnn_int8": (
            keras.Sequential(
                [
                    keras.Input((10, 8, 1)),
                    L.Normalization(axis=None, mean=2.0, variance=9.0),
                    L.Conv2D(4, 3, padding="same", activation="relu"),
                    L.GlobalAveragePooling2D(),
                    L.Dense(2),
                ]
            ),
            "int8",
        ),
        # MEAN int8 and TRANSPOSE_CONV int8 ask for scratch buffers in the head.
        "upconv_int8": (
            keras.Sequential(
                [
                    keras.Input((6, 6, 4)),
                    L.Conv2DTranspose(8, 3, strides=2, padding="same"),
                    L.GlobalAveragePooling2D(),
                ]
            ),
            "int8",
        ),
    }
    rng = np.random.default_rng(1)
    result = {}
    for name, (model, quant) in models.items():
        # Non-zero weights, as after training (the converter drops all-zero biases).
        for variable in model.trainable_weights:  # not a Normalization's mean and variance
            variable.assign(rng.normal(0, 0.1, tuple(variable.shape)).astype("float32"))
        path = _convert(tf, model, quant, out / f"{name}.tflite")
        result[name] = (path, describe(model) | {"quantization": quant})
    return result


@pytest.fixture(scope="module")
def measured(zoo: dict[str, tuple[Path, dict[str, Any]]]) -> dict[str, ArenaMeasurement]:
    return {name: measure_arena(path) for name, (path, _) in zoo.items()}


@pytest.mark.slow
def test_static_plan_matches_tflm(
    zoo: dict[str, tuple[Path, dict[str, Any]]], measured: dict[str, ArenaMeasurement]
) -> None:
    for name, (path, _) in zoo.items():
        real = measured[name]
        static = estimate_model(load_tflite(path))
        assert not static.problems and not static.host.approximate_ops, name
        # The head is TFLM's greedy plan, byte for byte; the tail replays its allocations.
        assert static.head.head_bytes == real.head_bytes, name
        assert static.host.tail_bytes == real.tail_bytes, name
        ratio = static.arena_bytes / real.arena_bytes
        assert 1.0 <= ratio <= 1.02, (name, static.arena_bytes, real.arena_bytes)
        assert static.floor_bytes <= static.head.head_bytes <= real.arena_bytes


@pytest.mark.slow
def test_scratch_buffers_are_planned(zoo: dict[str, tuple[Path, dict[str, Any]]]) -> None:
    static = estimate_model(load_tflite(zoo["upconv_int8"][0]))
    scratch = [b for b in static.head.buffers if b.tensor is None]
    labels = sorted(b.label for b in scratch)
    assert "TRANSPOSE_CONV scratch" in labels and "MEAN scratch" in labels
    # TRANSPOSE_CONV int8 accumulates in int32: 4 bytes per output element.
    tconv = next(b for b in scratch if b.label == "TRANSPOSE_CONV scratch")
    assert tconv.nbytes == 4 * 12 * 12 * 8


@pytest.mark.slow
def test_target_figure_is_below_host_and_above_static_target(
    zoo: dict[str, tuple[Path, dict[str, Any]]], measured: dict[str, ArenaMeasurement]
) -> None:
    for name, (path, _) in zoo.items():
        model = load_tflite(path)
        static = estimate_model(model)
        target = target_arena_bytes(measured[name], model)
        assert static.target.arena_bytes <= target < measured[name].arena_bytes, name
        # 32-bit structs: EvalTensor 12 and NodeAndRegistration 32 bytes instead of 24 and 64.
        parts_host, parts_target = static.host.tail_parts, static.target.tail_parts
        assert parts_target["TfLiteEvalTensor"] == parts_host["TfLiteEvalTensor"] // 2
        assert parts_target["NodeAndRegistration"] == parts_host["NodeAndRegistration"] // 2


@pytest.mark.slow
def test_keras_definition_estimate_within_ten_percent(
    zoo: dict[str, tuple[Path, dict[str, Any]]], measured: dict[str, ArenaMeasurement]
) -> None:
    for name, (path, description) in zoo.items():
        definition = estimate_from_description(description)
        real = measured[name].arena_bytes
        assert 0.9 <= definition.arena_bytes_estimate / real <= 1.1, (name, definition, real)
        converted = load_tflite(path)
        assert definition.model.op_counts() == converted.op_counts(), name


def test_keras_description_problems_name_the_layer() -> None:
    base = {"input_shape": [16, 16, 3], "layers": []}
    ok = estimate_from_description(
        base | {"layers": [{"class_name": "Conv2D", "config": {"filters": 4, "kernel_size": 3}}]}
    )
    assert ok.model.op_counts() == {"CONV_2D": 1}
    assert ok.model.tensors[ok.model.outputs[0]].shape == (1, 14, 14, 4)
    with pytest.raises(KerasEstimateError) as info:
        estimate_from_description(
            base
            | {
                "layers": [
                    {"class_name": "Conv2D", "config": {"filters": 4}},
                    {"class_name": "MagicLayer", "config": {}},
                ]
            }
        )
    assert info.value.layer == 1 and "MagicLayer" in str(info.value)
    dense = [{"class_name": "Dense", "config": {"units": 2}}]
    with pytest.raises(KerasEstimateError, match="free"):
        estimate_from_description({"input_shape": [None, 3], "layers": dense})
    with pytest.raises(KerasEstimateError, match="no layers"):
        estimate_from_description({"input_shape": [3], "layers": []})
    with pytest.raises(KerasEstimateError, match="filters"):
        estimate_from_description(
            base | {"layers": [{"class_name": "Conv2D", "config": {"filters": "n"}}]}
        )


@pytest.mark.slow
def test_estimate_from_source_code_before_conversion(
    zoo: dict[str, tuple[Path, dict[str, Any]]], measured: dict[str, ArenaMeasurement]
) -> None:
    """The editor's path: the model read from source (AST, not run), then estimated."""
    from tinyforge.memory.keras_source import find_models

    source = """
import keras
from keras import layers
HIDDEN = 32
model = keras.Sequential([
    keras.Input(shape=(20,)),
    layers.Dense(HIDDEN, activation="relu"),
    layers.Dense(4, activation="softmax"),
])
"""
    (definition,) = find_models(source)
    estimate = estimate_from_description(definition)
    path, _ = zoo["dense_int8"]
    assert estimate.model.op_counts() == load_tflite(path).op_counts()
    ratio = estimate.arena_bytes_estimate / measured["dense_int8"].arena_bytes
    assert 0.9 <= ratio <= 1.1


def _graph(sizes: list[int], edges: list[tuple[int, ...]]) -> TfliteModel:
    """A chain-ish model: tensor 0 is the input; op k reads edges[k] and writes tensor k+1."""
    tensors = tuple(
        TensorInfo(i, f"t{i}", (size,), "int8", size, False, False, [1.0], [0])
        for i, size in enumerate(sizes)
    )
    ops = tuple(OpInfo(k, "ADD", ins, (k + 1,)) for k, ins in enumerate(edges))
    return TfliteModel(tensors, ops, (0,), (len(sizes) - 1,), 0, 1)


@settings(max_examples=150, deadline=None)
@given(st.data())
def test_greedy_plan_never_overlaps_live_buffers(data: st.DataObject) -> None:
    count = data.draw(st.integers(2, 14))
    sizes = data.draw(st.lists(st.integers(1, 5000), min_size=count, max_size=count))
    edges = [
        tuple(sorted(set(data.draw(st.lists(st.integers(0, k), min_size=1, max_size=3)))))
        for k in range(count - 1)
    ]
    head = plan_head(_graph(sizes, edges))
    buffers = head.buffers
    for i, a in enumerate(buffers):
        for b in buffers[i + 1 :]:
            live_together = not (a.first > b.last or b.first > a.last)
            apart = a.offset + a.size <= b.offset or b.offset + b.size <= a.offset
            assert apart or not live_together
    assert head.floor_bytes <= head.head_bytes <= sum(b.size for b in buffers)
    assert all(b.size % 16 == 0 for b in buffers)


def test_greedy_plan_places_like_tflm() -> None:
    # Equal sizes go highest id first (TFLM's reverse fill + stable sort); a small buffer
    # reuses the gap left by one that is dead.
    buffers = [
        PlannedBuffer("a", 0, 100, 112, 0, 1),
        PlannedBuffer("b", 1, 100, 112, 1, 2),
        PlannedBuffer("c", 2, 20, 32, 2, 3),
    ]
    assert greedy_offsets(buffers) == 224
    assert [b.offset for b in buffers] == [112, 0, 112]


def test_unknown_dimensions_are_a_problem_not_a_crash() -> None:
    model = _graph([16, 16], [(0,)])
    broken = TfliteModel(
        (model.tensors[0], TensorInfo(1, "dyn", (-1, 16), "int8", 0, False, False, [1.0], [0])),
        model.ops,
        model.inputs,
        model.outputs,
        0,
        1,
    )
    static = estimate_model(broken)
    assert static.problems and "unknown dimensions" in static.problems[0]
    assert "'dyn'" in static.problems[0]
