"""The TinyForge language server (pygls 2): a thin door from editor events to the pipeline."""

from __future__ import annotations


def main() -> None:
    from tinyforge.lsp.server import create_server

    create_server().start_io()
