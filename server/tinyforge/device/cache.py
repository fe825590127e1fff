"""Compiled TFLM objects, cached per (source tree, core, kernels, flags, compiler).

The first `verify` on a machine compiles TFLM's core and the kernels the model uses (about a
minute on two cores); every later one, for any model with the same operators, only links.
Objects live in the user's cache folder (XDG_CACHE_HOME or ~/.cache, or TINYFORGE_CACHE_DIR),
one folder per key, and are written atomically so that a cancelled or concurrent build never
leaves a half-written object behind.
"""

from __future__ import annotations

import hashlib
import os
import re
import subprocess
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Protocol

from tinyforge import jobs
from tinyforge.errors import StageError


def cache_root() -> Path:
    explicit = os.environ.get("TINYFORGE_CACHE_DIR")
    if explicit:
        return Path(explicit).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "tinyforge"


@cache
def compiler_version(compiler: str) -> str:
    out = subprocess.run([compiler, "--version"], capture_output=True, text=True, check=False)
    return (out.stdout.splitlines() or ["?"])[0]


def object_dir(key_parts: Sequence[str]) -> Path:
    digest = hashlib.sha256("\n".join(key_parts).encode()).hexdigest()[:20]
    return cache_root() / "tflm-objects" / digest


class CancelFlag(Protocol):
    def is_set(self) -> bool: ...


class _Either:
    """Set when the user cancels or when a sibling job failed (without touching the user's)."""

    def __init__(self, *flags: CancelFlag | None) -> None:
        self._flags = [f for f in flags if f is not None]
        self._own = threading.Event()

    def set(self) -> None:
        self._own.set()

    def is_set(self) -> bool:
        return self._own.is_set() or any(f.is_set() for f in self._flags)


@dataclass
class ToolRun:
    returncode: int
    output: bytes
    seconds: float
    stopped: bool = False  # ended by `stop_on`

    @property
    def text(self) -> str:
        return self.output.decode("utf-8", errors="replace")


def run_tool(
    cmd: Sequence[str],
    *,
    cwd: Path | None = None,
    cancel: CancelFlag | None = None,
    timeout: float = 600,
    stdin: bytes | None = None,
    stop_on: bytes | None = None,
) -> ToolRun:
    """Run a compiler or emulator in its own process group; cancel and timeout kill the tree.

    Output is kept as bytes: firmware prints UTF-8 labels whatever the locale here is.
    `stop_on`: a line that means the program will never end by itself (TFLM's "HALTED").
    """
    start = time.monotonic()
    proc = subprocess.Popen(
        list(cmd),
        cwd=cwd,
        stdin=subprocess.PIPE if stdin is not None else subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    chunks: list[bytes] = []

    def pump() -> None:
        assert proc.stdout is not None
        for chunk in iter(lambda: proc.stdout.read(65536), b""):  # type: ignore[union-attr]
            chunks.append(chunk)

    reader = threading.Thread(target=pump, daemon=True)
    reader.start()
    if stdin is not None:
        assert proc.stdin is not None
        proc.stdin.write(stdin)
        proc.stdin.close()
    stopped = False
    while proc.poll() is None:
        if stop_on is not None and stop_on in b"".join(chunks[-4:]):
            jobs.kill_tree(proc.pid)
            stopped = True
            break
        if cancel is not None and cancel.is_set():
            jobs.kill_tree(proc.pid)
            raise jobs.Cancelled(f"{Path(cmd[0]).name} was cancelled")
        if time.monotonic() - start > timeout:
            jobs.kill_tree(proc.pid)
            raise TimeoutError(f"{Path(cmd[0]).name} took longer than {timeout:.0f} s")
        time.sleep(0.02)
    proc.wait()
    reader.join(timeout=5)
    return ToolRun(proc.returncode, b"".join(chunks), time.monotonic() - start, stopped)


@dataclass(frozen=True)
class CompileJob:
    source: Path
    obj: Path
    argv: list[str]  # without -c SRC -o OBJ


def compile_all(
    jobs_: list[CompileJob],
    *,
    cancel: CancelFlag | None = None,
    on_done: Callable[[int, int], None] | None = None,
    workers: int | None = None,
) -> int:
    """Compile what is not cached yet, in parallel; returns how many were compiled."""
    todo = [job for job in jobs_ if not job.obj.is_file()]
    if not todo:
        return 0
    workers = workers or max(1, len(os.sched_getaffinity(0)))
    done = 0
    lock = threading.Lock()
    stop = _Either(cancel)

    def one(job: CompileJob) -> None:
        nonlocal done
        if stop.is_set():
            raise jobs.Cancelled("compilation was cancelled")
        job.obj.parent.mkdir(parents=True, exist_ok=True)
        tmp = job.obj.with_name(f".{job.obj.name}.{os.getpid()}.{threading.get_ident()}.tmp")
        try:
            run = run_tool([*job.argv, "-c", str(job.source), "-o", str(tmp)], cancel=stop)
        except BaseException:
            tmp.unlink(missing_ok=True)  # a killed compiler leaves a partial object
            raise
        if run.returncode != 0:
            tmp.unlink(missing_ok=True)
            first = first_error(run.text)
            raise StageError(
                "verify", f"TFLM did not compile for this core: {first}", run.text[-4000:]
            )
        os.replace(tmp, job.obj)
        with lock:
            done += 1
            if on_done is not None:
                on_done(done, len(todo))

    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="tflm-cc") as pool:
        futures = [pool.submit(one, job) for job in todo]
        finished, pending = wait(futures, return_when=FIRST_EXCEPTION)
        for future in pending:
            future.cancel()
        for future in finished:
            exc = future.exception()
            if exc is not None:
                stop.set()  # stop the compilers still running
                wait(pending)
                raise exc
    return len(todo)


def first_error(text: str) -> str:
    """The line of a compiler's or linker's output that says what went wrong."""
    for line in text.splitlines():
        if re.search(r"\berror\b|undefined reference", line):
            return line.strip()[:400]
    return (text.strip().splitlines() or ["(no output)"])[-1][:400]
