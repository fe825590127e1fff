"""Benchmark: the language server over stdio, as an editor drives it.

Prints time to initialized, diagnostics latency after didChange on a 300-line model script
(p50/p95 over 200 edits), code-action latency, and the server's idle RSS.
Targets: < 1 s, p95 < 150 ms, < 150 MB.

Then the work behind one keystroke: VS Code sends didChange, then asks for the code actions
at the cursor and the code lenses of the document; typing into a project's train.py, the
server counts (in its own process) the model-script parses (find_models), static estimates
and tinyforge.toml reads those keystrokes cost.
"""

from __future__ import annotations

import asyncio
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import psutil
from lsprotocol import types as lsp
from pygls.lsp.client import LanguageClient

MODEL = """\
import keras
from keras import layers

IMAGE = (96, 96, 1)


def build(num_classes: int = 4) -> keras.Model:
    inputs = keras.Input(shape=IMAGE)
    x = layers.Conv2D({filters}, 3, strides=2, padding="same", activation="relu")(inputs)
    x = layers.DepthwiseConv2D(3, padding="same", activation="relu")(x)
    x = layers.Conv2D(32, 1, activation="relu")(x)
    x = layers.MaxPooling2D(2)(x)
    x = layers.SeparableConv2D(64, 3, padding="same", activation="relu")(x)
    x = layers.GlobalAveragePooling2D()(x)
    x = layers.Dropout(0.2)(x)
    outputs = layers.Dense(num_classes, activation="softmax")(x)
    return keras.Model(inputs, outputs)
"""


def script(filters: int) -> str:
    filler = "".join(
        f"\n\ndef helper_{i}(values: list[float]) -> float:\n    return sum(values) / {i + 1}\n"
        for i in range(76)
    )
    return MODEL.format(filters=filters) + filler


async def main() -> None:
    folder = Path(tempfile.mkdtemp(prefix="tinyforge-lsp-bench-"))
    path = folder / "model.py"
    uri = path.as_uri()
    client = LanguageClient("bench", "1")
    published: dict[int, float] = {}

    @client.feature(lsp.TEXT_DOCUMENT_PUBLISH_DIAGNOSTICS)
    def on_diagnostics(params: lsp.PublishDiagnosticsParams) -> None:
        if params.version is not None:
            published[params.version] = time.perf_counter()

    start = time.perf_counter()
    await client.start_io(sys.executable, "-m", "tinyforge.lsp")
    await client.initialize_async(
        lsp.InitializeParams(
            capabilities=lsp.ClientCapabilities(),
            root_uri=folder.as_uri(),
            initialization_options={"board": "nano33ble"},
        )
    )
    client.initialized(lsp.InitializedParams())
    ready = time.perf_counter() - start

    text = script(16)
    lines = len(text.splitlines())
    client.text_document_did_open(
        lsp.DidOpenTextDocumentParams(
            text_document=lsp.TextDocumentItem(uri=uri, language_id="python", version=1, text=text)
        )
    )
    while 1 not in published:
        await asyncio.sleep(0.005)
    latencies = []
    for version in range(2, 202):
        sent = time.perf_counter()
        client.text_document_did_change(
            lsp.DidChangeTextDocumentParams(
                text_document=lsp.VersionedTextDocumentIdentifier(uri=uri, version=version),
                content_changes=[
                    lsp.TextDocumentContentChangeWholeDocument(text=script(8 + version % 120))
                ],
            )
        )
        while version not in published:
            await asyncio.sleep(0.001)
        latencies.append(published[version] - sent)
    action_times = []
    for _ in range(20):
        sent = time.perf_counter()
        await client.text_document_code_action_async(
            lsp.CodeActionParams(
                text_document=lsp.TextDocumentIdentifier(uri=uri),
                range=lsp.Range(
                    start=lsp.Position(line=8, character=4), end=lsp.Position(line=8, character=4)
                ),
                context=lsp.CodeActionContext(diagnostics=[]),
            )
        )
        action_times.append(time.perf_counter() - sent)
    await asyncio.sleep(1.0)
    rss = psutil.Process(client._server.pid).memory_info().rss  # the server's own process
    await client.shutdown_async(None)
    client.exit(None)
    await client.stop()

    ms = sorted(1000 * x for x in latencies)
    print(f"time to initialized       {1000 * ready:8.1f} ms   (target < 1000 ms)")
    print(
        f"diagnostics after change  p50 {statistics.median(ms):.1f} ms  "
        f"p95 {ms[int(0.95 * len(ms)) - 1]:.1f} ms  over {len(ms)} edits of a {lines}-line "
        "script   (target p95 < 150 ms)"
    )
    print(f"code action               p50 {1000 * statistics.median(action_times):.1f} ms")
    print(f"idle RSS                  {rss / 2**20:8.1f} MB   (target < 150 MB)")
    await keystrokes()


