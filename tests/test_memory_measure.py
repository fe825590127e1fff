"""Memory truth core: .tflite parsing, the real TFLM arena, TFLM runs and TFLM's op set.

Models are small real Keras models converted to full-int8 TFLite once per module. TFLM itself
only ever runs in child processes (tinyforge.memory._tflm_child); this test process never
imports tflite_micro.
"""

from __future__ import annotations

import importlib.util
import os
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest

from tinyforge.errors import ModelFileError, StageError
from tinyforge.memory import measure, ops
from tinyforge.memory.measure import (
    ArenaMeasurement,
    arena_works,
    measure_arena,
    parse_allocation_report,
    run_tflm,
)
from tinyforge.memory.tflite_model import load_tflite, tflm_resolver_method

# The float model that ships inside the tflite-micro wheel: a real converter output that needs
# no TensorFlow, found without importing tflite_micro.
_TFLM_SPEC = importlib.util.find_spec("tflite_micro")
assert _TFLM_SPEC is not None and _TFLM_SPEC.submodule_search_locations
SINE = Path(_TFLM_SPEC.submodule_search_locations[0]) / "python/tflite_micro/sine_float.tflite"

SAMPLE_REPORT = """\
[RecordingMicroAllocator] Arena allocation total 1552 bytes
[RecordingMicroAllocator] Arena allocation head 32 bytes
[RecordingMicroAllocator] Arena allocation tail 1520 bytes
[RecordingMicroAllocator] 'TfLiteEvalTensor data' used 144 bytes with alignment overhead \
(requested 144 bytes for 6 allocations)
[RecordingMicroAllocator] 'Persistent TfLiteTensor data' used 128 bytes with alignment \
overhead (requested 128 bytes for 2 tensors)
[RecordingMicroAllocator] 'Persistent buffer data' used 436 bytes with alignment overhead \
(requested 400 bytes for 9 allocations)
[RecordingMicroAllocator] 'NodeAndRegistration struct' used 192 bytes with alignment overhead \
(requested 192 bytes for 3 NodeAndRegistration structs)
"""


# --- fixtures -------------------------------------------------------------------------------


