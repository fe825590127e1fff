"""The editor's settings, as the server keeps them (initializationOptions, then
workspace/didChangeConfiguration)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class Settings:
    board: str | None = None
    planner: str = "offline"
    # Bytes added to the estimated tensor arena before a model script is checked against the
    # board's RAM (`tinyforge.arenaMargin`): room the user keeps for what the estimate misses.
    arena_margin: int = 0
    claude_model: str | None = None
    # Seconds before an ONNX conversion (onnx2tf) is stopped (`tinyforge.convert.timeoutSeconds`;
    # None: the project's timeouts.convert, else no limit), as the CLI's --convert-timeout.
    convert_timeout: float | None = None
    # Passed by the editor from its SecretStorage: kept in memory only, never in a repr, a
    # log or a file (repr=False keeps it out of any debug print of the settings).
    anthropic_api_key: str | None = field(default=None, repr=False)

    def planner_options(self) -> dict[str, Any]:
        """What an LLM planner or repairer needs from the editor (the offline one ignores it)."""
        return {"api_key": self.anthropic_api_key, "model": self.claude_model}

    def analysis_key(self) -> tuple[str | None, int]:
        """What the documents' analyses depend on: a change means analysing them again."""
        return self.board, self.arena_margin

    def update(self, options: Any) -> None:
        if not isinstance(options, dict):
            return
        # Accept both {"board": ...} and VS Code's nested {"tinyforge": {"board": ...}}.
        options = options.get("tinyforge", options)
        if isinstance(options.get("board"), str) and options["board"].strip():
            self.board = options["board"].strip()
        if isinstance(options.get("planner"), str):
            self.planner = options["planner"]
        margin = options.get("arenaMargin")
        if isinstance(margin, int) and not isinstance(margin, bool) and margin >= 0:
            self.arena_margin = margin
        if isinstance(options.get("anthropicApiKey"), str):
            # An empty string is how the editor says the key was deleted.
            self.anthropic_api_key = options["anthropicApiKey"].strip() or None
        convert = options.get("convert")
        seconds = convert.get("timeoutSeconds") if isinstance(convert, dict) else None
        if isinstance(seconds, int | float) and not isinstance(seconds, bool) and seconds >= 0:
            self.convert_timeout = float(seconds) or None  # 0: no setting
        claude = options.get("claude")
        model = claude.get("model") if isinstance(claude, dict) else options.get("claude.model")
        if isinstance(model, str):
            self.claude_model = model.strip() or None
