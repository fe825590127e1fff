"""`tinyforge convert` for models users bring: ONNX (and PyTorch through ONNX) → int8 TFLM.

The models are real and built here: a small PyTorch CNN trained for a few seconds and exported
with torch.onnx.export, a PyTorch model whose TILE TFLM lacks, one onnx2tf mis-converts, and
graphs written with onnx.helper. Every conversion is the real CLI (its child processes run
onnx2tf, LiteRT and TFLM).
"""

from __future__ import annotations

import json
import tomllib
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper
from PIL import Image

from tests.conftest import run_cli

SIDE = 24  # the CNN's input: 3 × 24 × 24


def _export(model: Any, example: Any, path: Path, **kwargs: Any) -> Path:
    import torch

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the TorchScript exporter announces its deprecation
        torch.onnx.export(
            model.eval(), example, str(path), opset_version=13, dynamo=False, **kwargs
        )
    return path


def _images(folder: Path, count: int = 16) -> Path:
    """Two classes told apart by which half is bright; 32×32 PNGs (the loader resizes them)."""
    rng = np.random.default_rng(0)
    for label in ("left", "right"):
        (folder / label).mkdir(parents=True)
        for i in range(count):
            pixels = rng.integers(0, 60, (32, 32, 3))
            half = slice(0, 16) if label == "left" else slice(16, 32)
            pixels[:, half] += 160
            Image.fromarray(pixels.astype(np.uint8)).save(folder / label / f"{i}.png")
    return folder


