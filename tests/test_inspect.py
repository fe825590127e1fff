"""`tinyforge inspect` as a user runs it: JSON keys, verdicts, budgets, bad input.

Models are converted once per module; the CLI runs as a subprocess (the venv's console
script), so TFLM and Keras only ever run in its child processes.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

TINYFORGE = Path(sys.executable).parent / "tinyforge"
KEYS = {
    "model", "format", "ops", "unsupported_ops", "model_bytes", "arena_bytes",
    "arena_bytes_estimate", "arena_bytes_target", "arena_floor_bytes", "flash_bytes_estimate",
    "ram_bytes_estimate", "layers", "problems", "notes",
}  # fmt: skip
LAYER_KEYS = {
    "name", "op", "output_shape", "dtype", "params_bytes", "activation_bytes", "macs",
}  # fmt: skip


def inspect(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "COLUMNS": "200", "NO_COLOR": "1", "TF_CPP_MIN_LOG_LEVEL": "3"}
    return subprocess.run(
        [str(TINYFORGE), "inspect", *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=cwd,
        timeout=300,
        check=False,
    )


def inspect_json(*args: str) -> tuple[int, dict[str, Any]]:
    result = inspect(*args, "--json")
    assert "Traceback" not in result.stderr, result.stderr
    return result.returncode, json.loads(result.stdout)


def _convert(tf: Any, model: Any) -> bytes:
    shape = tuple(model.inputs[0].shape[1:])
    rng = np.random.default_rng(0)

    def representative() -> Iterator[list[np.ndarray]]:
        for _ in range(8):
            yield [rng.random((1, *shape), dtype=np.float32)]

    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.representative_dataset = representative
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    converter.inference_input_type = tf.int8
    converter.inference_output_type = tf.int8
    return converter.convert()


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import keras
    import tensorflow as tf
    keras.utils.set_random_seed(0)
    L = keras.layers
    out = tmp_path_factory.mktemp("inspect")
    cnn = keras.Sequential(
        [
            keras.Input((32, 32, 3)),
            L.Conv2D(16, 3, activation="relu"),
            L.MaxPooling2D(),
            L.Conv2D(32, 3, activation="relu"),
            L.GlobalAveragePooling2D(),
            L.Dense(4, activation="softmax"),
        ]
    )
    # Keras' GELU converts to the GELU builtin, which TFLite has and TFLM does not.
    gelu = keras.Sequential([keras.Input((8,)), L.Dense(8, activation="gelu"), L.Dense(2)])
    paths = {"cnn": out / "cnn.tflite", "gelu": out / "gelu.tflite", "keras": out / "cnn.keras"}
    paths["cnn"].write_bytes(_convert(tf, cnn))
    paths["gelu"].write_bytes(_convert(tf, gelu))
    cnn.save(paths["keras"])
    return paths


def _consistent(report: dict[str, Any]) -> None:
    assert set(report) >= KEYS
    for layer in report["layers"]:
        assert set(layer) >= LAYER_KEYS
    if "budget" in report:
        assert {"ram_bytes", "flash_bytes"} <= set(report["budget"])
        assert "fits" in report and "violations" in report
        if report["fits"] is not None:
            assert (report["fits"] is False) == bool(report["violations"])
        for violation in report["violations"]:
            assert {"resource", "figure", "limit", "biggest"} <= set(violation)
            assert violation["figure"] > violation["limit"]
    if report["ram_bytes_estimate"] is not None:
        assert report["ram_bytes_estimate"] == sum(report["ram_parts"].values())
        assert report["flash_bytes_estimate"] == sum(report["flash_parts"].values())
        assert report["ram_parts"]["tensor arena"] == report["arena_bytes_target"]
        assert report["flash_parts"]["model"] == report["model_bytes"]


@pytest.mark.slow
def test_tflite_report_measures_and_estimates(models: dict[str, Path]) -> None:
    code, report = inspect_json(str(models["cnn"]), "--board", "pico")
    assert code == 0
    _consistent(report)
    assert report["format"] == "tflite" and report["board"] == "pico"
    assert report["ops"]["CONV_2D"] == 2 and report["unsupported_ops"] == []
    assert report["model_bytes"] == models["cnn"].stat().st_size
    measured, estimate = report["arena_bytes"], report["arena_bytes_estimate"]
    assert measured <= estimate <= 1.02 * measured
    assert report["arena_floor_bytes"] <= measured
    assert report["arena_bytes_target"] < measured  # 32-bit structs are smaller
    assert report["fits"] is True and report["violations"] == []
    ops = [layer["op"] for layer in report["layers"]]
    assert ops[:2] == ["CONV_2D", "MAX_POOL_2D"]
    conv = report["layers"][0]
    assert conv["output_shape"] == [1, 30, 30, 16] and conv["activation_bytes"] == 30 * 30 * 16
    assert conv["macs"] == 30 * 30 * 16 * 3 * 3 * 3


@pytest.mark.slow
def test_unsupported_op_is_listed(models: dict[str, Path]) -> None:
    code, report = inspect_json(str(models["gelu"]))
    _consistent(report)
    assert report["unsupported_ops"] == ["GELU"]
    assert any("GELU" in p for p in report["problems"])
    assert report["arena_bytes"] is None  # TFLM cannot run it, so nothing is measured
    assert report["arena_bytes_estimate"] > 0
    assert code == 3


@pytest.mark.slow
def test_platformio_overrides_change_the_verdict(models: dict[str, Path], tmp_path: Path) -> None:
    project = tmp_path / "fw"
    project.mkdir()
    ini = project / "platformio.ini"
    ini.write_text("[platformio]\ndefault_envs = pico\n\n[env:pico]\nboard = pico\n")
    code, report = inspect_json(str(models["cnn"]), "--project", str(project), "--static")
    _consistent(report)
    assert code == 0 and report["fits"] is True
    assert report["budget"] == {"ram_bytes": 262144, "flash_bytes": 2097152}

    ini.write_text(ini.read_text() + "board_upload.maximum_ram_size = 20000\n")
    code, report = inspect_json(str(models["cnn"]), "--project", str(project), "--static")
    _consistent(report)
    assert code == 3 and report["fits"] is False
    assert report["budget"]["ram_bytes"] == 20000
    (violation,) = report["violations"]
    assert violation["resource"] == "ram" and violation["limit"] == 20000
    assert violation["figure"] == report["ram_bytes_estimate"]
    assert "board_upload" in report["budget_source"]

    text = inspect(str(models["cnn"]), "--project", str(project), "--static")
    assert "Does not fit" in text.stdout and "RAM" in text.stdout


@pytest.mark.slow
def test_text_output_has_layers_and_a_verdict(models: dict[str, Path]) -> None:
    result = inspect(str(models["cnn"]), "--board", "nano33ble")
    assert result.returncode == 0, result.stderr
    assert "CONV_2D" in result.stdout and "MAX_POOL_2D" in result.stdout
    assert "Fits nano33ble" in result.stdout


@pytest.mark.slow
def test_keras_file_is_converted_and_estimated(models: dict[str, Path]) -> None:
    code, report = inspect_json(str(models["keras"]), "--board", "pico")
    assert code == 0
    _consistent(report)
    assert report["format"] == "keras" and report["arena_bytes"] > 0
    definition = report["keras_estimate"]
    assert abs(definition["arena_bytes_estimate"] / report["arena_bytes"] - 1) <= 0.1
    assert definition["ops"] == report["ops"]


def _one_clear_error(result: subprocess.CompletedProcess[str], *needles: str) -> None:
    assert result.returncode == 2
    text = " ".join(result.stderr.split())
    assert "Traceback" not in result.stdout + result.stderr
    assert text.startswith("error"), text
    for needle in needles:
        assert needle in text, text


def test_bad_files_give_one_sentence(tmp_path: Path) -> None:
    notes = tmp_path / "notes.tflite"
    notes.write_text("just some text someone renamed\n")
    _one_clear_error(inspect(str(notes)), "not a TensorFlow Lite model")
    truncated = tmp_path / "cut.tflite"
    truncated.write_bytes(b"\x1c\x00\x00\x00TFL3" + bytes(40))
    _one_clear_error(inspect(str(truncated)), "corrupt")
    garbage = tmp_path / "garbage.onnx"
    garbage.write_bytes(bytes(range(256)) * 3)
    _one_clear_error(inspect(str(garbage)), "not a valid ONNX model")
    empty = tmp_path / "empty.keras"
    empty.write_bytes(b"")
    _one_clear_error(inspect(str(empty)), "not a Keras model archive")
    text = tmp_path / "readme.txt"
    text.write_text("hello")
    _one_clear_error(inspect(str(text)), "not a model TinyForge can inspect")
    _one_clear_error(inspect(str(tmp_path / "missing.tflite")), "does not exist")
    _one_clear_error(inspect(str(notes), "--board", "nano_33_bel"), "Unknown board")
    _one_clear_error(inspect(str(notes), "--project", str(tmp_path)), "neither")


@pytest.mark.slow
def test_truncated_real_model(models: dict[str, Path], tmp_path: Path) -> None:
    data = models["cnn"].read_bytes()
    cut = tmp_path / "cut.tflite"
    cut.write_bytes(data[: len(data) // 2])
    _one_clear_error(inspect(str(cut)), "truncated or corrupt")


@pytest.mark.slow
def test_unknown_dimensions_are_listed_as_problems(models: dict[str, Path], tmp_path: Path) -> None:
    import tflite

    original = models["cnn"].read_bytes()
    data = bytearray(original)
    graph = tflite.Model.GetRootAsModel(original, 0).Subgraphs(0)
    shape = graph.Tensors(graph.Inputs(0)).ShapeAsNumpy()
    # The shape vector is a view into the file's bytes: patch its batch dimension to -1.
    start = np.frombuffer(original, np.uint8)
    offset = shape.__array_interface__["data"][0] - start.__array_interface__["data"][0]
    assert 0 < offset < len(data) and int(shape[0]) == 1
    data[offset : offset + 4] = (-1).to_bytes(4, "little", signed=True)
    path = tmp_path / "dynamic.tflite"
    path.write_bytes(bytes(data))
    code, report = inspect_json(str(path), "--board", "pico")
    _consistent(report)
    assert code == 3
    assert any("unknown dimensions" in p for p in report["problems"])
    assert report["arena_bytes"] is None and report["arena_bytes_estimate"] is None
    assert report["fits"] is None and report["violations"] == []


def test_onnx_ops_without_tflm_kernels(tmp_path: Path) -> None:
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    weights = numpy_helper.from_array(np.ones((4, 3, 3, 3), np.float32), "w")
    k = numpy_helper.from_array(np.array([2], np.int64), "k")
    graph = helper.make_graph(
        [
            helper.make_node("Conv", ["x", "w"], ["c"], kernel_shape=[3, 3]),
            helper.make_node("Gelu", ["c"], ["g"]),
            helper.make_node("GlobalAveragePool", ["g"], ["p"]),
            helper.make_node("Flatten", ["p"], ["f"]),
            helper.make_node("TopK", ["f", "k"], ["y", "i"]),
        ],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3, 16, 16])],
        [
            helper.make_tensor_value_info("y", TensorProto.FLOAT, None),
            helper.make_tensor_value_info("i", TensorProto.INT64, None),
        ],
        [weights, k],
    )
    path = tmp_path / "m.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 20)]), path)
    code, report = inspect_json(str(path), "--board", "pico")
    _consistent(report)
    assert report["format"] == "onnx"
    assert report["onnx_ops"] == {"Conv": 1, "Gelu": 1, "GlobalAveragePool": 1, "Flatten": 1,
                                  "TopK": 1}  # fmt: skip
    assert sorted(report["unsupported_ops"]) == ["GELU", "TOPK_V2"]
    assert any("convert" in note for note in report["notes"])
    assert report["fits"] is None and report["arena_bytes"] is None
    # Shapes are known once the batch is fixed to 1: a rough plan of the graph as int8.
    assert report["onnx_estimate"]["arena_floor_bytes"] >= 4 * 14 * 14 * 2
    assert code == 3