# The server with counters around the work a keystroke can cost, read by a `bench.counts`
# command. Patched before the server's modules import these names.
COUNTING_SERVER = """
import functools
from tinyforge.memory import keras_layers, keras_source
from tinyforge.spec import ProjectSpec

counts = {"messages": 0, "find_models": 0, "estimate": 0, "spec_reads": 0}

def counted(key, fn):
    @functools.wraps(fn)
    def call(*args, **kwargs):
        counts[key] += 1
        return fn(*args, **kwargs)
    return call

keras_source.find_models = counted("find_models", keras_source.find_models)
keras_layers.estimate = counted("estimate", keras_layers.estimate)
ProjectSpec.load = classmethod(counted("spec_reads", ProjectSpec.load.__func__))

from tinyforge.lsp.server import create_server

server = create_server()
protocol = server.protocol
protocol._handle_request = counted("messages", protocol._handle_request)
protocol._handle_notification = counted("messages", protocol._handle_notification)
server.command("bench.counts")(lambda ls, *args: dict(counts))
server.start_io()
"""

KEYSTROKES = 60


async def keystrokes() -> None:
    """Type a comment into a project's train.py as VS Code does: per keystroke a didChange,
    then codeAction at the cursor and codeLens; count what the server did for them."""
    from tinyforge import pipeline

    folder = Path(tempfile.mkdtemp(prefix="tinyforge-lsp-keys-"))
    project = folder / "digits"
    pipeline.new_project("Recognize handwritten digits on an Arduino Nano 33 BLE Sense", project)
    script = project / "train.py"
    uri = script.as_uri()
    text = script.read_text()
    line = next(n for n, t in enumerate(text.splitlines()) if "Conv2D" in t or "Dense" in t)
    client = LanguageClient("bench", "1")
    published: list[int | None] = []
    client.feature(lsp.TEXT_DOCUMENT_PUBLISH_DIAGNOSTICS)(lambda p: published.append(p.version))
    await client.start_io(sys.executable, "-c", COUNTING_SERVER)
    await client.initialize_async(
        lsp.InitializeParams(capabilities=lsp.ClientCapabilities(), root_uri=folder.as_uri())
    )
    client.initialized(lsp.InitializedParams())
    client.text_document_did_open(
        lsp.DidOpenTextDocumentParams(
            text_document=lsp.TextDocumentItem(uri=uri, language_id="python", version=1, text=text)
        )
    )
    while 1 not in published:
        await asyncio.sleep(0.005)
    before = await client.workspace_execute_command_async(
        lsp.ExecuteCommandParams(command="bench.counts")
    )
    lines = text.splitlines(keepends=True)
    typed = "# a comment typed one key at a time....................."[:KEYSTROKES].ljust(
        KEYSTROKES, "."
    )
    started = time.perf_counter()
    for n in range(1, KEYSTROKES + 1):
        edited = "".join(lines[:line]) + typed[:n] + "\n" + "".join(lines[line:])
        cursor = lsp.Position(line=line, character=n)
        document = lsp.TextDocumentIdentifier(uri=uri)
        client.text_document_did_change(
            lsp.DidChangeTextDocumentParams(
                text_document=lsp.VersionedTextDocumentIdentifier(uri=uri, version=n + 1),
                content_changes=[lsp.TextDocumentContentChangeWholeDocument(text=edited)],
            )
        )
        await asyncio.gather(
            client.text_document_code_action_async(
                lsp.CodeActionParams(
                    text_document=document,
                    range=lsp.Range(start=cursor, end=cursor),
                    context=lsp.CodeActionContext(diagnostics=[]),
                )
            ),
            client.text_document_code_lens_async(lsp.CodeLensParams(text_document=document)),
        )
        await asyncio.sleep(0.05)  # a fast typist: 20 keys a second
    while KEYSTROKES + 1 not in published:
        await asyncio.sleep(0.01)
    took = time.perf_counter() - started
    after = await client.workspace_execute_command_async(
        lsp.ExecuteCommandParams(command="bench.counts")
    )
    await client.shutdown_async(None)
    client.exit(None)
    await client.stop()
    # The second bench.counts request is not the keystrokes'.
    per_key = {k: (after[k] - before[k] - (k == "messages")) / KEYSTROKES for k in after}
    print(
        f"per keystroke ({KEYSTROKES} keys in {took:.1f} s into train.py): "
        f"{per_key['messages']:.2f} messages → {per_key['find_models']:.2f} parses, "
        f"{per_key['estimate']:.2f} estimates, {per_key['spec_reads']:.2f} tinyforge.toml reads"
    )
    print(json.dumps({"keystrokes": KEYSTROKES, "per_keystroke": per_key}))


if __name__ == "__main__":
    asyncio.run(main())
