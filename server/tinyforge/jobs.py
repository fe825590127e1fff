"""Child processes with streamed output and cancel, shared by the CLI and the language server.

Heavy work (TensorFlow, TFLM, pio) always runs in a child: it keeps the caller responsive, keeps
TensorFlow out of the server's memory, and lets a cancel kill the whole process tree.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import psutil

LineHandler = Callable[[str], None]


class Cancelled(Exception):
    """The job was cancelled by the user; its process tree is gone."""


@dataclass
class JobResult:
    returncode: int
    tail: list[str]
    seconds: float

    @property
    def ok(self) -> bool:
        return self.returncode == 0

    def tail_text(self, lines: int = 20) -> str:
        return "\n".join(self.tail[-lines:])


# Secrets no child needs: the API is called by TinyForge's own process (plan/claude.py,
# repair/claude.py), never by train.py, a worker, pio or the user's code.
SECRET_ENV = frozenset({"ANTHROPIC_API_KEY"})


def python_command(*args: str) -> list[str]:
    """A command that runs this interpreter (the project's venv) with `args`.

    A module (`-m name`) runs in safe-path mode (`-P`): neither the working folder nor a
    project's `tinyforge/` folder can shadow TinyForge's own modules. A script (`train.py`)
    keeps its own folder on the path, as `python train.py` would.
    """
    if args[:1] == ("-m",) and sys.version_info >= (3, 11):
        return [sys.executable, "-P", *args]
    return [sys.executable, *args]


def _die_with_parent() -> None:  # pragma: no cover - runs in the child between fork and exec
    """Linux: the child gets SIGKILL when the thread that started it ends (a killed server or
    CLI), so no train.py keeps writing files after its parent is gone."""
    import ctypes

    with contextlib.suppress(Exception):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)


PR_SET_PDEATHSIG = 1


def neutral_cwd() -> Path:
    """A working folder outside any project or workspace, for children that need none."""
    return Path(tempfile.gettempdir())


def child_environment(extra: dict[str, str] | None = None) -> dict[str, str]:
    """os.environ for a child, plus `extra`, without the secrets no child needs."""
    env = {k: v for k, v in os.environ.items() if k not in SECRET_ENV}
    env.update(extra or {})
    return env


def kill_tree(pid: int) -> None:
    """Kill a process and every descendant (including ones that left our process group)."""
    try:
        parent = psutil.Process(pid)
        procs = [*parent.children(recursive=True), parent]
    except psutil.NoSuchProcess:
        return
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)
    for proc in procs:
        with contextlib.suppress(psutil.NoSuchProcess):
            proc.kill()
    psutil.wait_procs(procs, timeout=5)


def run(
    cmd: Sequence[str],
    *,
    cwd: Path | None = None,
    env: dict[str, str] | None = None,
    on_line: LineHandler | None = None,
    cancel: threading.Event | None = None,
    timeout: float | None = None,
    keep_lines: int = 200,
) -> JobResult:
    """Run `cmd`, streaming merged stdout/stderr lines to `on_line`.

    Raises Cancelled when `cancel` is set, TimeoutError past `timeout`; the tree dies either way.
    """
    child_env = child_environment(env)  # never the API key (SECRET_ENV)
    # Child Python output must arrive line by line for progress, not at exit.
    child_env.setdefault("PYTHONUNBUFFERED", "1")
    start = time.monotonic()
    proc = subprocess.Popen(
        list(cmd),
        cwd=cwd,
        env=child_env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        errors="replace",
        bufsize=1,
        start_new_session=True,  # its own process group, killed as a tree (kill_tree)
        preexec_fn=_die_with_parent if sys.platform.startswith("linux") else None,
    )
    tail: deque[str] = deque(maxlen=keep_lines)
    stop_reason: list[str] = []

    def watchdog() -> None:
        while proc.poll() is None:
            if cancel is not None and cancel.is_set():
                stop_reason.append("cancel")
                kill_tree(proc.pid)
                return
            if timeout is not None and time.monotonic() - start > timeout:
                stop_reason.append("timeout")
                kill_tree(proc.pid)
                return
            time.sleep(0.05)

    guard = threading.Thread(target=watchdog, daemon=True)
    guard.start()
    assert proc.stdout is not None
    for raw in proc.stdout:
        line = raw.rstrip("\n")
        tail.append(line)
        if on_line is not None:
            on_line(line)
    proc.wait()
    guard.join(timeout=1)
    if stop_reason and stop_reason[0] == "cancel":
        raise Cancelled(f"{Path(cmd[0]).name} was cancelled")
    if stop_reason and stop_reason[0] == "timeout":
        raise TimeoutError(f"{' '.join(cmd[:3])} took longer than {timeout:.0f} s")
    return JobResult(proc.returncode, list(tail), time.monotonic() - start)
