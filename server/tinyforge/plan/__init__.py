"""Planners: turn a one-sentence request into a ProjectSpec."""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from tinyforge.errors import TinyForgeError
from tinyforge.plan.offline import OfflinePlanner
from tinyforge.plan.units import parse_size
from tinyforge.spec import ProjectSpec

__all__ = ["PLANNERS", "OfflinePlanner", "Planner", "get_planner", "parse_size"]


class Planner(Protocol):
    name: str

    def plan(self, request: str, *, board: str | None = None) -> ProjectSpec: ...


# Name -> factory. Factories (not instances) so a planner that needs setup, such as an API
# client, is only built when asked for.
PLANNERS: dict[str, Callable[[], Planner]] = {
    "offline": OfflinePlanner,
}


def get_planner(name: str = "offline") -> Planner:
    """The planner called `name`; TinyForgeError listing the available ones otherwise."""
    key = name.strip().lower()
    factory = PLANNERS.get(key)
    if factory is None:
        raise TinyForgeError(
            f"Unknown planner '{name}'. Available planners: {', '.join(sorted(PLANNERS))}."
        )
    return factory()
