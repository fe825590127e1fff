"""The typed contracts of report.json and inspect --json (tinyforge.report): the JSON keeps its
shape, old and unknown keys survive a read and a write, and the schema the client's TypeScript
types are generated from is the one checked in."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from pydantic import ValidationError

from tests.conftest import REPO, run_cli
from tinyforge.check import Verdict, Violation
from tinyforge.device.report import DeviceReport
from tinyforge.report import (
    BuildReport,
    DeviceNotMeasured,
    InspectReport,
    build_report,
    current_report,
    json_schema,
    load_findings,
    read_report,
)

SCHEMA_FILE = REPO / "client" / "schema" / "reports.schema.json"

VERDICT = Verdict(
    fits=False,
    ram_bytes_estimate=300_000,
    flash_bytes_estimate=200_000,
    ram_parts={"tensor arena": 250_000, "TFLM runtime": 2048},
    flash_parts={"model": 100_000},
    budget={"ram_bytes": 262_144, "flash_bytes": 983_040},
    violations=[Violation("ram", 300_000, 262_144, "tensor arena 244.1 KB", "RAM over")],
)


def test_only_what_a_producer_set_is_written_and_none_is_null() -> None:
    report = BuildReport(project="p", board="nano33ble", int8_accuracy=None, notices=[])
    report.set_verdict(VERDICT)
    data = report.to_json()
    assert data["int8_accuracy"] is None
    assert "onnx" not in data and "health" not in data and "device" not in data
    assert list(data)[:2] == ["project", "board"]  # the subject first, for a reader
    assert data["violations"] == [
        {
            "resource": "ram",
            "figure": 300_000,
            "limit": 262_144,
            "biggest": "tensor arena 244.1 KB",
            "message": "RAM over",
        }
    ]
    assert data["budget"] == {"ram_bytes": 262_144, "flash_bytes": 983_040}


def test_a_report_with_keys_it_does_not_know_reads_and_writes_back_unchanged(
    tmp_path: Path,
) -> None:
    raw = {
        "project": "digits",
        "board": "nano33ble",
        "fits": True,
        "arena_bytes_target": 4096,
        "device": {"measured": False, "reason": "skipped (--no-device)."},
        "health": {"ok": True, "findings": [], "data": None, "seconds": 0.5},
        "a_newer_key": {"nested": [1, 2]},
    }
    (tmp_path / "report.json").write_text(json.dumps(raw), encoding="utf-8")
    report = read_report(tmp_path)
    assert report is not None
    assert report.arena_bytes_target == 4096 and report.healthy and not report.measured
    assert isinstance(report.device, DeviceNotMeasured)
    report.write(tmp_path)
    assert json.loads((tmp_path / "report.json").read_text("utf-8")) == raw


def test_the_device_section_is_told_apart_by_measured() -> None:
    skipped = DeviceNotMeasured(reason="no toolchain")
    assert skipped.to_json() == {"measured": False, "reason": "no toolchain"}
    report = BuildReport.model_validate({"project": "p", "device": skipped.to_json()})
    assert isinstance(report.device, DeviceNotMeasured)
    with pytest.raises(ValidationError):  # measured: true needs the measured figures
        BuildReport.model_validate({"project": "p", "device": {"measured": True}})
    assert "measured" in DeviceReport.model_fields


def test_unreadable_or_foreign_reports_are_none(tmp_path: Path) -> None:
    assert read_report(tmp_path) is None
    (tmp_path / "report.json").write_text("[1, 2]", encoding="utf-8")
    assert read_report(tmp_path) is None
    (tmp_path / "report.json").write_text("{not json", encoding="utf-8")
    assert read_report(tmp_path) is None
    assert load_findings(tmp_path / "report.json") == []


def test_a_report_older_than_the_training_script_is_not_current(tmp_path: Path) -> None:
    import os

    BuildReport(project="p", fits=True).write(tmp_path)
    script = tmp_path / "train.py"
    script.write_text("# edited after the build\n", encoding="utf-8")
    built = (tmp_path / "report.json").stat().st_mtime
    os.utime(script, (built + 10, built + 10))
    assert current_report(tmp_path) is None
    os.utime(script, (built - 10, built - 10))
    current = current_report(tmp_path)
    assert current is not None and current.fits is True


def test_build_report_takes_field_names_only() -> None:
    class Model:
        model_bytes = 1000

        @staticmethod
        def op_counts() -> dict[str, int]:
            return {"FULLY_CONNECTED": 2}

    common = dict(
        project="p",
        board="b",
        quantization="int8",
        classes=["a", "b"],
        params=10,
        model=Model(),
        arena=None,
        verdict=VERDICT,
        notices=[],
        stage_seconds={},
    )
    # No arena figure (a model TFLM cannot run): no target arena, no RAM figure.
    report = build_report(**common, arena_target=0, runs_on_tflm=False)  # type: ignore[arg-type]
    assert report.arena_bytes_target is None and report.ram_bytes_estimate is None
    assert report.flash_bytes_estimate == 200_000 and report.runs_on_tflm is False
    with pytest.raises(TypeError, match="arena_bytes_targt"):
        build_report(**common, arena_target=1, arena_bytes_targt=5)  # type: ignore[arg-type]


def test_inspect_report_leads_with_the_model() -> None:
    report = InspectReport(model_bytes=10, notes=[])
    report.model, report.format = "m.tflite", "tflite"
    assert list(report.to_json()) == ["model", "format", "model_bytes", "notes"]


def test_the_checked_in_schema_is_the_models() -> None:
    """client/schema/reports.schema.json is what the client's types are generated from
    (client/gen-types.mjs; `make client-check` checks the generated file against it)."""
    expected = json.dumps(json_schema(), indent=2) + "\n"
    assert SCHEMA_FILE.read_text(encoding="utf-8") == expected, (
        "regenerate it: tinyforge report --schema > client/schema/reports.schema.json, "
        "then npm run types"
    )


def test_report_schema_on_the_command_line() -> None:
    result = run_cli("report", "--schema")
    assert result.returncode == 0, result.stderr
    schema = json.loads(result.stdout)
    assert {"BuildReport", "InspectReport", "ProjectStatus", "InspectView"} <= set(schema["$defs"])
