"""The server object: the only state the language server keeps (settings, running jobs)."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any

from pygls.lsp.server import LanguageServer

from tinyforge import __version__


@dataclass
class Settings:
    board: str | None = None
    planner: str = "offline"
    arena_margin: int = 0
    claude_model: str | None = None
    # Passed by the editor from its SecretStorage: kept in memory only, never in a repr, a
    # log or a file (repr=False keeps it out of any debug print of the settings).
    anthropic_api_key: str | None = field(default=None, repr=False)

    def planner_options(self) -> dict[str, Any]:
        """What an LLM planner or repairer needs from the editor (the offline one ignores it)."""
        return {"api_key": self.anthropic_api_key, "model": self.claude_model}

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
        if isinstance(options.get("anthropicApiKey"), str):
            # An empty string is how the editor says the key was deleted.
            self.anthropic_api_key = options["anthropicApiKey"].strip() or None
        claude = options.get("claude")
        model = claude.get("model") if isinstance(claude, dict) else options.get("claude.model")
        if isinstance(model, str):
            self.claude_model = model.strip() or None


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
