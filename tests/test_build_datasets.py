"""An image folder and a CSV each go through the whole build."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests.conftest import FRUIT_CSV, run_cli, set_epochs


def make_image_folder(root: Path, per_class: int = 40, size: int = 20) -> Path:
    """Three visually distinct classes of real PNG files, with noise so it is not trivial."""
    rng = np.random.default_rng(1)
    root.mkdir(parents=True)
    yy, xx = np.mgrid[0:size, 0:size]
    patterns = {
        "horizontal": (yy // 3) % 2,
        "vertical": (xx // 3) % 2,
        "blank": np.zeros((size, size)),
    }
    for name, pattern in patterns.items():
        (root / name).mkdir()
        for i in range(per_class):
            shifted = np.roll(pattern, rng.integers(0, 6), axis=int(rng.integers(0, 2)))
            pixels = np.clip(shifted * 180 + rng.normal(40, 25, (size, size)), 0, 255)
            Image.fromarray(pixels.astype(np.uint8), mode="L").save(root / name / f"{i:03d}.png")
    # One broken file must be skipped, not crash the build.
    (root / "blank" / "broken.png").write_bytes(b"not a png")
    return root


@pytest.mark.slow
def test_image_folder_builds(tmp_path: Path) -> None:
    images = make_image_folder(tmp_path / "patterns")
    project = tmp_path / "proj"
    request = f"Classify 16x16 grayscale images from the folder {images} on a Raspberry Pi Pico"
    new = run_cli("new", request, "--out", str(project))
    assert new.returncode == 0, new.stdout + new.stderr
    set_epochs(project, 15)
    build = run_cli("build", str(project), "--json")
    assert build.returncode == 0, build.stdout + build.stderr
    report = json.loads(build.stdout)
    assert report["board"] == "pico"
    assert report["classes"] == ["blank", "horizontal", "vertical"]
    assert report["int8_accuracy"] >= 0.8
    assert report["arena_bytes"] > 0
    main = (project / "src/main.cpp").read_text()
    for name in ("blank", "horizontal", "vertical"):
        assert f'"{name}"' in main


@pytest.mark.slow
def test_csv_builds(tmp_path: Path) -> None:
    assert FRUIT_CSV.is_file(), f"shared data missing: {FRUIT_CSV}"
    project = tmp_path / "fruit"
    request = (
        f"Classify fruit from RGB colour sensor readings in {FRUIT_CSV} "
        "(label column Fruit) on an Arduino Nano 33 BLE Sense"
    )
    new = run_cli("new", request, "--out", str(project))
    assert new.returncode == 0, new.stdout + new.stderr
    spec = (project / "tinyforge.toml").read_text()
    assert 'kind = "csv"' in spec and 'label_column = "Fruit"' in spec
    build = run_cli("build", str(project))
    assert build.returncode == 0, build.stdout + build.stderr
    report = json.loads((project / "report.json").read_text())
    assert report["classes"] == ["apple", "banana", "orange"]
    # Features are standardised inside the model, so raw sensor readings learn well.
    assert report["int8_accuracy"] >= 0.85
    assert report["fits"]
