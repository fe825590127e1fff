"""Property, over stdio: pathological documents and selections never freeze or break the server.

Each example opens every kind of pathological document below (in a random order, with random
sizes) on one server, edits it (a partial edit at a random range, then the whole text again),
and asks hover, code lens and code actions on random and chosen selections. Every request must
be answered with a result (no error reply), the server must stay alive under 300 MB of RSS, and
a value past the static evaluation's budget must be "unknown" (a cannot-infer note), not an
exception. The bound on each answer is liveness only; latency is measured by bench/lsp_fuzz.py.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil
import pytest
from hypothesis import HealthCheck, Phase, example, given, settings
from hypothesis import strategies as st
from lsprotocol import types as lsp
from pytest_lsp import LanguageClient

from tests.lsp.conftest import change_doc, open_doc
from tests.security.lsp_record import record_publications, until, versions_of
from tinyforge.lsp.model_checks import MAX_LAYERS

pytestmark = pytest.mark.security

MODEL = (
    "import keras\nmodel = keras.Sequential([keras.Input(shape=(4,)), keras.layers.Dense(UNITS)])\n"
)
CONVERTER = "conv = tf.lite.TFLiteConverter.from_keras_model(model)\n"
SPEC = """\
task = "sensor_classification"
board = "nano33ble"
input_shape = [3]
classes = ["yes", "no"]

[dataset]
kind = "csv"
path = "data.csv"
label_column = "label"

