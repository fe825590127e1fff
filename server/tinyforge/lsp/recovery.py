"""A build killed with its server is restored when the server starts again, and the user told.

The restore itself is journal.py's; this door only finds the workspace's folders, and turns the
sentences of finished restores into window/showMessage (a recovery may also happen in a command's
worker thread, when it takes a project's lock).
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from pathlib import Path

from lsprotocol import types as lsp
from pygls.uris import to_fs_path

from tinyforge import journal
from tinyforge.lsp.server import TinyForgeServer


def register(server: TinyForgeServer) -> None:
    @server.feature(lsp.INITIALIZED)
    def initialized(ls: TinyForgeServer, params: lsp.InitializedParams) -> None:
        show_recoveries(ls, asyncio.get_running_loop())
        # Synchronous on purpose: no command of this session may read a project before its
        # restore is done; it runs only when a journal was left, and copies back one backup.
        uris = [folder.uri for folder in ls.workspace.folders.values()]
        if not uris and ls.workspace.root_uri:
            uris = [ls.workspace.root_uri]
        journal.recover_folders(_folders(uris))

    @server.feature(lsp.WORKSPACE_DID_CHANGE_WORKSPACE_FOLDERS)
    def folders_added(ls: TinyForgeServer, params: lsp.DidChangeWorkspaceFoldersParams) -> None:
        journal.recover_folders(_folders(folder.uri for folder in params.event.added))


def show_recoveries(server: TinyForgeServer, loop: asyncio.AbstractEventLoop) -> None:
    """Show each restore's sentence in the editor, from whichever thread it happens in."""

    def show(project: Path, sentence: str) -> None:
        params = lsp.ShowMessageParams(type=lsp.MessageType.Warning, message=sentence)
        loop.call_soon_threadsafe(server.window_show_message, params)

    journal.add_listener(show)


def _folders(uris: Iterable[str]) -> list[Path]:
    return [Path(path) for path in map(to_fs_path, uris) if path]
