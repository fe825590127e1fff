"""The server object: all the state the language server keeps, and what each feature adds.

State: the editor's settings, the running jobs, the analyses of the open documents (one per
version, lsp/analyses.py), the projects they belong to (read again only when their files
change, lsp/documents.py) and the diagnostics published (per source and document,
lsp/diagnostics.py). No module keeps any.

Each feature module (model scripts, project files, health, device, data, firmware, fit,
ONNX, new projects, editor views, repair, the pipeline's commands) has a `register(server)`
that adds its checks, code actions, lenses and hovers to `server.features` and its commands
to the server; lsp/handlers.py answers the editor's document requests by asking them in the
order they were registered (which is the order of the diagnostics and actions shown).
"""

from __future__ import annotations

import functools
import inspect
import logging
import threading
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field, replace
from typing import Any, TypeVar

from lsprotocol import types as lsp
from lsprotocol.converters import get_converter
from pygls.exceptions import JsonRpcException
from pygls.lsp.server import LanguageServer

from tinyforge import __version__
from tinyforge.lsp.analyses import Analyses, DocumentAnalysis
from tinyforge.lsp.arguments import typed_command
from tinyforge.lsp.diagnostics import CHECKS, DiagnosticsStore, run_checks
from tinyforge.lsp.documents import Projects, doc_path, open_document
from tinyforge.lsp.settings import Settings

__all__ = ["REQUEST_FAILED", "Features", "Settings", "TinyForgeServer", "create_server"]

REQUEST_FAILED = -32803  # LSP's RequestFailed: the request was valid, answering it failed

F = TypeVar("F", bound=Callable[..., Any])
Check = Callable[["TinyForgeServer", DocumentAnalysis], list[lsp.Diagnostic]]
CodeActions = Callable[
    ["TinyForgeServer", DocumentAnalysis, lsp.CodeActionParams], list[lsp.CodeAction]
]
Lenses = Callable[["TinyForgeServer", DocumentAnalysis], list[lsp.CodeLens]]
Hover = Callable[["TinyForgeServer", DocumentAnalysis, lsp.Position], lsp.Hover | None]


@dataclass
class Features:
    """What the feature modules add to the document requests, in the order they add it."""

    # (does it read a file of this name?, the check): run by the document's analysis
    checks: list[tuple[Callable[[str], bool], Check]] = field(default_factory=list)
    code_actions: list[CodeActions] = field(default_factory=list)
    lenses: list[Lenses] = field(default_factory=list)
    hovers: list[Hover] = field(default_factory=list)


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
    def __init__(self) -> None:
        super().__init__("tinyforge", __version__)
        self.settings = Settings()
        # lsprotocol's converter, pygls's own: commands' arguments are converted with it.
        self.converter = get_converter()
        # Work-done progress token → cancel flag of the job behind it.
        self.jobs: dict[str, threading.Event] = {}
        self.features = Features()
        self.projects = Projects()
        self.diagnostics = DiagnosticsStore(self)
        self.analyses = Analyses(
            self,
            analyse=lambda analysis: run_checks(self, analysis),
            publish=self._publish_checks,
            stamp=self._analysis_stamp,
        )

    def _analysis_stamp(self, uri: str) -> tuple[Settings, Hashable]:
        """The settings an analysis of `uri` uses, and all it depends on besides the text."""
        path = doc_path(uri)
        project = self.projects.stamp(path) if path is not None else None
        return replace(self.settings), (self.settings.analysis_key(), project)

    def _publish_checks(self, analysis: DocumentAnalysis, found: list[lsp.Diagnostic]) -> None:
        self.diagnostics.put(CHECKS, analysis.uri, found, analysis.version)
        self.diagnostics.publish(analysis.uri)

    def feature(self, feature_name: str, options: Any | None = None) -> Callable[[F], F]:
        register = super().feature(feature_name, options)

        def decorate(handler: F) -> F:
            answer = handler
            if feature_name.startswith("textDocument/") and not feature_name.startswith(
                "textDocument/did"
            ):
                # Requests on a document: none on one over the size limit (its note says so).
                answer = self._skip_oversized(handler)
            register(one_sentence_errors(feature_name, answer))
            return handler

        return decorate

    def _skip_oversized(self, handler: F) -> F:
        from tinyforge.memory.keras_source import MAX_SOURCE_CHARS

        @functools.wraps(handler)
        def answer(ls: Any, params: Any, *args: Any) -> Any:
            uri = getattr(getattr(params, "text_document", None), "uri", None)
            document = open_document(self, uri) if uri else None
            if document is not None and len(document.source) > MAX_SOURCE_CHARS:
                return None
            return handler(ls, params, *args)

        return answer  # type: ignore[return-value]  # same call, same result

    def command(self, command_name: str) -> Callable[[F], F]:
        """A command with typed parameters (lsp/arguments.py): lsprotocol's converter makes them
        from the client's JSON, and a TinyForgeError is the reply's one sentence."""
        register = super().command(command_name)

        def decorate(handler: F) -> F:
            typed = typed_command(command_name, handler, self.converter)
            register(one_sentence_errors(command_name, typed))
            return handler

        return decorate


def create_server() -> TinyForgeServer:
    from tinyforge.lsp import (
        commands,
        data,
        device,
        editor_views,
        firmware,
        fit,
        handlers,
        health,
        model_checks,
        new_project,
        onnx_convert,
        project_files,
        recovery,
        repair,
    )

    server = TinyForgeServer()
    handlers.register(server)
    # The order of the checks and code actions each document shows: a tinyforge.toml's own
    # problems, then the last build's findings, the emulated board's figures, the dataset's.
    for feature in (
        new_project,
        model_checks,
        project_files,
        health,
        device,
        firmware,
        onnx_convert,
        fit,
        data,
        editor_views,
        repair,
        commands,
    ):
        feature.register(server)
    recovery.register(server)  # builds killed with a server are restored at start
    return server
