"""The server object: the only state the language server keeps (settings, running jobs)."""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any

from pygls.lsp.server import LanguageServer

from tinyforge import __version__


@dataclass
class Settings:
    board: str | None = None
    planner: str = "offline"
    arena_margin: int = 0

    def update(self, options: Any) -> None:
        if not isinstance(options, dict):
            return
        # Accept both {"board": ...} and VS Code's nested {"tinyforge": {"board": ...}}.
        options = options.get("tinyforge", options)
        if isinstance(options.get("board"), str) and options["board"].strip():
            self.board = options["board"].strip()
        if isinstance(options.get("planner"), str):
            self.planner = options["planner"]
        if isinstance(options.get("arenaMargin"), int):
            self.arena_margin = options["arenaMargin"]


class TinyForgeServer(LanguageServer):
    def __init__(self) -> None:
        super().__init__("tinyforge", __version__)
        self.settings = Settings()
        # Work-done progress token → cancel flag of the job behind it.
        self.jobs: dict[str, threading.Event] = {}


def create_server() -> TinyForgeServer:
    from tinyforge.lsp import actions, commands, diagnostics, hover, model_checks

    server = TinyForgeServer()
    diagnostics.register(server)
    actions.register(server)
    commands.register(server)
    hover.register(server)
    model_checks.register(server)
    return server
