"""Keras model scripts: static memory diagnostics, hover figures and fixes (filled in below)."""

from __future__ import annotations

from typing import Any

from lsprotocol import types as lsp

from tinyforge.lsp.server import TinyForgeServer
from tinyforge.project import ProjectContext


def model_diagnostics(text: str, ctx: ProjectContext) -> list[lsp.Diagnostic]:
    return []


def model_code_actions(
    server: TinyForgeServer, document: Any, params: lsp.CodeActionParams
) -> list[lsp.CodeAction]:
    return []


def hover_at(
    text: str, position: lsp.Position, server: TinyForgeServer, uri: str
) -> lsp.Hover | None:
    return None
