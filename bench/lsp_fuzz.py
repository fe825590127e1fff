"""Fuzz: random and pathological edits and selections against the language server over stdio.

Each step replaces a document (a Python script, tinyforge.toml or platformio.ini) with random
fragments or one of the pathological generators (`X = X * X` lines, doubling tuples, a huge
number to select, a file over the size limit, deep nesting, long sums, nested TOML arrays,
thousands of layers, long lines of spaces or brackets), then sends a hover, a code lens and
a code action on a random range. It counts error replies (the server's "crashes": every request
must be answered with a result) and requests over 1 s, and prints the latency (p50, p99, max)
and the server's peak RSS.

    python bench/lsp_fuzz.py [--steps 10000] [--seed 0]

Targets (issue 15): 0 errors, 0 requests over 1 s, RSS under 300 MB.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

import psutil
from lsprotocol import types as lsp
from pygls.lsp.client import LanguageClient

FRAGMENTS = [
    "import keras\nfrom keras import layers\n",
    "model = keras.Sequential([\n",
    "    keras.Input(shape=(28, 28, 1)),\n",
    "    layers.Conv2D(16, 3, activation='relu'),\n",
    "    layers.Dense(UNITS)\n])\n",
    "x = layers.Dense(UNITS)(x)\n",
    "inputs = keras.Input(shape=(96, 96, 3))\n",
    "# tinyml: recognise handwritten digits on a Pi Pico\n",
    "[budget]\nram_bytes = -5\n",
    'board = "nano33ble"\n',
    "[env:x]\nboard = \nboard_upload.maximum_ram_size = -1\n",
    "lib_deps =\n    foo\n",
    "def f(:\n",
    "\x00\ufffd\n",
    "[/red] ]]] [[[\n",
]


def squares(rng: random.Random) -> str:
    return "UNITS = 3\n" + "UNITS = UNITS * UNITS\n" * rng.randint(20, 60) + FRAGMENTS[0]


def doubles(rng: random.Random) -> str:
    return "T = (1,)\n" + "T = T + T\n" * rng.randint(30, 80) + "UNITS = len(T)\n"


def huge_number(rng: random.Random) -> str:
    return "# " + "9" * rng.randint(5_000, 30_000) + "\n"


def oversized(rng: random.Random) -> str:
    return "x = 1\n" * rng.randint(170_000, 200_000)


def nested(rng: random.Random) -> str:
    depth = rng.randint(50, 400)
    return "UNITS = " + "(" * depth + "1" + ")" * depth + "\n" + FRAGMENTS[1] + FRAGMENTS[4]


def long_sum(rng: random.Random) -> str:
    return "UNITS = " + " + ".join(["1"] * rng.randint(1_000, 50_000)) + "\n"


def nested_toml(rng: random.Random) -> str:
    depth = rng.randint(100, 5_000)
    return "a = " + "[" * depth + "]" * depth + "\n"


def many_layers(rng: random.Random) -> str:
    layers = "    keras.layers.Dense(8),\n" * rng.randint(100, 5_000)
    return f"{FRAGMENTS[0]}model = keras.Sequential([\n    keras.Input(shape=(4,)),\n{layers}])\n"


def long_line(rng: random.Random) -> str:
    """What line-wise and multi-line regexes meet at their worst (each was quadratic once)."""
    n = rng.randint(20_000, 200_000)
    return rng.choice(
        [
            "# tinyml: a" + " " * n + "b\n",
            "[" * n + "\n",
            "conv = tf.lite.TFLiteConverter.from_keras_model(model)\n" + "\n" * n,
            "torch.onnx.export(" * (n // 18) + "\n",
            "x" * n + " = " + "y" * n + "\n",
        ]
    )


PATHOLOGICAL = [
    squares,
    doubles,
    huge_number,
    oversized,
    nested,
    long_sum,
    nested_toml,
    many_layers,
    long_line,
]
NAMES = ["model.py", "tinyforge.toml", "platformio.ini"]


def document(rng: random.Random) -> str:
    if rng.random() < 0.25:
        generator = rng.choice(PATHOLOGICAL)
        document.kind = generator.__name__  # type: ignore[attr-defined]
        return generator(rng)
    document.kind = "random"  # type: ignore[attr-defined]
    parts = rng.randint(1, 8)
    noise = "".join(chr(rng.randint(32, 0x2FF)) for _ in range(rng.randint(0, 40)))
    return "".join(rng.choice(FRAGMENTS) for _ in range(parts)) + noise


def random_range(rng: random.Random, text: str) -> lsp.Range:
    lines = max(text.count("\n"), 1)
    a, b = sorted(rng.randint(0, lines + 3) for _ in range(2))
    return lsp.Range(
        start=lsp.Position(line=a, character=rng.randint(0, 40)),
        end=lsp.Position(line=b, character=rng.randint(0, 40_000)),
    )


def _peak_rss(pid: int) -> int | None:
    """The process's peak RSS (Linux's VmHWM): samples every 50 steps can miss a spike."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    for line in status.splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    return None


