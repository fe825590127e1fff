"""One command at a time per project: build, train, convert, fit and deploy take its lock.

Two builds of the same project at once interleave their files and one reports success over the
other's half-written ones. The lock is an OS file lock (released when its process dies, so a
killed server never leaves a stale one) on a file in the user's cache named after the project's
real path: the project itself is left exactly as it was (a failed build restores it byte for
byte). The file records which command holds the lock and since when, for the one sentence the
second command gets. A thread that holds the lock may take it again (a build that builds the
firmware); another thread or process may not.

Taking the lock also finishes the restore of a command that was killed inside its transaction
(journal.py), and says so in one sentence.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import os
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any, TypeVar

from tinyforge import journal
from tinyforge.errors import TinyForgeError

F = TypeVar("F", bound=Callable[..., Any])

_held: dict[Path, tuple[int, int]] = {}  # lock path → (owning thread, depth)
_held_guard = threading.Lock()


class ProjectBusy(TinyForgeError):
    """Another command holds the project's lock."""


def _try_lock(handle: IO[str]) -> bool:
    try:
        import fcntl
    except ImportError:  # Windows
        import msvcrt

        try:
            msvcrt.locking(handle.fileno(), msvcrt.LK_NBLCK, 1)  # type: ignore[attr-defined]
        except OSError:
            return False
        return True
    try:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        return False
    return True


def lock_path(project_dir: Path) -> Path:
    """The lock file of a project: ~/.cache/tinyforge/locks/<hash of its real path>.lock."""
    real = str(Path(project_dir).resolve())
    name = hashlib.sha256(real.encode("utf-8", "surrogateescape")).hexdigest()[:32] + ".lock"
    cache = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    for base in (
        Path(cache) / "tinyforge" / "locks",
        Path(tempfile.gettempdir()) / "tinyforge-locks",
    ):
        try:
            base.mkdir(parents=True, exist_ok=True)
        except OSError:
            continue
        if os.access(base, os.W_OK):
            return base / name
    raise TinyForgeError(f"TinyForge found no writable folder for the lock of {project_dir}.")


def _holder(path: Path) -> str:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        command, pid, since = str(data["command"]), int(data["pid"]), float(data["since"])
    except (OSError, ValueError, KeyError, TypeError):
        return "another TinyForge command holds it"
    when = time.strftime("%H:%M:%S", time.localtime(since))
    return f"`tinyforge {command}` (process {pid}) has held it since {when}"


@contextlib.contextmanager
def project_lock(project_dir: Path, command: str) -> Iterator[None]:
    """Hold the project's lock for `command`; ProjectBusy (one sentence) when another holds it."""
    path = lock_path(project_dir)
    me = threading.get_ident()
    with _held_guard:
        owner = _held.get(path)
        if owner is not None and owner[0] == me:
            _held[path] = (me, owner[1] + 1)
            reentered = True
        elif owner is not None:
            raise ProjectBusy(f"{project_dir} is busy: {_holder(path)}; wait for it or cancel it.")
        else:
            reentered = False
    if reentered:
        try:
            yield
        finally:
            with _held_guard:
                owner = _held[path]
                _held[path] = (me, owner[1] - 1)
        return
    handle = open(path, "a+", encoding="utf-8")  # noqa: SIM115 - held across the yield
    try:
        if not _try_lock(handle):
            raise ProjectBusy(f"{project_dir} is busy: {_holder(path)}; wait for it or cancel it.")
        handle.seek(0)
        handle.truncate()
        handle.write(json.dumps({"command": command, "pid": os.getpid(), "since": time.time()}))
        handle.flush()
        with _held_guard:
            _held[path] = (me, 1)
        try:
            # The lock is ours, so whatever command left a transaction journal has ended (a
            # server killed during a build): finish its restore before this command reads
            # anything.
            journal.recover(Path(project_dir))
            yield
        finally:
            with _held_guard:
                _held.pop(path, None)
    finally:
        handle.close()  # releases the OS lock


def locked(command: str) -> Callable[[F], F]:
    """Decorator: the function (whose first argument is the project folder) holds the lock."""

    def wrap(function: F) -> F:
        @functools.wraps(function)
        def run(project_dir: Path, *args: Any, **kwargs: Any) -> Any:
            with project_lock(project_dir, command):
                return function(project_dir, *args, **kwargs)

        return run  # type: ignore[return-value]

    return wrap