@pytest.fixture(scope="module")
def cnn(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A small PyTorch CNN classifier trained on the two image classes, and its image folder."""
    import torch
    from torch import nn

    root = tmp_path_factory.mktemp("cnn")
    images = _images(root / "images")
    torch.manual_seed(0)
    net = nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Conv2d(8, 16, 3, padding=1),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Linear(16 * (SIDE // 4) ** 2, 2),
    )
    rng = np.random.default_rng(1)
    x = rng.random((64, 3, SIDE, SIDE), dtype=np.float32) * 0.25
    y = np.arange(64) % 2
    for i, label in enumerate(y):
        half = slice(0, SIDE // 2) if label == 0 else slice(SIDE // 2, SIDE)
        x[i, :, :, half] += 0.65
    optimiser = torch.optim.Adam(net.parameters(), lr=0.01)
    for _ in range(60):
        optimiser.zero_grad()
        loss = nn.functional.cross_entropy(net(torch.from_numpy(x)), torch.from_numpy(y))
        loss.backward()
        optimiser.step()
    model = nn.Sequential(net, nn.Softmax(dim=1))
    path = _export(
        model,
        torch.zeros(1, 3, SIDE, SIDE),
        root / "cnn.onnx",
        input_names=["image"],
        output_names=["probabilities"],
        dynamic_axes={"image": {0: "batch"}, "probabilities": {0: "batch"}},
    )
    return path, images


def _json(result: Any) -> dict[str, Any]:
    assert "Traceback" not in result.stderr, result.stderr
    return json.loads(result.stdout)


def test_pytorch_cnn_becomes_a_verified_project(cnn: tuple[Path, Path], tmp_path: Path) -> None:
    model, images = cnn
    out = tmp_path / "proj"
    args = ("--board", "nano33ble", "--calibration", str(images), "--out", str(out), "--json")
    result = run_cli("convert", str(model), *args)
    assert result.returncode == 0, result.stderr + result.stdout
    report = _json(result)

    assert report["onnx"]["input"]["declared_shape"] == ["batch", 3, SIDE, SIDE]
    assert report["onnx"]["input"]["shape"] == [1, 3, SIDE, SIDE]
    assert report["input"]["shape"] == [1, SIDE, SIDE, 3]  # NCHW became NHWC
    assert report["input"]["dtype"] == report["output"]["dtype"] == "int8"
    assert report["calibration"]["kind"] == "images" and report["calibration"]["samples"] == 32
    assert report["calibration"]["warning"] is None
    assert report["float_agreement"] >= 0.99 and report["float_max_abs_diff"] < 1e-4
    assert report["int8_agreement"] >= 0.9 and report["tflm_agreement"] >= 0.9
    assert report["agreement"]["float"]["measure"] == "top-1"
    assert report["classes"] == ["left", "right"]
    # Memory truth: measured in TFLM, checked against the board.
    assert report["unsupported_ops"] == [] and report["runs_on_tflm"]
    assert 0 < report["arena_bytes_target"] <= report["arena_bytes"]
    assert report["arena_bytes_firmware"] > report["arena_bytes"]
    assert report["model_bytes"] == (out / "model.tflite").stat().st_size
    assert report["ops"]["CONV_2D"] == 2 and report["fits"] is True
    assert report["ram_bytes_estimate"] <= report["budget"]["ram_bytes"]

    # The project, as a Keras build writes it, plus the ONNX file and a spec naming it.
    for name in ("model.onnx", "model.tflite", "platformio.ini", "report.json", "src/main.cpp"):
        assert (out / name).is_file(), name
    cc = (out / "lib/model/model_data.cc").read_text()
    assert "0x" in cc and "alignas(16)" in cc
    main_cpp = (out / "src/main.cpp").read_text()
    assert "AddConv2D" in main_cpp and '"left"' in main_cpp
    assert f"kMeasuredArenaBytes = {report['arena_bytes']}" in main_cpp
    spec = tomllib.loads((out / "tinyforge.toml").read_text())
    assert spec["model"] == {"source": "model.onnx"}
    assert spec["dataset"]["kind"] == "folder"
    assert (out / spec["dataset"]["path"]).resolve() == images.resolve()  # relative to out
    assert spec["input_shape"] == [SIDE, SIDE, 3] and spec["classes"] == ["left", "right"]
    assert "board = nano33ble" in (out / "platformio.ini").read_text()

    # `tinyforge build` on that project converts the model again, calibrated on its dataset.
    rebuilt = run_cli("build", str(out))
    assert rebuilt.returncode == 0, rebuilt.stderr + rebuilt.stdout
    assert "TinyForge convert — model.onnx on nano33ble" in rebuilt.stdout
    again = json.loads((out / "report.json").read_text())
    assert again["format"] == "onnx" and again["calibration"]["kind"] == "dataset"
    assert again["float_agreement"] >= 0.99 and again["fits"] is True


def test_a_model_with_an_op_tflm_lacks(tmp_path: Path) -> None:
    """PyTorch's repeat() becomes TILE: fine in TFLite, absent from TFLM — said, not hidden."""
    import torch
    from torch import nn

    class Repeats(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv = nn.Conv2d(1, 4, 3, padding=1)
            self.head = nn.Linear(8 * 8 * 8, 3)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            y = torch.relu(self.conv(x)).repeat(1, 2, 1, 1)
            return self.head(y.flatten(1))

    torch.manual_seed(0)
    model = _export(
        Repeats(),
        torch.zeros(1, 1, 8, 8),
        tmp_path / "repeats.onnx",
        input_names=["x"],
        dynamic_axes={"x": {2: "height", 3: "width"}},  # open: fixed from the calibration data
    )
    calibration = tmp_path / "inputs.npy"
    # Channels-last samples (N, 8, 8, 1): TinyForge matches them to the NCHW input.
    np.save(calibration, np.random.default_rng(2).random((24, 8, 8, 1), dtype=np.float32))
    out = tmp_path / "proj"
    result = run_cli(
        "convert", str(model), "--board", "pico", "--calibration", str(calibration),
        "--out", str(out), "--json",
    )  # fmt: skip
    assert result.returncode == 3, result.stderr + result.stdout
    report = _json(result)
    assert report["onnx"]["input"]["shape"] == [1, 1, 8, 8]
    assert report["float_agreement"] == 1.0 and report["int8_agreement"] is not None
    assert report["ops"]["TILE"] == 1 and report["unsupported_ops"] == ["TILE"]
    assert report["runs_on_tflm"] is False and report["fits"] is False
    assert report["arena_bytes"] is None and report["tflm_agreement"] is None
    assert report["arena_bytes_estimate"] > 0  # the static estimate stands in
    problem = next(n for n in report["notices"] if "cannot run TILE" in n)
    assert "ONNX node /Tile (Tile)" in problem
    assert any("fixed at [1, 1, 8, 8] from the calibration data" in n for n in report["notices"])
    assert (out / "model.tflite").is_file() and (out / "report.json").is_file()
    assert not (out / "src/main.cpp").exists()  # no firmware that could not link
    spec = tomllib.loads((out / "tinyforge.toml").read_text())
    assert spec["model"] == {"source": "model.onnx", "input_shape": [1, 1, 8, 8]}
    assert spec["dataset"] == {"kind": "npy", "path": "../inputs.npy"}

    text = run_cli("convert", str(model), "--board", "pico", "--calibration", str(calibration))
    assert text.returncode == 3
    assert "Cannot run on TFLM: TILE" in text.stdout
    assert (tmp_path / "repeats_int8.tflite").is_file()  # without --out: beside the model


def test_diverging_outputs_fail_and_say_where(tmp_path: Path) -> None:
    """onnx2tf flattens the channel-sum of this graph in the wrong order: caught, located."""
    import torch
    from torch import nn

    class Mixed(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv = nn.Conv2d(2, 4, 3, padding=1)
            self.head = nn.Linear(4 * 16 + 16, 5)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            y = self.conv(x)
            both = torch.cat([y.flatten(1), x.sum(dim=1).flatten(1)], 1)
            return self.head(both).softmax(-1)

    torch.manual_seed(0)
    model = _export(Mixed(), torch.zeros(1, 2, 4, 4), tmp_path / "mixed.onnx")
    out = tmp_path / "proj"
    result = run_cli("convert", str(model), "--board", "nano33ble", "--out", str(out))
    assert result.returncode == 2, result.stdout
    assert "Traceback" not in result.stderr
    message = " ".join(result.stderr.split())
    assert "error (verify): The float32 TFLite model agrees with ONNX on only" in message
    assert "99% needed" in message
    assert "first diverge at ONNX node /Flatten_1 (Flatten" in message
    assert "its input /ReduceSum_output_0 still matches" in message
    assert not out.exists()  # nothing half-written


def test_an_op_onnx2tf_cannot_convert_is_named(tmp_path: Path) -> None:
    graph = helper.make_graph(
        [
            helper.make_node(
                "LpPool", ["x"], ["p"], kernel_shape=[2, 2], strides=[2, 2], name="lp"
            ),
            helper.make_node("Flatten", ["p"], ["y"], name="flat"),
        ],
        "lp_pool",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 1, 8, 8])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 16])],
    )
    path = tmp_path / "lp.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]), path)
    result = run_cli("convert", str(path), "--board", "nano33ble")
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert "onnx2tf cannot convert ONNX op LpPool (node lp)" in " ".join(result.stderr.split())