[budget]
ram_bytes = 262144
flash_bytes = 983040
"""
MAX_RSS = 300 * 2**20
ANSWER_WITHIN = 30.0  # seconds: "answered at all", generous for a shared, loaded machine
_folders = itertools.count()


@dataclass
class Case:
    kind: str
    name: str  # the document's file name
    text: str
    files: dict[str, bytes] = field(default_factory=dict)  # written beside it first
    selections: list[tuple[int, int, int, int]] = field(default_factory=list)
    budgeted: bool = False  # past the static evaluation's budget: a cannot-infer note

    def __repr__(self) -> str:  # hypothesis prints failing examples: not megabytes of text
        return f"<{self.kind}: {self.name}, {len(self.text):,} characters>"

    def _repr_pretty_(self, printer: Any, cycle: bool) -> None:  # hypothesis's printer
        printer.text(repr(self))


def squares(n: int) -> Case:
    return Case(
        "squares", "model.py", "UNITS = 3\n" + "UNITS = UNITS * UNITS\n" * n + MODEL, budgeted=True
    )


def doubles(n: int) -> Case:
    text = "T = (1,)\n" + "T = T + T\n" * n + "UNITS = len(T)\n" + MODEL
    return Case("doubles", "model.py", text, budgeted=True)


def nested(depth: int) -> Case:
    return Case("nested", "model.py", "UNITS = " + "(" * depth + "1" + ")" * depth + "\n" + MODEL)


def long_sum(terms: int) -> Case:
    return Case("long_sum", "model.py", "UNITS = " + " + ".join(["1"] * terms) + "\n" + MODEL)


def nested_toml(depth: int) -> Case:
    return Case("nested_toml", "tinyforge.toml", "a = " + "[" * depth + "]" * depth + "\n")


def huge_number(digits: int) -> Case:
    # Selected whole for a code action: the offline planner reads a selection as a request.
    case = Case("huge_number", "notes.py", "# " + "9" * digits + "\n")
    case.selections.append((0, 2, 0, 2 + digits))
    return case


def huge_literal(digits: int) -> Case:
    return Case("huge_literal", "model.py", "UNITS = " + "9" * digits + "\n" + MODEL)


def many_layers(n: int) -> Case:
    layers = "    keras.layers.Dense(8),\n" * n
    text = f"import keras\nmodel = keras.Sequential([\n    keras.Input(shape=(4,)),\n{layers}])\n"
    return Case("many_layers", "model.py", text, budgeted=n > MAX_LAYERS)


LINES: dict[str, Callable[[int], tuple[str, str]]] = {
    # A `# tinyml:` request padded with spaces, brackets with no end, blank lines after a float
    # converter, one long word: what per-line and multi-line regexes see at their worst.
    "request_padding": lambda n: ("model.py", "# tinyml: a" + " " * n + "b\n"),
    "brackets_toml": lambda n: ("tinyforge.toml", "[" * n + "\n"),
    "brackets_ini": lambda n: ("platformio.ini", "[" * n + "\n"),
    "blank_lines": lambda n: ("model.py", CONVERTER + "\n" * n),
    "word": lambda n: ("model.py", "x" * n + " = " + "y" * n + "\n"),
    "spaces_ini": lambda n: ("platformio.ini", "[env:a]\nboard =" + " " * n + "x\n"),
    "exports": lambda n: ("model.py", "torch.onnx.export(" * (n // 18) + "\n"),
}


def huge_line(shape: str, n: int) -> Case:
    name, text = LINES[shape](n)
    case = Case(f"huge_line:{shape}", name, text)
    case.selections.append((0, 0, 0, 2 * n))
    return case


ODD = st.characters(codec=None, exclude_categories=())  # surrogates, NUL, U+2028, RTL marks…
FRAGMENTS = ["\r", "\u2028", "\ufeff", "\x00", "\ud800", "🍎", "e\u0301", "\u202e", "\t" * 9]


def odd_unicode(noise: str) -> Case:
    return Case("odd_unicode", "train.py", f"UNITS = 4  # {noise}\n" + MODEL + noise)


def invalid_utf8(document: str) -> Case:
    """Files the server reads from disk, in bytes that are not UTF-8, beside an open document."""
    files = {
        "tinyforge.toml": SPEC.encode()
        if document != "platformio.ini"
        else b'board = "\xff\xfe"\n',
        "data.csv": b"a,b,c,label\n1,2,3,\xff\x80\n4,5,6,no\n",
        "report.json": b'\xff{"violations": [\x80]}',
        "train.py": b"\xff\xfe" + MODEL.encode(),
    }
    text = SPEC if document == "tinyforge.toml" else "[env:main]\nboard = nano33ble\n"
    if document == "train.py":
        text = "UNITS = 4\n" + MODEL
    return Case(f"invalid_utf8:{document}", document, text, files)


def size(low: int, high: int) -> st.SearchStrategy[int]:
    """Sizes up to `high`, and `high` itself often: the worst case is the one to meet."""
    return st.integers(low, high) | st.just(high)


KINDS = {
    "squares": size(20, 60).map(squares),
    "doubles": size(30, 80).map(doubles),
    "nested": size(50, 2_000).map(nested),
    "long_sum": size(500, 50_000).map(long_sum),
    "nested_toml": size(100, 5_000).map(nested_toml),
    "huge_number": size(5_000, 30_000).map(huge_number),
    "huge_literal": size(5_000, 30_000).map(huge_literal),
    "many_layers": size(200, 5_000).map(many_layers),
    "huge_line": st.builds(huge_line, st.sampled_from(sorted(LINES)), size(20_000, 200_000)),
    "odd_unicode": st.lists(st.one_of(st.text(ODD, max_size=40), st.sampled_from(FRAGMENTS)))
    .map("".join)
    .map(odd_unicode),
    "invalid_utf8": st.sampled_from(["tinyforge.toml", "platformio.ini", "train.py"]).map(
        invalid_utf8
    ),
}
# Every kind at its largest, every long line's shape: met on each run, before random ones.
WORST = (
    squares(60),
    doubles(80),
    nested(2_000),
    long_sum(50_000),
    nested_toml(5_000),
    huge_number(30_000),
    huge_literal(30_000),
    many_layers(5_000),
    *(huge_line(shape, 200_000) for shape in sorted(LINES)),
    odd_unicode("".join(FRAGMENTS)),
    *(invalid_utf8(name) for name in ("tinyforge.toml", "platformio.ini", "train.py")),
)
# An edit past the end of the document, and a reversed selection reaching past it.
WORST_SELECTIONS = [((0, 0, 2**31 - 1, 2**31 - 1), (9, 2**31 - 1, 0, 0))] * len(WORST)
POSITION = st.integers(0, 2**31 - 1) | st.integers(0, 50)
SELECTION = st.tuples(POSITION, POSITION, POSITION, POSITION)  # reversed ones too


def _range(line: int, char: int, end_line: int, end_char: int) -> lsp.Range:
    return lsp.Range(
        start=lsp.Position(line=line, character=char),
        end=lsp.Position(line=end_line, character=end_char),
    )


async def _answered(request: object) -> object:
    """The answer; an error reply raises (and fails the test), no answer is a stuck server."""
    return await asyncio.wait_for(request, timeout=ANSWER_WITHIN)  # type: ignore[arg-type]


async def _requests(client: LanguageClient, uri: str, selections: list[lsp.Range]) -> None:
    doc = lsp.TextDocumentIdentifier(uri=uri)
    for rng in selections:
        await _answered(
            client.text_document_hover_async(lsp.HoverParams(text_document=doc, position=rng.end))
        )
        await _answered(
            client.text_document_code_action_async(
                lsp.CodeActionParams(
                    text_document=doc, range=rng, context=lsp.CodeActionContext(diagnostics=[])
                )
            )
        )
    await _answered(client.text_document_code_lens_async(lsp.CodeLensParams(text_document=doc)))
    boards = await _answered(
        client.workspace_execute_command_async(
            lsp.ExecuteCommandParams(command="tinyforge.boards", arguments=[])
        )
    )
    assert boards, "the server stopped answering"


async def _run(
    client: LanguageClient,
    published: list[lsp.PublishDiagnosticsParams],
    folder: Path,
    case: Case,
    edit: lsp.Range,
    pick: lsp.Range,
) -> None:
    for name, data in case.files.items():
        (folder / name).write_bytes(data)
    uri = open_doc(client, folder / case.name, case.text)
    # A partial edit at any range (past the end, inside a surrogate pair), then the whole text.
    client.text_document_did_change(
        lsp.DidChangeTextDocumentParams(
            text_document=lsp.VersionedTextDocumentIdentifier(uri=uri, version=2),
            content_changes=[lsp.TextDocumentContentChangePartial(range=edit, text="(\ud83c")],
        )
    )
    change_doc(client, uri, case.text, 3)
    await _requests(client, uri, [_range(*s) for s in case.selections] + [pick])
    await until(lambda: 3 in versions_of(published, uri), timeout=ANSWER_WITHIN)
    found = next(p.diagnostics for p in published if p.uri == uri and p.version == 3)
    broken = [d.message for d in found if "could not analyse" in d.message]
    assert not broken, (case.kind, broken)  # a check raised: an exception, not an answer
    if case.budgeted:
        assert any(d.code == "cannot-infer" for d in found), (case.kind, found)


@settings(
    max_examples=3,
    deadline=None,
    # No shrinking: each step is a round trip to a real server, and the failing kind and its
    # size already say what broke.
    phases=[Phase.explicit, Phase.reuse, Phase.generate],
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@example(cases=WORST, selections=WORST_SELECTIONS)
@given(
    cases=st.permutations(sorted(KINDS)).flatmap(
        lambda order: st.tuples(*(KINDS[kind] for kind in order))
    ),
    selections=st.lists(st.tuples(SELECTION, SELECTION), min_size=len(KINDS), max_size=len(KINDS)),
)
async def test_pathological_documents_and_selections_are_answered(
    client: LanguageClient, tmp_path: Path, cases: tuple[Case, ...], selections: list
) -> None:
    server = psutil.Process(client._server.pid)  # type: ignore[union-attr]
    published = record_publications(client)
    peak = 0
    for case, (edit, pick) in zip(cases, selections, strict=True):
        folder = tmp_path / f"case{next(_folders)}"
        folder.mkdir()
        started = time.perf_counter()
        await _run(client, published, folder, case, _range(*edit), _range(*pick))
        if os.environ.get("TINYFORGE_FUZZ_VERBOSE"):
            took, rss = time.perf_counter() - started, server.memory_info().rss / 2**20
            print(f"{case!r}: {took:.2f} s, {rss:.0f} MB")
        assert client._server.returncode is None, f"the server died on {case.kind}"  # type: ignore[union-attr]
        peak = max(peak, server.memory_info().rss)
        assert peak < MAX_RSS, f"{peak / 2**20:.0f} MB of RSS after {case.kind}"
        client.text_document_did_close(
            lsp.DidCloseTextDocumentParams(
                text_document=lsp.TextDocumentIdentifier(uri=(folder / case.name).as_uri())
            )
        )
