"""One command at a time per project (build, train, convert, fit, deploy): a second one gets one
sentence naming the holder."""

from __future__ import annotations

import contextlib
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tinyforge import cli, deploy, jobs, pipeline
from tinyforge.convert.onnx import convert_onnx
from tinyforge.fit import FIT_DIR, FitOptions, fit
from tinyforge.lock import ProjectBusy, lock_path, project_lock
from tinyforge.transaction import all_or_nothing

pytestmark = pytest.mark.security

HOLDER = """\
import sys, time
from pathlib import Path
from tinyforge.lock import project_lock

with project_lock(Path(sys.argv[1]), "deploy"):
    print("held", flush=True)
    time.sleep(120)
"""


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    folder = tmp_path / "proj"
    folder.mkdir()
    (folder / "model.tflite").write_bytes(b"model")
    return folder


def test_a_second_build_in_another_thread_is_refused(project: Path) -> None:
    entered, release = threading.Event(), threading.Event()

    def first() -> None:
        with all_or_nothing(project):
            entered.set()
            release.wait(10)

    thread = threading.Thread(target=first)
    thread.start()
    try:
        assert entered.wait(10)
        with pytest.raises(ProjectBusy) as busy, all_or_nothing(project, command="train"):
            pass
        message = str(busy.value)
        assert "is busy: `tinyforge build`" in message and "has held it since" in message
        assert len(message.splitlines()) == 1
    finally:
        release.set()
        thread.join()
    with all_or_nothing(project, command="train"):  # free again
        pass
    # The lock lives outside the project: a failed build leaves the project byte for byte.
    assert sorted(p.name for p in project.iterdir()) == ["model.tflite"]
    assert not lock_path(project).is_relative_to(project)


def test_the_same_thread_may_take_it_again(project: Path) -> None:
    with project_lock(project, "build"), project_lock(project, "deploy"):
        pass


def test_another_process_holds_it_until_it_dies(
    project: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    env = {"XDG_CACHE_HOME": str(tmp_path / "cache"), "PATH": "/usr/bin:/bin"}
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(project)], stdout=subprocess.PIPE, text=True, env=env
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        with pytest.raises(ProjectBusy, match=rf"`tinyforge deploy` \(process {holder.pid}\)"):
            deploy.build_firmware(project)
        capsys.readouterr()
        assert cli.main(["deploy", str(project)]) == 2
        said = capsys.readouterr().err
        assert "is busy: `tinyforge deploy`" in said and "Traceback" not in said
    finally:
        holder.kill()
        holder.wait()
    deadline = time.monotonic() + 10
    while True:  # the OS released the dead process's lock: no stale lock file blocks
        try:
            with project_lock(project, "build"):
                break
        except ProjectBusy:
            assert time.monotonic() < deadline
            time.sleep(0.1)


# -- fit and ONNX conversion take it too ---------------------------------------------------------


class HoldAt:
    """A Progress that stops the command at the start of `stage` until released (it holds the
    project's lock meanwhile, as for its whole run)."""

    def __init__(self, stage: str) -> None:
        self.at, self.reached, self.release = stage, threading.Event(), threading.Event()

    def stage(self, name: str, index: int, total: int) -> None:
        if name == self.at:
            self.reached.set()
            self.release.wait(60)

    def update(self, fraction: float | None, message: str) -> None:
        pass

    def log(self, line: str) -> None:
        pass


@contextlib.contextmanager
def running(command: Callable[[HoldAt, threading.Event], object], stage: str) -> Iterator[None]:
    """`command(progress, cancel)` in a thread, held at `stage`; cancelled on the way out."""
    progress, cancel = HoldAt(stage), threading.Event()
    ended: list[BaseException] = []

    def run() -> None:
        try:
            command(progress, cancel)
        except BaseException as exc:  # handed to the test below
            ended.append(exc)

    thread = threading.Thread(target=run)
    thread.start()
    try:
        assert progress.reached.wait(120), ended
        yield
    finally:
        cancel.set()
        progress.release.set()
        thread.join(120)
    assert ended and isinstance(ended[0], jobs.Cancelled), ended


@pytest.fixture
def digits(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.chdir(tmp_path)
    folder = tmp_path / "digits"
    pipeline.new_project("handwritten digits on a Pi Pico", folder)
    return folder


@contextlib.contextmanager
def held(folder: Path, command: str) -> Iterator[None]:
    """The folder's lock held by another thread for `command`."""
    taken, release = threading.Event(), threading.Event()

    def hold() -> None:
        with project_lock(folder, command):
            taken.set()
            release.wait(120)

    thread = threading.Thread(target=hold)
    thread.start()
    try:
        assert taken.wait(10)
        yield
    finally:
        release.set()
        thread.join()


def test_fit_waits_for_no_one(digits: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with held(digits, "deploy"):
        code = cli.main(["fit", str(digits), "--trials", "1", "--epochs", "1"])
    err = capsys.readouterr().err
    assert code == 2
    assert "is busy: `tinyforge deploy`" in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1
    assert not (digits / FIT_DIR).exists()


def test_a_build_waits_for_fit(digits: Path) -> None:
    def search(progress: HoldAt, cancel: threading.Event) -> object:
        return fit(digits, FitOptions(trials=1), progress=progress, cancel=cancel)

    with running(search, "search"), pytest.raises(ProjectBusy) as busy, all_or_nothing(digits):
        pass
    assert "is busy: `tinyforge fit`" in str(busy.value)


def test_onnx_conversion_into_a_held_folder_is_refused(
    tiny_onnx: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    out = tmp_path / "converted"  # not there yet: the command that holds it is creating it
    with held(out, "deploy"):
        code = cli.main(["convert", str(tiny_onnx), "--board", "nano33ble", "--out", str(out)])
    err = capsys.readouterr().err
    assert code == 2
    assert "is busy: `tinyforge deploy`" in err and "Traceback" not in err
    assert not out.exists()


@pytest.mark.parametrize("folder", ["new", "project"])
def test_an_onnx_conversion_holds_its_folder(
    tiny_onnx: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, folder: str
) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    out = tmp_path / "converted"
    if folder == "project":  # a project from an earlier conversion, converted again
        convert_onnx(tiny_onnx, board="nano33ble", out=out)
    before = sorted(p.relative_to(out) for p in out.rglob("*")) if out.exists() else None

    def convert(progress: HoldAt, cancel: threading.Event) -> object:
        return convert_onnx(tiny_onnx, board="nano33ble", out=out, progress=progress, cancel=cancel)

    build = project_lock(out, "build")
    with running(convert, "convert"), pytest.raises(ProjectBusy) as busy, build:
        pass
    assert "is busy: `tinyforge convert`" in str(busy.value)
    # Cancelled: a new folder is gone, a project is as it was.
    assert (sorted(p.relative_to(out) for p in out.rglob("*")) if out.exists() else None) == before
