"""One command at a time per project: a second one gets one sentence naming the holder."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from tinyforge import cli, deploy
from tinyforge.lock import ProjectBusy, lock_path, project_lock
from tinyforge.pipeline import all_or_nothing

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
