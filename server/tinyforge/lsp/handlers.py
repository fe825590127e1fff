"""The editor's document requests and notifications, answered from the documents' analyses.

Each handler is a few lines around the server object: the analysis of the document's current
version (lsp/analyses.py) goes to every feature that registered for the request, in the order
they registered (lsp/server.py).
"""

from __future__ import annotations

from itertools import chain

from lsprotocol import types as lsp

from tinyforge.lsp.diagnostics import CHECKS, reanalyse
from tinyforge.lsp.server import TinyForgeServer

ACTION_KINDS = [lsp.CodeActionKind.QuickFix, lsp.CodeActionKind.RefactorRewrite]


def register(server: TinyForgeServer) -> None:
    @server.feature(lsp.INITIALIZE)
    def on_initialize(ls: TinyForgeServer, params: lsp.InitializeParams) -> None:
        ls.settings.update(params.initialization_options)
        if params.trace is not None:  # VS Code sends its trace setting here, not by $/setTrace
            ls.protocol.trace = params.trace

    @server.feature(lsp.WORKSPACE_DID_CHANGE_CONFIGURATION)
    def on_configuration(ls: TinyForgeServer, params: lsp.DidChangeConfigurationParams) -> None:
        ls.settings.update(params.settings)
        reanalyse(ls)

    @server.feature(lsp.TEXT_DOCUMENT_DID_OPEN)
    def did_open(ls: TinyForgeServer, params: lsp.DidOpenTextDocumentParams) -> None:
        ls.analyses.schedule(params.text_document.uri, 0)

    @server.feature(lsp.TEXT_DOCUMENT_DID_CHANGE)
    def did_change(ls: TinyForgeServer, params: lsp.DidChangeTextDocumentParams) -> None:
        ls.analyses.schedule(params.text_document.uri)  # debounced: typing goes on

    @server.feature(lsp.TEXT_DOCUMENT_DID_SAVE)
    def did_save(ls: TinyForgeServer, params: lsp.DidSaveTextDocumentParams) -> None:
        ls.analyses.schedule(params.text_document.uri, 0)

    @server.feature(lsp.TEXT_DOCUMENT_DID_CLOSE)
    def did_close(ls: TinyForgeServer, params: lsp.DidCloseTextDocumentParams) -> None:
        # Its own checks go; what a build found in the file stays (as for any closed file).
        ls.analyses.forget(params.text_document.uri)
        ls.diagnostics.drop(CHECKS, params.text_document.uri)
        ls.diagnostics.publish(params.text_document.uri)

    @server.feature(lsp.TEXT_DOCUMENT_HOVER)
    def on_hover(ls: TinyForgeServer, params: lsp.HoverParams) -> lsp.Hover | None:
        analysis = ls.analyses.current(params.text_document.uri, open_only=False)
        if analysis is None:
            return None
        found = (hover(ls, analysis, params.position) for hover in ls.features.hovers)
        return next((h for h in found if h is not None), None)

    @server.feature(lsp.TEXT_DOCUMENT_CODE_LENS)
    def on_code_lens(ls: TinyForgeServer, params: lsp.CodeLensParams) -> list[lsp.CodeLens]:
        # Lenses are for open documents; a closed or deleted file has none.
        analysis = ls.analyses.current(params.text_document.uri)
        if analysis is None:
            return []
        return list(chain.from_iterable(lens(ls, analysis) for lens in ls.features.lenses))

    @server.feature(lsp.TEXT_DOCUMENT_CODE_ACTION, lsp.CodeActionOptions(ACTION_KINDS))
    def on_code_action(ls: TinyForgeServer, params: lsp.CodeActionParams) -> list[lsp.CodeAction]:
        analysis = ls.analyses.current(params.text_document.uri, open_only=False)
        if analysis is None:
            return []
        found = (actions(ls, analysis, params) for actions in ls.features.code_actions)
        return list(chain.from_iterable(found))
