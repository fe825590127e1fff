"""Property: whatever documents and edits arrive, the server stays up and keeps answering."""

from __future__ import annotations

import itertools
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from lsprotocol import types as lsp
from pytest_lsp import LanguageClient

from tests.lsp.conftest import change_doc, diagnostics_for, open_doc

FRAGMENTS = [
    "import keras\nfrom keras import layers\n",
    "model = keras.Sequential([\n",
    "    layers.Conv2D(16, 3, activation='relu'),\n",
    "    layers.Dense(10)\n])\n",
    "x = layers.Dense(UNITS)(x)\n",
    "inputs = keras.Input(shape=(96, 96, 3))\n",
    "[budget]\nram_bytes = -5\n",
    'board = "nano33ble"\n',
    "[env:x]\nboard = \n",
    "lib_deps =\n    foo\n",
    "def f(:\n",
    "\x00\ufffd\n",
]
documents = st.lists(
    st.one_of(st.text(max_size=200), st.sampled_from(FRAGMENTS)), min_size=1, max_size=6
).map("".join)
_counter = itertools.count()


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    name=st.sampled_from(["model.py", "tinyforge.toml", "platformio.ini"]),
    texts=st.lists(documents, min_size=1, max_size=4),
)
async def test_random_documents_and_edits(
    client: LanguageClient, tmp_path: Path, name: str, texts: list[str]
) -> None:
    folder = tmp_path / f"case{next(_counter)}"
    folder.mkdir()
    uri = open_doc(client, folder / name, texts[0])
    await diagnostics_for(client, uri)
    for version, text in enumerate(texts[1:], start=2):
        change_doc(client, uri, text, version)
        await diagnostics_for(client, uri)
    hover = await client.text_document_hover_async(
        lsp.HoverParams(
            text_document=lsp.TextDocumentIdentifier(uri=uri),
            position=lsp.Position(line=1, character=4),
        )
    )
    assert hover is None or hover.contents
    boards = await client.workspace_execute_command_async(
        lsp.ExecuteCommandParams(command="tinyforge.boards", arguments=[])
    )
    assert boards, "the server stopped answering"
