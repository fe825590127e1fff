"""Hover on a layer: output shape, parameters, activation bytes and MACs."""

from __future__ import annotations

from lsprotocol import types as lsp

from tinyforge.lsp.server import TinyForgeServer


def register(server: TinyForgeServer) -> None:
    @server.feature(lsp.TEXT_DOCUMENT_HOVER)
    def on_hover(ls: TinyForgeServer, params: lsp.HoverParams) -> lsp.Hover | None:
        from tinyforge.lsp.model_checks import hover_at

        document = ls.workspace.get_text_document(params.text_document.uri)
        return hover_at(document.source, params.position, ls, params.text_document.uri)