def _mlp(path: Path, inputs: list[Any], *, opset: int = 13) -> Path:
    rng = np.random.default_rng(0)
    weights = helper.make_tensor("w", TensorProto.FLOAT, [4, 3], rng.random(12).tolist())
    graph = helper.make_graph(
        [helper.make_node("MatMul", [inputs[0].name, "w"], ["y"], name="fc")],
        "mlp",
        inputs,
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 3])],
        initializer=[weights],
    )
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)]), path)
    return path


@pytest.mark.parametrize(
    ("case", "expected"),
    [
        ("corrupt", "is not a valid ONNX model: it is truncated or corrupt"),
        ("empty", "is not a usable ONNX model: its graph has no nodes"),
        ("checker", "the ONNX checker says"),
        ("two_inputs", "has 2 inputs (a, b): TinyForge converts models with one input"),
        ("int_input", "is int64: TinyForge converts models with a float32 input"),
        ("open_dims", "has open dimensions [1, 4, ?]: give the shape to convert for with"),
        ("no_board", "Give the board to convert for with --board"),
        ("bad_shape", "--input-shape [1, 5] conflicts with input 'x'"),
    ],
)
def test_bad_models_get_one_sentence(tmp_path: Path, case: str, expected: str) -> None:
    path = tmp_path / "model.onnx"
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])
    extra: list[str] = []
    if case == "corrupt":  # a real model cut in half, as an interrupted download leaves it
        data = _mlp(tmp_path / "whole.onnx", [x]).read_bytes()
        path.write_bytes(data[: len(data) // 2])
    elif case == "empty":
        path.write_bytes(b"")
    elif case == "checker":  # a node reading a tensor nothing defines
        graph = helper.make_graph(
            [helper.make_node("Relu", ["nowhere"], ["y"], name="relu")],
            "broken",
            [x],
            [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])],
        )
        onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]), path)
    elif case == "two_inputs":
        a = helper.make_tensor_value_info("a", TensorProto.FLOAT, [1, 4])
        b = helper.make_tensor_value_info("b", TensorProto.FLOAT, [1, 4])
        graph = helper.make_graph(
            [helper.make_node("Add", ["a", "b"], ["y"], name="add")],
            "two",
            [a, b],
            [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])],
        )
        onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]), path)
    elif case == "int_input":
        ids = helper.make_tensor_value_info("ids", TensorProto.INT64, [1, 4])
        graph = helper.make_graph(
            [helper.make_node("Cast", ["ids"], ["y"], to=TensorProto.FLOAT, name="cast")],
            "ints",
            [ids],
            [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])],
        )
        onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]), path)
    elif case == "open_dims":
        open_x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4, None])
        graph = helper.make_graph(
            [helper.make_node("Relu", ["x"], ["y"], name="relu")],
            "open",
            [open_x],
            [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4, None])],
        )
        onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]), path)
    else:
        _mlp(path, [x])
        if case == "bad_shape":
            extra = ["--input-shape", "1,5"]
    board = [] if case == "no_board" else ["--board", "nano33ble"]
    result = run_cli("convert", str(path), *board, *extra)
    assert result.returncode == 2, result.stdout
    assert "Traceback" not in result.stderr
    assert expected in " ".join(result.stderr.split())


def test_inspect_converts_onnx_first(tmp_path: Path) -> None:
    """`tinyforge inspect model.onnx --convert`: exact, measured figures of the int8 model."""
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 4])
    path = _mlp(tmp_path / "mlp.onnx", [x])
    calibration = tmp_path / "rows.npy"
    np.save(calibration, np.random.default_rng(3).random((40, 4), dtype=np.float32))
    args = ("--board", "nano33ble", "--convert", "--calibration", str(calibration), "--json")
    result = run_cli("inspect", str(path), *args)
    assert result.returncode == 0, result.stderr + result.stdout
    report = _json(result)
    assert report["format"] == "onnx" and report["onnx_ops"] == {"MatMul": 1}
    assert report["ops"] == {"FULLY_CONNECTED": 1}
    assert report["arena_bytes"] > 0 and report["fits"] is True
    assert report["agreement"]["float"]["agreement"] == 1.0
    assert any("Converted to int8 TFLite with onnx2tf (40 inputs" in n for n in report["notes"])
