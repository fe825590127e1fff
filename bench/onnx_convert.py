"""Benchmark: `tinyforge convert` on three PyTorch models of different sizes, through ONNX.

Each model is trained for a few seconds on synthetic images (the class is where a bright patch
sits, so int8 agreement means something), exported with torch.onnx.export (opset 13, dynamic
batch) and converted for a board with the calibration images, as a user runs it. Prints the
conversion seconds (the onnx2tf child, TensorFlow's import included), the whole command's
seconds, float32/int8/TFLM top-1 agreement with onnxruntime, and model bytes.
Targets: < 30 s per model on 2 cores, float top-1 agreement >= 99%.
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from tinyforge.convert.onnx import convert_onnx

# name, input (C, H, W), classes, width multiplier, depthwise-separable blocks, board
MODELS = (
    ("small-cnn", (1, 28, 28), 4, 8, 1, "nano33ble"),
    ("ds-cnn-64", (3, 64, 64), 4, 16, 3, "nano33ble"),
    ("mobilenet-96", (3, 96, 96), 5, 32, 5, "esp32s3"),
)


def build_model(channels: int, classes: int, width: int, blocks: int) -> Any:
    import torch
    from torch import nn

    layers: list[nn.Module] = [
        nn.Conv2d(channels, width, 3, stride=2, padding=1),
        nn.BatchNorm2d(width),
        nn.ReLU6(),
    ]
    current = width
    for block in range(blocks):
        out = current * 2 if block % 2 == 0 else current
        stride = 2 if block % 2 == 0 else 1
        layers += [
            nn.Conv2d(current, current, 3, stride=stride, padding=1, groups=current),
            nn.BatchNorm2d(current),
            nn.ReLU6(),
            nn.Conv2d(current, out, 1),
            nn.BatchNorm2d(out),
            nn.ReLU6(),
        ]
        current = out
    layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(current, classes)]
    torch.manual_seed(0)
    return nn.Sequential(*layers)


def synthetic_images(shape: tuple[int, int, int], classes: int, count: int) -> tuple[Any, Any]:
    """Noise plus a bright patch whose position (one of `classes` columns) is the label."""
    rng = np.random.default_rng(0)
    channels, height, width = shape
    x = rng.random((count, channels, height, width), dtype=np.float32) * 0.3
    y = np.arange(count) % classes
    band = width // classes
    for i, label in enumerate(y):
        top = int(rng.integers(0, height // 2))
        x[i, :, top : top + height // 2, label * band : (label + 1) * band] += 0.6
    return x, y


def train(model: Any, x: np.ndarray, y: np.ndarray, steps: int) -> Any:
    import torch
    from torch import nn

    optimiser = torch.optim.Adam(model.parameters(), lr=0.005)
    inputs, labels = torch.from_numpy(x), torch.from_numpy(y)
    model.train()
    for step in range(steps):
        batch = slice((step * 32) % len(x), (step * 32) % len(x) + 32)
        optimiser.zero_grad()
        loss = nn.functional.cross_entropy(model(inputs[batch]), labels[batch])
        loss.backward()
        optimiser.step()
    return model.eval()


def export(model: Any, shape: tuple[int, int, int], path: Path) -> Path:
    import torch
    from torch import nn

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            nn.Sequential(model, nn.Softmax(dim=1)).eval(),
            torch.zeros(1, *shape),
            str(path),
            opset_version=13,
            dynamo=False,
            input_names=["image"],
            output_names=["probabilities"],
            dynamic_axes={"image": {0: "batch"}, "probabilities": {0: "batch"}},
        )
    return path


def pct(x: float | None) -> str:
    return "-" if x is None else f"{100 * x:.1f}%"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--steps", type=int, default=60, help="training steps per model")
    parser.add_argument("--keep", action="store_true", help="keep the projects")
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="tinyforge-bench-onnx-"))
    rows = []
    for name, shape, classes, width, blocks, board in MODELS:
        model = build_model(shape[0], classes, width, blocks)
        params = sum(p.numel() for p in model.parameters())
        x, y = synthetic_images(shape, classes, 192)
        train(model, x, y, args.steps)
        onnx_path = export(model, shape, root / f"{name}.onnx")
        calibration = root / f"{name}-calibration.npy"
        np.save(calibration, x[:100])
        start = time.monotonic()
        result = convert_onnx(onnx_path, board=board, calibration=calibration, out=root / name)
        seconds = time.monotonic() - start
        r = result.report
        rows.append((name, params, shape, board, seconds, r))
    print(f"{'model':<14}{'params':>9} {'input':<10}{'board':<11}{'onnx2tf s':>10}{'total s':>9}"
          f"{'float':>8}{'max|d|':>9}{'int8':>8}{'TFLM':>8}{'int8 B':>9}{'float B':>9}"
          f"{'arena B':>9}  fits")  # fmt: skip
    for name, params, shape, board, seconds, r in rows:
        size = "x".join(str(d) for d in shape)
        print(
            f"{name:<14}{params:>9,} {size:<10}{board:<11}{r.conversion_seconds or 0:>10.1f}"
            f"{seconds:>9.1f}{pct(r.float_agreement):>8}{r.float_max_abs_diff or 0:>9.1e}"
            f"{pct(r.int8_agreement):>8}{pct(r.tflm_agreement):>8}"
            f"{r.model_bytes or 0:>9,}{r.model_bytes_float32 or 0:>9,}"
            f"{r.arena_bytes or 0:>9,}  {r.fits}"
        )
    worst = max(seconds for *_, seconds, _ in rows)
    lowest = min(r.float_agreement or 0.0 for *_, r in rows)
    print(f"slowest conversion {worst:.1f} s (target < 30 s on 2 cores)")
    print(f"lowest float top-1 agreement {pct(lowest)} (target >= 99%)")
    first = rows[0][5].agreement
    samples = first.float_.samples if first and first.float_ else None
    print(f"agreement measured on {samples} inputs per model")
    if args.keep:
        print(f"projects kept in {root}")
    else:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