async def timed(results: list[float], errors: list[str], request: object) -> None:
    start = time.perf_counter()
    try:
        await asyncio.wait_for(request, timeout=30)  # type: ignore[arg-type]
    except Exception as exc:  # an error reply or no reply: both count
        errors.append(f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}")
    results.append(time.perf_counter() - start)


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=10_000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    rng = random.Random(args.seed)
    folder = Path(tempfile.mkdtemp(prefix="tinyforge-lsp-fuzz-"))
    client = LanguageClient("fuzz", "1")

    @client.feature(lsp.TEXT_DOCUMENT_PUBLISH_DIAGNOSTICS)
    def on_diagnostics(params: lsp.PublishDiagnosticsParams) -> None:
        pass

    await client.start_io(sys.executable, "-m", "tinyforge.lsp")
    await client.initialize_async(
        lsp.InitializeParams(
            capabilities=lsp.ClientCapabilities(),
            root_uri=folder.as_uri(),
            initialization_options={"board": "nano33ble"},
        )
    )
    client.initialized(lsp.InitializedParams())
    server = psutil.Process(client._server.pid)  # type: ignore[union-attr]
    versions: dict[str, int] = {}
    times: list[float] = []
    errors: list[str] = []
    rss_max = 0
    started = time.perf_counter()
    for step in range(args.steps):
        name = rng.choice(NAMES)
        uri = (folder / f"f{step % 7}" / name).as_uri()
        text = document(rng)
        version = versions.get(uri, 0) + 1
        versions[uri] = version
        if version == 1:
            client.text_document_did_open(
                lsp.DidOpenTextDocumentParams(
                    text_document=lsp.TextDocumentItem(
                        uri=uri, language_id="python", version=1, text=text
                    )
                )
            )
        else:
            client.text_document_did_change(
                lsp.DidChangeTextDocumentParams(
                    text_document=lsp.VersionedTextDocumentIdentifier(uri=uri, version=version),
                    content_changes=[lsp.TextDocumentContentChangeWholeDocument(text=text)],
                )
            )
        doc = lsp.TextDocumentIdentifier(uri=uri)
        where = random_range(rng, text)
        await timed(
            times,
            errors,
            client.text_document_hover_async(
                lsp.HoverParams(text_document=doc, position=where.start)
            ),
        )
        await timed(
            times,
            errors,
            client.text_document_code_lens_async(lsp.CodeLensParams(text_document=doc)),
        )
        await timed(
            times,
            errors,
            client.text_document_code_action_async(
                lsp.CodeActionParams(
                    text_document=doc, range=where, context=lsp.CodeActionContext(diagnostics=[])
                )
            ),
        )
        slow = [t for t in times[-3:] if t > 1.0]
        if slow:
            kind = document.kind  # type: ignore[attr-defined]
            print(f"step {step}: {name} ({kind}) answered in {max(slow):.2f} s", flush=True)
        if step % 50 == 0:
            rss_max = max(rss_max, server.memory_info().rss)
            print(f"step {step}: {len(errors)} errors, max {max(times):.3f} s", flush=True)
    rss_max = max(rss_max, server.memory_info().rss)
    rss_peak = _peak_rss(server.pid) or rss_max
    await client.shutdown_async(None)
    client.exit(None)
    await client.stop()
    ms = sorted(1000 * t for t in times)
    over = sum(t > 1.0 for t in times)
    print(
        f"steps                 {args.steps} ({len(times)} requests) in "
        f"{time.perf_counter() - started:.0f} s"
    )
    print(f"error replies         {len(errors)}   (target 0)")
    for error in sorted(set(errors))[:10]:
        print(f"    {error}")
    print(f"requests over 1 s     {over}   (target 0)")
    print(
        f"latency               p50 {statistics.median(ms):.1f} ms  "
        f"p99 {ms[int(0.99 * len(ms)) - 1]:.1f} ms  max {ms[-1]:.1f} ms"
    )
    print(f"server RSS peak       {rss_peak / 2**20:.0f} MB   (target < 300 MB)")


if __name__ == "__main__":
    asyncio.run(main())
