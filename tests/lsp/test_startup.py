"""The server starts fast: nothing heavy (TensorFlow, Keras, TFLM, onnx) on its start-up path."""

from __future__ import annotations

import json
import subprocess
import sys

from tests.conftest import REPO

PROBE = """
import json, sys, time
start = time.perf_counter()
from tinyforge.lsp.server import create_server
server = create_server()
from tinyforge.lsp.model_checks import analyse
from tinyforge.project import load_context
from pathlib import Path
path = Path(sys.argv[1])
analyse(path.read_text(), load_context(path))
HEAVY = {"tensorflow", "keras", "tflite_micro", "tflite", "onnx", "onnxruntime", "torch",
         "sklearn", "anthropic"}
heavy = sorted(m for m in sys.modules if m.split(".")[0] in HEAVY)
print(json.dumps({"seconds": time.perf_counter() - start, "heavy": heavy}))
"""


def test_no_heavy_imports_on_startup_or_analysis() -> None:
    result = subprocess.run(
        [sys.executable, "-c", PROBE, str(REPO / "fixtures/lsp/over_budget/model.py")],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    figures = json.loads(result.stdout.strip().splitlines()[-1])
    assert figures["heavy"] == []


# What a document's analysis does not need either: these load when a command first needs them.
START_PROBE = """
import json, sys
from tinyforge.lsp.server import create_server
create_server()
print(json.dumps(sorted(sys.modules)))
"""
LATER = {"numpy", "jinja2", "tinyforge.pipeline", "tinyforge.plan", "tinyforge.device.verify"}


def test_the_server_starts_without_the_pipeline_numpy_or_the_templates() -> None:
    result = subprocess.run(
        [sys.executable, "-c", START_PROBE], capture_output=True, text=True, timeout=60, check=True
    )
    loaded = set(json.loads(result.stdout.strip().splitlines()[-1]))
    assert "tinyforge.lsp.model_checks" in loaded  # the probe saw the features registered
    assert LATER & loaded == set()


def test_tinyforge_lsp_subcommand_speaks_lsp() -> None:
    body = json.dumps(
        {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {"capabilities": {}}}
    )
    message = f"Content-Length: {len(body)}\r\n\r\n{body}".encode()
    proc = subprocess.Popen(
        [sys.executable, "-m", "tinyforge.cli", "lsp"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        assert proc.stdin and proc.stdout
        proc.stdin.write(message)
        proc.stdin.flush()
        header = proc.stdout.readline()
        assert header.startswith(b"Content-Length:")
        length = int(header.split(b":")[1])
        while proc.stdout.readline() not in (b"\r\n", b"\n", b""):
            pass
        reply = json.loads(proc.stdout.read(length))
        assert reply["id"] == 1
        assert reply["result"]["serverInfo"]["name"] == "tinyforge"
        assert reply["result"]["capabilities"]["codeActionProvider"]
    finally:
        proc.kill()
        proc.wait()
