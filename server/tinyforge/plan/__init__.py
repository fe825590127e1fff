"""Planners: turn a one-sentence request into a ProjectSpec."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

from tinyforge.errors import TinyForgeError
from tinyforge.plan.offline import OfflinePlanner
from tinyforge.plan.units import parse_size
from tinyforge.spec import ProjectSpec

__all__ = ["PLANNERS", "OfflinePlanner", "Planner", "get_planner", "parse_size"]


class Planner(Protocol):
    name: str

    def plan(self, request: str, *, board: str | None = None) -> ProjectSpec: ...


def _claude(**options: Any) -> Planner:
    # Imported on demand: the language server's start-up path stays free of the SDK.
    from tinyforge.plan.claude import ClaudePlanner

    return ClaudePlanner(**options)


# Name -> factory. Factories (not instances) so a planner that needs setup, such as an API
# client, is only built when asked for.
PLANNERS: dict[str, Callable[..., Planner]] = {
    "offline": OfflinePlanner,
    "claude": _claude,
}


def get_planner(name: str = "offline", **options: Any) -> Planner:
    """The planner called `name`; TinyForgeError listing the available ones otherwise.

    `options` (api_key, model, ...) configure LLM planners; the offline planner has none, so
    they are dropped for it and a caller can pass its settings whatever the planner.
    """
    key = name.strip().lower()
    factory = PLANNERS.get(key)
    if factory is None:
        raise TinyForgeError(
            f"Unknown planner '{name}'. Available planners: {', '.join(sorted(PLANNERS))}."
        )
    options = {k: v for k, v in options.items() if v is not None}
    return factory(**options) if options and key != "offline" else factory()
