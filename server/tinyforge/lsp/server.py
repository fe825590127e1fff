"""The server object: the only state the language server keeps (settings, running jobs)."""

from __future__ import annotations

import functools
import inspect
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from pygls.exceptions import JsonRpcException
from pygls.lsp.server import LanguageServer

from tinyforge import __version__

if TYPE_CHECKING:
    from tinyforge.lsp.analyses import Analyses


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


REQUEST_FAILED = -32803  # LSP's RequestFailed: the request was valid, answering it failed


def one_sentence_errors(name: str, handler: Callable[..., Any]) -> Callable[..., Any]:
    """`handler` answering an unexpected exception with one sentence (the traceback goes to the
    server's log), never a -32603 reply that carries a traceback to the editor."""
    if inspect.isgeneratorfunction(handler) or inspect.isasyncgenfunction(handler):
        return handler

    def failed(exc: Exception) -> JsonRpcException:
        logging.getLogger(__name__).exception("%s failed", name)
        from tinyforge.errors import TinyForgeError

        if isinstance(exc, TinyForgeError):
            return JsonRpcException(str(exc), code=REQUEST_FAILED)
        detail = " ".join(str(exc).split())[:200] or type(exc).__name__
        return JsonRpcException(f"TinyForge could not answer {name}: {detail}.", REQUEST_FAILED)

    if inspect.iscoroutinefunction(handler):

        @functools.wraps(handler)
        async def answer_async(*args: Any, **kwargs: Any) -> Any:
            try:
                return await handler(*args, **kwargs)
            except JsonRpcException:
                raise
            except Exception as exc:
                raise failed(exc) from None

        return answer_async

    @functools.wraps(handler)
    def answer(*args: Any, **kwargs: Any) -> Any:
        try:
            return handler(*args, **kwargs)
        except JsonRpcException:
            raise
        except Exception as exc:
            raise failed(exc) from None

    return answer


class TinyForgeServer(LanguageServer):
    # Each open document's analysis, debounced and off the event loop (lsp/diagnostics.register).
    analyses: Analyses

    def __init__(self) -> None:
        super().__init__("tinyforge", __version__)
        self.settings = Settings()
        # Work-done progress token → cancel flag of the job behind it.
        self.jobs: dict[str, threading.Event] = {}

    def feature(self, feature_name: str, options: Any | None = None) -> Callable[[Any], Any]:
        register = super().feature(feature_name, options)
        if feature_name.startswith("textDocument/") and not feature_name.startswith(
            "textDocument/did"
        ):
            # Requests on a document: none on one over the size limit (its one note says so).
            return lambda handler: register(
                one_sentence_errors(feature_name, self._skip_oversized(handler))
            )
        return lambda handler: register(one_sentence_errors(feature_name, handler))

    def _skip_oversized(self, handler: Callable[..., Any]) -> Callable[..., Any]:
        from tinyforge.memory.keras_source import MAX_SOURCE_CHARS

        @functools.wraps(handler)
        def answer(ls: Any, params: Any, *args: Any) -> Any:
            uri = getattr(getattr(params, "text_document", None), "uri", None)
            document = self.workspace.text_documents.get(uri) if uri else None
            if document is not None and len(document.source) > MAX_SOURCE_CHARS:
                return None
            return handler(ls, params, *args)

        return answer

    def command(self, command_name: str) -> Callable[[Any], Any]:
        register = super().command(command_name)
        return lambda handler: register(one_sentence_errors(command_name, handler))


def create_server() -> TinyForgeServer:
    from tinyforge.lsp import actions, commands, diagnostics, hover, model_checks, recovery

    server = TinyForgeServer()
    diagnostics.register(server)
    actions.register(server)
    commands.register(server)
    hover.register(server)
    model_checks.register(server)
    recovery.register(server)  # builds killed with a server are restored at start
    return server
