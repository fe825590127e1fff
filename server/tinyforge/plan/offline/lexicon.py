"""The planner's vocabulary: lexicon.toml, loaded once and checked as it is read.

A key is a dotted path into the file ("classes.list_stop"). A word list comes back as a set of
lower-case words, a cue list as one compiled alternation ignoring case. A missing key, a value of
the wrong type or a pattern that does not compile is a packaging slip: TinyForgeError names the
key, so it fails loudly at import rather than as a request quietly misread.
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any

from tinyforge.errors import TinyForgeError

LEXICON_FILE = "lexicon.toml"


@dataclass(frozen=True)
class WeightedCue:
    """A cue of a named thing (a task) with the weight each match adds to it."""

    name: str
    pattern: re.Pattern[str]
    weight: int


@dataclass(frozen=True)
class Lexicon:
    data: dict[str, Any]

    def _get(self, key: str) -> Any:
        value: Any = self.data
        for part in key.split("."):
            if not isinstance(value, dict) or part not in value:
                raise TinyForgeError(f"{LEXICON_FILE}: '{key}' is missing.")
            value = value[part]
        return value

    def _strings(self, key: str, value: Any = None) -> list[str]:
        value = self._get(key) if value is None else value
        if not isinstance(value, list) or not all(isinstance(w, str) and w for w in value):
            raise TinyForgeError(f"{LEXICON_FILE}: '{key}' must be a list of non-empty strings.")
        return value

    def words(self, key: str) -> frozenset[str]:
        """A word list, for membership tests."""
        return frozenset(self.ordered(key))

    def ordered(self, key: str) -> tuple[str, ...]:
        """A word list whose order matters (the first found wins)."""
        return tuple(w.lower() for w in self._strings(key))

    def alternation(self, key: str, value: Any = None) -> str:
        """A cue list as the text of one alternation, for building a larger pattern."""
        text = "|".join(self._strings(key, value))
        try:
            re.compile(text)
        except re.error as exc:
            raise TinyForgeError(f"{LEXICON_FILE}: '{key}' is not a pattern: {exc}") from exc
        return text

    def cue(self, key: str, value: Any = None) -> re.Pattern[str]:
        """A cue list, compiled ignoring case."""
        return re.compile(self.alternation(key, value), re.IGNORECASE)

    def numbers(self, key: str) -> dict[str, int]:
        """Number words and their values, in the file's order."""
        table = self._get(key)
        if not isinstance(table, dict) or not all(
            isinstance(v, int) and not isinstance(v, bool) for v in table.values()
        ):
            raise TinyForgeError(f"{LEXICON_FILE}: '{key}' must map words to integers.")
        return {word.lower(): value for word, value in table.items()}

    def names(self, key: str) -> dict[str, str]:
        """A table of names (e.g. a task's short name), in the file's order."""
        table = self._get(key)
        if not isinstance(table, dict) or not all(isinstance(v, str) for v in table.values()):
            raise TinyForgeError(f"{LEXICON_FILE}: '{key}' must map names to strings.")
        return dict(table)

    def named_cues(self, key: str, name_key: str) -> tuple[WeightedCue, ...]:
        """An array of tables, each with `name_key`, `cues` and an optional `weight` (1)."""
        tables = self._get(key)
        if not isinstance(tables, list) or not all(isinstance(t, dict) for t in tables):
            raise TinyForgeError(f"{LEXICON_FILE}: '{key}' must be an array of tables.")
        cues: list[WeightedCue] = []
        for index, table in enumerate(tables):
            where = f"{key}[{index}]"
            name, weight = table.get(name_key), table.get("weight", 1)
            if set(table) - {name_key, "cues", "weight"} or not isinstance(name, str):
                raise TinyForgeError(
                    f"{LEXICON_FILE}: '{where}' must hold {name_key}, cues and weight only."
                )
            if not isinstance(weight, int) or isinstance(weight, bool):
                raise TinyForgeError(f"{LEXICON_FILE}: '{where}.weight' must be an integer.")
            pattern = self.cue(f"{where}.cues", table.get("cues"))
            cues.append(WeightedCue(name, pattern, weight))
        return tuple(cues)


@cache
def lexicon() -> Lexicon:
    """The lexicon beside this module (read once per process)."""
    text = (
        resources.files("tinyforge.plan.offline").joinpath(LEXICON_FILE).read_text(encoding="utf-8")
    )
    try:
        return Lexicon(tomllib.loads(text))
    except tomllib.TOMLDecodeError as exc:
        raise TinyForgeError(f"{LEXICON_FILE} is not valid TOML: {exc}") from exc