def _convert_int8(model: object, input_shape: tuple[int, ...], path: Path) -> Path:
    import tensorflow as tf

    rng = np.random.default_rng(0)
    calibration = rng.random((32, *input_shape), dtype=np.float32)

    def representative() -> Iterator[list[np.ndarray]]:
        for sample in calibration:
            yield [sample[np.newaxis]]

    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.representative_dataset = representative
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    converter.inference_input_type = tf.int8
    converter.inference_output_type = tf.int8
    path.write_bytes(converter.convert())
    return path


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """dense / conv (Conv2D + MaxPool + DepthwiseConv2D) / gelu (an op TFLM lacks), int8."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import keras
    keras.utils.set_random_seed(0)
    out = tmp_path_factory.mktemp("models")
    layers = keras.layers
    dense = keras.Sequential(
        [keras.Input((10,)), layers.Dense(16, activation="relu"), layers.Dense(4, "softmax")]
    )
    conv = keras.Sequential(
        [
            keras.Input((16, 16, 1)),
            layers.Conv2D(8, 3, activation="relu"),
            layers.MaxPooling2D(),
            layers.DepthwiseConv2D(3, activation="relu"),
            layers.GlobalAveragePooling2D(),
            layers.Dense(3, activation="softmax"),
        ]
    )
    # Keras' GELU converts to the GELU builtin, which TFLite has and TFLM does not.
    gelu = keras.Sequential(
        [keras.Input((8,)), layers.Dense(8, activation="gelu"), layers.Dense(2)]
    )
    return {
        "dense": _convert_int8(dense, (10,), out / "dense.tflite"),
        "conv": _convert_int8(conv, (16, 16, 1), out / "conv.tflite"),
        "gelu": _convert_int8(gelu, (8,), out / "gelu.tflite"),
    }


@pytest.fixture(scope="module")
def measured(models: dict[str, Path]) -> dict[str, ArenaMeasurement]:
    return {name: measure_arena(models[name]) for name in ("dense", "conv")}


@pytest.fixture(scope="module")
def op_cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """An empty, private op-probe cache, so the first call really asks TFLM."""
    cache = tmp_path_factory.mktemp("cache")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("TINYFORGE_CACHE_DIR", str(cache))
        mp.setattr(ops, "_memo", {})
        yield cache


def _one_sentence(message: str) -> None:
    assert message.endswith(".") and "\n" not in message and "Traceback" not in message


# --- parsing -------------------------------------------------------------------------------


def test_sine_model_parses_without_tensorflow() -> None:
    model = load_tflite(SINE)
    assert model.op_counts() == {"FULLY_CONNECTED": 3}
    assert model.subgraph_count == 1
    assert model.model_bytes == SINE.stat().st_size
    (inp,) = model.input_tensors
    assert inp.dtype == "float32" and inp.shape == (1, 1) and inp.nbytes == 4
    assert not inp.is_constant
    # Every FULLY_CONNECTED has constant weights and feeds the next op.
    for first, second in zip(model.ops, model.ops[1:], strict=False):
        assert first.outputs[0] in second.inputs
        assert model.tensors[first.inputs[1]].is_constant
    assert model.ops[-1].outputs == model.outputs
    assert load_tflite(SINE.read_bytes()).op_counts() == model.op_counts()


@pytest.mark.slow
def test_int8_models_parse_like_the_tflite_interpreter_sees_them(models: dict[str, Path]) -> None:
    from ai_edge_litert.interpreter import Interpreter

    dense = load_tflite(models["dense"])
    assert dense.op_counts() == {"FULLY_CONNECTED": 2, "SOFTMAX": 1}
    conv = load_tflite(models["conv"])
    assert [op.op for op in conv.ops][:3] == ["CONV_2D", "MAX_POOL_2D", "DEPTHWISE_CONV_2D"]
    assert conv.op_counts()["FULLY_CONNECTED"] == 1

    for path in models.values():
        model = load_tflite(path)
        reference = Interpreter(model_path=str(path))
        details = {d["index"]: d for d in reference.get_tensor_details()}
        assert len(model.tensors) == len(details)
        for tensor in model.tensors:
            ref = details[tensor.index]
            assert tensor.name == ref["name"]
            assert tensor.shape == tuple(ref["shape"])
            assert tensor.dtype == np.dtype(ref["dtype"]).name
            q = ref["quantization_parameters"]
            np.testing.assert_allclose(tensor.scale, q["scales"], rtol=1e-6)
            assert tensor.zero_point == list(q["zero_points"])
        assert model.inputs == tuple(d["index"] for d in reference.get_input_details())
        assert model.outputs == tuple(d["index"] for d in reference.get_output_details())
        (inp,) = model.input_tensors
        assert inp.dtype == "int8" and inp.nbytes == int(np.prod(inp.shape))
        assert len(inp.scale) == 1 and len(inp.zero_point) == 1
        weights = [t for t in model.tensors if t.is_constant]
        assert weights and all(t.nbytes > 0 for t in weights)


def test_truncated_corrupt_and_foreign_files_give_model_file_error(tmp_path: Path) -> None:
    data = SINE.read_bytes()
    # Every cut of a real model is refused, with one sentence and no traceback.
    for cut in [*range(0, len(data), 37), *range(len(data) - 40, len(data))]:
        with pytest.raises(ModelFileError) as info:
            load_tflite(data[:cut])
        _one_sentence(str(info.value))

    text = tmp_path / "notes.tflite"
    text.write_text("This is not a model, just some text that someone renamed.\n")
    garbage = tmp_path / "garbage.tflite"
    garbage.write_bytes(b"\x10\x00\x00\x00TFL3" + bytes(range(256)) * 4)
    truncated = tmp_path / "truncated.tflite"
    truncated.write_bytes(data[: len(data) // 2])
    empty = tmp_path / "empty.tflite"
    empty.write_bytes(b"")
    cases = {
        text: "not a TensorFlow Lite model",
        garbage: "truncated or corrupt",
        truncated: "truncated or corrupt",
        empty: "not a TensorFlow Lite model",
        tmp_path / "missing.tflite": "does not exist",
        tmp_path: "is a directory",
    }
    for path, phrase in cases.items():
        with pytest.raises(ModelFileError) as info:
            load_tflite(path)
        assert phrase in str(info.value), str(info.value)
        _one_sentence(str(info.value))
    # measure_arena refuses such a file before TFLM ever sees it.
    with pytest.raises(ModelFileError):
        measure_arena(truncated)


def test_resolver_method_names() -> None:
    expected = {
        "CONV_2D": "AddConv2D",
        "FULLY_CONNECTED": "AddFullyConnected",
        "DEPTHWISE_CONV_2D": "AddDepthwiseConv2D",
        "MAX_POOL_2D": "AddMaxPool2D",
        "AVERAGE_POOL_2D": "AddAveragePool2D",
        "L2_POOL_2D": "AddL2Pool2D",
        "L2_NORMALIZATION": "AddL2Normalization",
        "SOFTMAX": "AddSoftmax",
        "LOG_SOFTMAX": "AddLogSoftmax",
        "RESHAPE": "AddReshape",
        "QUANTIZE": "AddQuantize",
        "DEQUANTIZE": "AddDequantize",
        "MEAN": "AddMean",
        "ADD": "AddAdd",
        "ADD_N": "AddAddN",
        "CONCATENATION": "AddConcatenation",
        "LOGISTIC": "AddLogistic",
        "RELU6": "AddRelu6",
        "PRELU": "AddPrelu",
        "HARD_SWISH": "AddHardSwish",
        "SVDF": "AddSvdf",
        "BATCH_TO_SPACE_ND": "AddBatchToSpaceNd",
        "GATHER_ND": "AddGatherNd",
        "SPLIT_V": "AddSplitV",
        "SELECT_V2": "AddSelectV2",
        "REVERSE_V2": "AddReverseV2",
        "RESIZE_NEAREST_NEIGHBOR": "AddResizeNearestNeighbor",
        "IF": "AddIf",
        # The real exceptions to the CamelCase rule.
        "BATCH_MATMUL": "AddBatchMatMul",
        "CUMSUM": "AddCumSum",
        "PADV2": "AddPadV2",
        "UNIDIRECTIONAL_SEQUENCE_LSTM": "AddUnidirectionalSequenceLSTM",
        "CUSTOM:TFLite_Detection_PostProcess": "AddDetectionPostprocess",
        "CUSTOM:SignalPCAN": "AddPCAN",
        "CUSTOM:ethos-u": "AddEthosU",
    }
    assert {op: tflm_resolver_method(op) for op in expected} == expected
    for bad in ("CUSTOM:MyOwnOp", "CUSTOM", "conv_2d", ""):
        with pytest.raises(ValueError):
            tflm_resolver_method(bad)


def test_allocation_report_parsing() -> None:
    totals, kinds = parse_allocation_report(SAMPLE_REPORT)
    assert totals == {"total": 1552, "head": 32, "tail": 1520}
    assert kinds["Persistent buffer data"] == measure.AllocationKind(436, 400, 9, "allocations")
    assert kinds["NodeAndRegistration struct"].unit == "NodeAndRegistration structs"
    assert kinds["Persistent TfLiteTensor data"].count == 2


# --- measuring the arena -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("threshold", "guess"),
    [(1848, 1552), (4096, 4096), (4096, 4000), (5000, 1000), (1936, 1536), (300, 2000), (7, 0)],
)
def test_search_finds_the_threshold_in_few_trials(threshold: int, guess: int) -> None:
    from tinyforge.memory._tflm_child import smallest_working

    tried: list[int] = []

    def works(size: int) -> bool:
        tried.append(size)
        return size >= threshold

    assert smallest_working(works, guess, 0, 16 * 1024 * 1024) == threshold
    assert len(tried) <= 2 * (threshold - guess).bit_length() + 12
    # With a good guess the search never wanders far below it (tiny arenas can crash TFLM):
    # at most one first step down, to show that the guess is not already too big.
    if 0 < guess <= threshold:
        assert min(tried) >= guess - 256


def _check_smallest(path: Path, result: ArenaMeasurement) -> None:
    assert result.recorded_total > 0
    assert result.recorded_total == result.head_bytes + result.tail_bytes
    # TFLM needs transient planner scratch during allocation on top of what it records, so
    # the smallest working arena can exceed the recorded total (by 0 to a few hundred bytes).
    assert result.arena_bytes >= result.recorded_total
    assert result.invoke_ok
    assert "TfLiteEvalTensor data" in result.breakdown
    assert sum(result.breakdown.values()) <= result.tail_bytes
    # The claim "smallest": it works in a fresh process, one byte less does not. TFLM's 16-byte
    # alignment does not make sizes come in 16-byte steps (the arena's end is not aligned),
    # so both -1 and -16 are checked.
    assert arena_works(path, result.arena_bytes)
    assert not arena_works(path, result.arena_bytes - 1)
    assert not arena_works(path, result.arena_bytes - 16)


def test_sine_float_model_arena_is_the_smallest_working_size() -> None:
    started = time.monotonic()
    result = measure_arena(SINE)
    assert time.monotonic() - started < 10
    _check_smallest(SINE, result)


@pytest.mark.slow
def test_int8_models_arena_is_the_smallest_working_size(
    models: dict[str, Path], measured: dict[str, ArenaMeasurement]
) -> None:
    for name, result in measured.items():
        assert result.seconds < 10, f"{name}: {result.seconds:.2f} s"
        assert result.trials < 30
        _check_smallest(models[name], result)
    # The conv model's activations (a 14x14x8 map) dominate; the dense model's do not.
    assert measured["conv"].head_bytes > measured["dense"].head_bytes


def _aborting_child(abort_lo: int, abort_hi: int) -> Callable[[list[str]], list[str]]:
    """A child command line that makes TFLM abort for arenas in [abort_lo, abort_hi)."""
    code = (
        "import os, runpy\n"
        "from tflite_micro import runtime\n"
        "real = runtime.Interpreter.from_bytes.__func__\n"
        "def from_bytes(cls, data, *args, arena_size=None, **kwargs):\n"
        f"    if arena_size is not None and {abort_lo} <= arena_size < {abort_hi}:\n"
        "        os.abort()\n"
        "    return real(cls, data, *args, arena_size=arena_size, **kwargs)\n"
        "runtime.Interpreter.from_bytes = classmethod(from_bytes)\n"
        "runpy.run_module('tinyforge.memory._tflm_child', run_name='__main__')\n"
    )

    def argv(args: list[str]) -> list[str]:
        return [sys.executable, "-c", code, *args]

    return argv


@pytest.mark.slow
def test_trials_that_abort_count_as_too_small(
    models: dict[str, Path], measured: dict[str, ArenaMeasurement], monkeypatch: pytest.MonkeyPatch
) -> None:
    real = measured["dense"]
    # Every too-small size above the recorded total now kills the child, as TFLM really does
    # for some sizes: the search must resume in fresh children and reach the same answer.
    monkeypatch.setattr(
        measure, "_child_argv", _aborting_child(real.recorded_total + 1, real.arena_bytes)
    )
    resumed = measure_arena(models["dense"])
    assert resumed.arena_bytes == real.arena_bytes
    assert resumed.recorded_total == real.recorded_total
    assert resumed.aborted_trials
    assert all(real.recorded_total < size < real.arena_bytes for size in resumed.aborted_trials)


@pytest.mark.slow
def test_a_crash_outside_the_search_is_one_clear_stage_error(
    models: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(measure, "_child_argv", _aborting_child(0, 1 << 62))
    with pytest.raises(StageError) as info:
        measure_arena(models["dense"])
    error = info.value
    assert error.stage == "measure"
    assert "dense.tflite" in str(error) and "SIGABRT" in str(error)
    assert "allocating tensors" in str(error)
    _one_sentence(str(error))
    assert "[tinyforge-child] stage=allocate" in error.log_tail


# --- running samples in TFLM ---------------------------------------------------------------


@pytest.mark.slow
def test_run_tflm_agrees_with_the_tflite_interpreter(
    models: dict[str, Path], measured: dict[str, ArenaMeasurement]
) -> None:
    from ai_edge_litert.interpreter import Interpreter

    rng = np.random.default_rng(1)
    for name, shape in (("dense", (10,)), ("conv", (16, 16, 1))):
        path = models[name]
        x = rng.random((100, *shape), dtype=np.float32)
        reference = Interpreter(model_path=str(path))
        reference.allocate_tensors()
        inp, out = reference.get_input_details()[0], reference.get_output_details()[0]
        scale, zero_point = inp["quantization"]
        x_q = np.clip(np.round(x / scale + zero_point), -128, 127).astype(np.int8)
        expected = []
        for sample in x_q:
            reference.set_tensor(inp["index"], sample[np.newaxis])
            reference.invoke()
            expected.append(reference.get_tensor(out["index"])[0])
        expected_arr = np.array(expected)

        got = run_tflm(path, x_q, measured[name].arena_bytes)
        assert got.shape == expected_arr.shape and got.dtype == np.int8
        assert np.mean(got.argmax(axis=1) == expected_arr.argmax(axis=1)) >= 0.95
        # Not bit-exact with TFLite's optimized kernels, but within a few LSB.
        assert np.abs(got.astype(int) - expected_arr.astype(int)).max() <= 3
        # Float samples are quantized with the input's own parameters: same outputs.
        np.testing.assert_array_equal(run_tflm(path, x, measured[name].arena_bytes), got)


def test_a_measurement_that_runs_out_of_time_is_a_stage_error() -> None:
    with pytest.raises(StageError) as info:
        measure_arena(SINE, timeout=0.01)
    assert "did not finish within 0.01 s" in str(info.value)
    _one_sentence(str(info.value))


def test_run_tflm_errors() -> None:
    with pytest.raises(ValueError):
        run_tflm(SINE, np.zeros((4, 3), np.float32), 4096)
    with pytest.raises(StageError) as info:
        run_tflm(SINE, np.zeros((4, 1), np.float32), 64)
    assert "too small" in str(info.value)
    _one_sentence(str(info.value))
    y = run_tflm(SINE, np.linspace(0, 6, 8, dtype=np.float32)[:, None], 4096)
    assert y.shape == (8, 1)
    np.testing.assert_allclose(y[:, 0], np.sin(np.linspace(0, 6, 8)), atol=0.2)


# --- TFLM's op set ---------------------------------------------------------------------------


def test_tflm_supported_ops_are_asked_of_tflm_and_cached(
    op_cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    started = time.monotonic()
    supported = ops.tflm_supported_ops()
    assert time.monotonic() - started < 20
    assert {"CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED", "SOFTMAX", "RESHAPE"} <= supported
    assert {"QUANTIZE", "DEQUANTIZE", "MEAN", "MAX_POOL_2D", "ADD"} <= supported
    assert len(supported) >= 60
    support = ops.tflm_op_support()
    assert not support.unknown, support.unknown
    assert supported.isdisjoint(support.missing)
    # Ops that TFLite has and TFLM does not.
    assert {"GELU", "TOPK_V2", "LSTM", "HASHTABLE_LOOKUP"} <= support.missing
    # Every op TFLM has maps to a resolver method name.
    assert all(tflm_resolver_method(op).startswith("Add") for op in supported)

    files = list(op_cache.rglob("*.json"))
    assert len(files) == 1
    # A new process (empty memo) reads the cache instead of asking TFLM again.
    monkeypatch.setattr(ops, "_memo", {})

    def no_probe(custom: list[str]) -> ops.TflmOpSupport:
        raise AssertionError("probed TFLM again despite the cache")

    monkeypatch.setattr(ops, "_probe", no_probe)
    started = time.monotonic()
    assert ops.tflm_supported_ops() == supported
    assert time.monotonic() - started < 0.1


@pytest.mark.slow
def test_a_model_with_an_op_tflm_lacks_is_detected(models: dict[str, Path], op_cache: Path) -> None:
    gelu = load_tflite(models["gelu"])
    assert "GELU" in gelu.op_counts()
    assert ops.unsupported_ops(gelu) == ["GELU"]
    assert ops.unsupported_ops(load_tflite(models["conv"])) == []
    with pytest.raises(StageError) as info:
        measure_arena(models["gelu"])
    assert "GELU" in str(info.value) and "gelu.tflite" in str(info.value)
    _one_sentence(str(info.value))


def test_custom_ops_are_probed_by_name(op_cache: Path) -> None:
    support = ops.tflm_op_support(custom=["TFLite_Detection_PostProcess", "MyOwnOp"])
    assert support.custom == {"MyOwnOp": False, "TFLite_Detection_PostProcess": True}
