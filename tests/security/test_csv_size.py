"""CSVs are streamed, and one too large gets one sentence."""

from __future__ import annotations

import tracemalloc
from pathlib import Path

import pytest

from tinyforge import datasets
from tinyforge.errors import DatasetError
from tinyforge.health.data import read_csv
from tinyforge.spec import ProjectSpec

pytestmark = pytest.mark.security


def _spec() -> ProjectSpec:
    return ProjectSpec.from_dict(
        {
            "task": "sensor_classification",
            "board": "nano33ble",
            "input_shape": [3],
            "dataset": {"kind": "csv", "path": "data.csv", "label_column": "label"},
            "budget": {"ram_bytes": 262144, "flash_bytes": 983040},
        }
    )


def _csv(folder: Path, rows: int) -> Path:
    path = folder / "data.csv"
    with path.open("w") as f:
        f.write("a,b,c,label\n")
        for i in range(rows):
            f.write(f"{i},{i * 0.5},{i % 7},{'yes' if i % 2 else 'no'}\n")
    return path


def test_validation_streams_the_csv(tmp_path: Path) -> None:
    path = _csv(tmp_path, 100_000)  # ~2.5 MB; ~50 MB as a list of dicts
    tracemalloc.start()
    try:
        summary = datasets.validate(_spec(), tmp_path)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert summary.classes == ["no", "yes"] and summary.samples == 100_000
    assert peak < path.stat().st_size, f"peak {peak:,} bytes for a {path.stat().st_size:,} file"


def test_a_csv_too_large_is_one_sentence(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _csv(tmp_path, 100)
    monkeypatch.setattr(datasets, "MAX_CSV_BYTES", 1000)
    with pytest.raises(DatasetError) as failed:
        datasets.validate(_spec(), tmp_path)
    message = str(failed.value)
    assert "GB TinyForge trains on from a CSV" in message and len(message.splitlines()) == 1


def test_the_health_check_streams_the_csv(tmp_path: Path) -> None:
    path = _csv(tmp_path, 100_000)  # ~2 MB; ~58 MB as a list of dicts
    tracemalloc.start()
    try:
        header, x, labels = read_csv(path, "label")
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert header == ["a", "b", "c"] and x.shape == (100_000, 3)
    assert x[3].tolist() == [3.0, 1.5, 3.0] and labels is not None and labels[3] == "yes"
    # About the result itself (2.4 MB of float64, a pointer per label), not 30 times the file.
    assert peak < 3 * path.stat().st_size, f"peak {peak:,} bytes for a {path.stat().st_size:,} file"
    header, x, _ = read_csv(path, "label", ["c", "a"])  # the spec's selection, in its order
    assert header == ["c", "a"] and x[4].tolist() == [4.0, 4.0]


def test_a_csv_too_large_for_the_health_check_is_one_sentence(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = _csv(tmp_path, 100)
    monkeypatch.setattr(datasets, "MAX_CSV_BYTES", 1000)
    with pytest.raises(DatasetError, match="GB TinyForge trains on from a CSV"):
        read_csv(path, "label")
