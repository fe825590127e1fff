"""Commands' arguments: typed parameters converted from the client's JSON, and the paths and
projects they name.

A command is `handler(ls, project: str = "", options: FitArguments = FitArguments())`: the
client's positional arguments are converted to the parameters' annotated types by pygls's own
converter (cattrs: attrs classes by their fields' aliases, str, int, lists …); a trailing
argument the client leaves out, or sends as null, takes the parameter's default. A parameter
annotated `Notices` is not the client's: it is a list the command fills with what it says
besides its result.

One wrapper makes the reply: the handler's result, or {"ok": False, "error": sentence} when an
argument does not convert or the handler raises a TinyForgeError (with the notices, for the
commands that keep some).
"""

from __future__ import annotations

import inspect
import typing
from collections.abc import Callable
from pathlib import Path
from typing import Any

import attrs
from cattrs import Converter

from tinyforge.errors import TinyForgeError
from tinyforge.lsp.documents import doc_path
from tinyforge.project import find_project_root
from tinyforge.spec import SPEC_FILENAME

if typing.TYPE_CHECKING:
    from pygls.lsp.server import LanguageServer


class Notices(list[str]):
    """What a command says besides its result (e.g. that it planned offline): in its reply
    whether it succeeds or fails."""


def typed_command(
    name: str, handler: Callable[..., Any], converter: Converter
) -> Callable[..., Any]:
    """`handler` as pygls calls it: (ls, *the client's arguments), replying as above."""
    hints = typing.get_type_hints(handler)
    params = list(inspect.signature(handler).parameters.values())[1:]  # after `ls`

    def arguments(args: tuple[Any, ...], notices: Notices) -> list[Any]:
        values: list[Any] = []
        given = list(args)
        for param in params:
            if hints.get(param.name) is Notices:
                values.append(notices)
            elif param.kind is inspect.Parameter.VAR_POSITIONAL:  # the rest, as sent
                values += given
                given = []
            elif given and given[0] is not None:
                values.append(
                    _convert(name, param.name, given.pop(0), hints[param.name], converter)
                )
            elif param.default is not inspect.Parameter.empty:
                given = given[1:]
                values.append(param.default)
            else:
                raise TinyForgeError(f"{name} needs its {param.name} argument.")
        if given:
            most = sum(1 for param in params if hints.get(param.name) is not Notices)
            plural = "" if most == 1 else "s"
            raise TinyForgeError(f"{name} takes at most {most} argument{plural}, not {len(args)}.")
        return values

    def failed(exc: TinyForgeError, notices: Notices) -> dict[str, Any]:
        reply: dict[str, Any] = {"ok": False, "error": str(exc)}
        if Notices in hints.values():
            reply["notices"] = list(notices)
        return reply

    # pygls converts the arguments a handler's signature names: these take *args, so it
    # passes them as the client sent them, and `ls` (by its name) is the server.
    if inspect.iscoroutinefunction(handler):

        async def command_async(ls: Any, *args: Any) -> Any:
            notices = Notices()
            try:
                return await handler(ls, *arguments(args, notices))
            except TinyForgeError as exc:
                return failed(exc, notices)

        return command_async

    def command(ls: Any, *args: Any) -> Any:
        notices = Notices()
        try:
            return handler(ls, *arguments(args, notices))
        except TinyForgeError as exc:
            return failed(exc, notices)

    return command


def _convert(command: str, name: str, value: Any, kind: Any, converter: Converter) -> Any:
    if attrs.has(kind) and isinstance(value, dict):
        # Each option by its JSON name (its alias, `budgetRam`) or its Python one (`budget_ram`).
        value = dict(value)
        for field in attrs.fields(kind):
            if field.name in value and field.alias not in value:
                value[field.alias] = value.pop(field.name)
    try:
        return converter.structure(value, kind)
    except Exception as exc:  # cattrs says what did not convert, in its own exception types
        details = getattr(exc, "exceptions", None) or [exc]
        detail = "; ".join(str(d) for d in details)
        raise TinyForgeError(f"{command}: its {name} argument is not valid: {detail}.") from None


# -- paths ------------------------------------------------------------------------------------


def path_argument(value: str) -> Path | None:
    """The path, or file URI, a client sent; None for an empty one."""
    if not value:
        return None
    return doc_path(value) if value.startswith("file:") else Path(value)


def workspace_folder(server: LanguageServer) -> Path | None:
    for folder in server.workspace.folders.values():
        path = doc_path(folder.uri)
        if path is not None:
            return path
    return None


def folder_argument(server: LanguageServer, value: str) -> Path:
    """The path a command was given, else the first workspace folder."""
    path = path_argument(value) or workspace_folder(server)
    if path is None:
        raise TinyForgeError("Give the project folder as the command's first argument.")
    return path


def project_argument(server: LanguageServer, value: str) -> Path:
    """The TinyForge project (the folder of a tinyforge.toml) the path given is in."""
    start = folder_argument(server, value)
    root = find_project_root(start.resolve()) if start.exists() else None
    if root is None or not (root / SPEC_FILENAME).is_file():
        raise TinyForgeError(f"{start} is not in a TinyForge project (no tinyforge.toml).")
    return root
