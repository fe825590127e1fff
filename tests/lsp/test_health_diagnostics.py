"""The last build's health findings (report.json) as diagnostics on tinyforge.toml and train.py."""

from __future__ import annotations

import json
from pathlib import Path

from lsprotocol import types as lsp
from pytest_lsp import LanguageClient

from tests.lsp.conftest import diagnostics_for, open_doc

SPEC = """\
task = "sensor_classification"
board = "nano33ble"
input_shape = [3]
quantization = "int8"

[dataset]
kind = "csv"
path = "readings.csv"
label_column = "kind"

[budget]
ram_bytes = 262144
flash_bytes = 983040

[training]
epochs = 15
"""

FINDINGS = [
    {
        "severity": "error",
        "code": "baseline.chance",
        "message": "The network's test accuracy 25% ≈ chance 25% for 4 balanced classes, and "
        "k-nearest neighbours (25%) and logistic regression (23.1%) do no better: the data "
        "does not predict the label.",
        "fix": "Check that each label belongs to its row or image.",
        "where": "dataset",
    },
    {
        "severity": "warning",
        "code": "baseline.beaten",
        "message": "Logistic regression reaches 95% on the same split, the network 70%.",
        "fix": "Try more epochs.",
        "where": "train.py",
    },
    {
        "severity": "warning",
        "code": "quant.saturation-test",
        "message": "9% of the values of tensor 3 'dense/MatMul' are clipped.",
        "fix": "Calibrate on more samples.",
        "where": "tensor 3 'dense/MatMul'",
    },
]


def write_report(project: Path) -> None:
    report = {"project": "p", "health": {"ok": False, "findings": FINDINGS}}
    (project / "report.json").write_text(json.dumps(report))


async def test_spec_shows_the_last_builds_health(client: LanguageClient, tmp_path: Path) -> None:
    write_report(tmp_path)
    uri = open_doc(client, tmp_path / "tinyforge.toml", SPEC, "toml")
    found = {d.code: d for d in await diagnostics_for(client, uri)}
    assert set(found) == {"baseline.chance", "baseline.beaten", "quant.saturation-test"}
    chance = found["baseline.chance"]
    assert chance.severity == lsp.DiagnosticSeverity.Error
    assert chance.range.start.line == 7  # [dataset] path
    assert chance.message.startswith("Last build: The network's test accuracy 25%")
    assert "Check that each label belongs" in chance.message
    assert found["quant.saturation-test"].range.start.line == 3  # quantization
    assert found["baseline.beaten"].range.start.line == 15  # [training] epochs
    assert found["baseline.beaten"].severity == lsp.DiagnosticSeverity.Warning


async def test_training_script_shows_set_up_findings(
    client: LanguageClient, tmp_path: Path
) -> None:
    write_report(tmp_path)
    script = '"""Train."""\n\nimport numpy as np\n\nEPOCHS = 15\nBATCH_SIZE = 32\n'
    uri = open_doc(client, tmp_path / "train.py", script)
    found = [d for d in await diagnostics_for(client, uri) if d.source == "tinyforge"]
    health = [d for d in found if d.code == "baseline.beaten"]
    assert len(health) == 1 and health[0].range.start.line == 4  # EPOCHS =
    assert not [d for d in found if d.code in ("baseline.chance", "quant.saturation-test")]


async def test_no_report_no_health_diagnostics(client: LanguageClient, tmp_path: Path) -> None:
    uri = open_doc(client, tmp_path / "tinyforge.toml", SPEC, "toml")
    assert await diagnostics_for(client, uri) == []
