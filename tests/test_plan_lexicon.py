"""The offline planner's words as data: lexicon.toml, the board registry's words, and the planner
letting a bug surface as the bug it is."""

from __future__ import annotations

import ast
import tomllib
from collections.abc import Iterator
from importlib import resources
from pathlib import Path
from typing import Any

import pytest

import tinyforge.plan.offline.planner as planner_module
from tinyforge.boards import all_boards, board_words, get_board, has_camera
from tinyforge.errors import TinyForgeError
from tinyforge.plan.offline import DEFAULT_BOARD, OfflinePlanner
from tinyforge.plan.offline.lexicon import LEXICON_FILE, Lexicon, lexicon
from tinyforge.plan.offline.tasks import TASK_ORDER, TASK_SHORT
from tinyforge.spec import Task

PACKAGE = Path(planner_module.__file__).parent
_READERS = {"words", "ordered", "alternation", "cue", "numbers", "names", "named_cues"}


def _leaf_keys(table: dict[str, Any], prefix: str = "") -> Iterator[str]:
    """The keys a module reads: lists, and tables whose values are all plain (a mapping)."""
    for key, value in table.items():
        dotted = f"{prefix}{key}"
        if isinstance(value, dict) and any(isinstance(v, dict | list) for v in value.values()):
            yield from _leaf_keys(value, f"{dotted}.")
        else:
            yield dotted


def _keys_read() -> set[str]:
    read: set[str] = set()
    for source in PACKAGE.glob("*.py"):
        for node in ast.walk(ast.parse(source.read_text(encoding="utf-8"))):
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute)
                and node.func.attr in _READERS
                and node.args
                and isinstance(node.args[0], ast.Constant)
                and isinstance(node.args[0].value, str)
            ):
                read.add(node.args[0].value)
    return read


def test_every_word_in_the_lexicon_is_read_and_every_key_read_is_there() -> None:
    text = resources.files("tinyforge.plan.offline").joinpath(LEXICON_FILE).read_text("utf-8")
    assert set(_leaf_keys(tomllib.loads(text))) == _keys_read()


def test_every_task_has_an_order_and_a_short_name() -> None:
    assert sorted(TASK_ORDER) == sorted(Task)
    assert set(TASK_SHORT) == set(Task)


@pytest.mark.parametrize(
    ("data", "call", "message"),
    [
        ({}, lambda lex: lex.words("classes.list_stop"), "missing"),
        ({"a": {"b": ["x", 2]}}, lambda lex: lex.words("a.b"), "list of non-empty strings"),
        ({"a": {"b": ["x", ""]}}, lambda lex: lex.ordered("a.b"), "list of non-empty strings"),
        ({"a": {"b": ["(unclosed"]}}, lambda lex: lex.cue("a.b"), "not a pattern"),
        ({"n": {"one": True}}, lambda lex: lex.numbers("n"), "integers"),
        ({"t": [{"task": "x", "cues": ["a"], "extra": 1}]}, lambda lex: lex.named_cues("t", "task"),
         "only"),
        ({"t": [{"task": "x", "cues": ["a"], "weight": "2"}]},
         lambda lex: lex.named_cues("t", "task"), "integer"),
        ({"t": [{"task": "x"}]}, lambda lex: lex.named_cues("t", "task"), "missing"),
    ],
)  # fmt: skip
def test_a_malformed_lexicon_fails_loudly(data: dict[str, Any], call: Any, message: str) -> None:
    with pytest.raises(TinyForgeError, match=message):
        call(Lexicon(data))


def test_cue_lists_are_alternations_ignoring_case() -> None:
    lex = Lexicon({"a": {"b": [r"\bcat\b", r"\bdogs?\b"]}})
    assert lex.alternation("a.b") == r"\bcat\b|\bdogs?\b"
    assert lex.cue("a.b").search("Two DOGS") is not None
    assert lexicon() is lexicon()  # read once per process


def test_board_words_come_from_the_board_registry() -> None:
    words = board_words()
    assert words.family.fullmatch("ESP32-S3") and words.family.fullmatch("Arduino")
    assert "sparkfun" in words.vendors and "devkitc" in words.models
    assert "iot" in words.variants and "arduino nano" in words.vague
    # A vague name means the planner's default board, which the database must have.
    assert get_board(DEFAULT_BOARD).id == DEFAULT_BOARD
    assert {b.id for b in all_boards() if has_camera(b)} == {"esp32cam", "nicla_vision"}


def test_the_planner_spells_no_board_words_of_its_own() -> None:
    # Board names and nicknames live in boards/boards.toml only.
    sources = " ".join(p.read_text(encoding="utf-8").lower() for p in PACKAGE.glob("*.*"))
    for word in ("sparkfun", "lilygo", "devkitc", "esp32cam", "nicla_vision", "wroom"):
        assert word not in sources


def test_a_bug_in_a_reader_surfaces_as_itself(monkeypatch: pytest.MonkeyPatch) -> None:
    # No catch-all turns a slip such as a KeyError into "could not read this request".
    def broken(_text: str) -> None:
        raise KeyError("slip")

    monkeypatch.setattr(planner_module, "find_classes", broken)
    with pytest.raises(KeyError):
        OfflinePlanner().plan("classify cats and dogs from ./pets on a Pico")
