"""A build killed outright (the server with it) is restored by the next command or server start.

The backup and its journal live in the project (.tinyforge/transaction), never in the system
temp folder; the restore keeps what the user edited meanwhile, and says so in one sentence.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest
from lsprotocol import types as lsp
from pytest_lsp import LanguageClient, make_test_lsp_client

from tests.conftest import run_cli, set_epochs
from tests.lsp.conftest import vscode_session
from tinyforge.errors import StageError
from tinyforge.generate.files import write_generated
from tinyforge.transaction import all_or_nothing

pytestmark = [
    pytest.mark.security,
    # The chaos test relies on PR_SET_PDEATHSIG (Linux) to end train.py with its server; every
    # machine and CI of this project runs Linux (see test_orphans.py).
    pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG is Linux"),
]

REQUEST = "Recognize handwritten digits on an Arduino Nano 33 BLE Sense"

# A build's transaction whose process is killed while its body runs: it has regenerated
# train.py and main.cpp and half-written the model, the artifacts and the report.
KILLED_BUILD = """\
import sys, time
from pathlib import Path
from tinyforge.generate.files import write_generated
from tinyforge.transaction import all_or_nothing

project = Path(sys.argv[1])
with all_or_nothing(project):
    write_generated(
        project, {"train.py": "EPOCHS = 2\\n", "src/main.cpp": "int main() { return 1; }\\n"}
    )
    (project / "model.tflite").write_bytes(b"half-written")
    (project / "artifacts" / "metrics.json").write_text('{"new": true}')
    (project / "report.json").write_text("{}")
    print("inside", flush=True)
    time.sleep(120)
"""


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """A cache (the project locks) and a temp folder of this test's own, here and in children."""
    values = {"XDG_CACHE_HOME": str(tmp_path / "cache"), "TMPDIR": str(tmp_path / "tmp")}
    (tmp_path / "tmp").mkdir()
    for key, value in values.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setattr(tempfile, "tempdir", values["TMPDIR"])
    return {**os.environ, **values}


def _project(tmp_path: Path) -> Path:
    project = tmp_path / "ws" / "proj"
    write_generated(
        project, {"train.py": "EPOCHS = 1\n", "src/main.cpp": "int main() { return 0; }\n"}
    )
    (project / "artifacts").mkdir()
    (project / "artifacts" / "metrics.json").write_text('{"old": true}')
    (project / "model.tflite").write_bytes(b"old model")
    (project / ".tinyforge" / "device").mkdir()
    (project / ".tinyforge" / "device" / "main.o").write_bytes(b"object of a verify")
    return project


def _tree(folder: Path) -> dict[str, str]:
    """Every file and link under `folder`: its digest, or where the link points."""
    tree = {}
    for path in sorted(folder.rglob("*")):
        rel = path.relative_to(folder).as_posix()
        if path.is_symlink():
            tree[rel] = "-> " + os.readlink(path)
        elif path.is_file():
            tree[rel] = hashlib.sha256(path.read_bytes()).hexdigest()
    return tree


def _mtimes(folder: Path) -> dict[str, int]:
    return {p.relative_to(folder).as_posix(): p.stat().st_mtime_ns for p in folder.rglob("*")}


def _backups(env: dict[str, str]) -> list[str]:
    return sorted(p.name for p in Path(env["TMPDIR"]).glob("tinyforge-backup-*"))


def _gone(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def _kill_inside_a_build(project: Path, env: dict[str, str]) -> None:
    child = subprocess.Popen(
        [sys.executable, "-c", KILLED_BUILD, str(project)],
        stdout=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        assert child.stdout is not None and child.stdout.readline().strip() == "inside"
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=10)


def test_a_killed_build_is_restored_by_the_next_command(
    tmp_path: Path, env: dict[str, str]
) -> None:
    from tinyforge import journal

    project = _project(tmp_path)
    before = _tree(project)
    _kill_inside_a_build(project, env)
    assert (project / "model.tflite").read_bytes() == b"half-written"  # left as it was killed
    # The user saves main.cpp after the kill, before any other command runs.
    (project / "src/main.cpp").write_text("int main() { return 42; }  // mine\n")
    notices: list[str] = []
    with (
        journal.notices_to(lambda _p, sentence: notices.append(sentence)),
        all_or_nothing(project, command="train"),
    ):
        # The restore is finished before this command's body reads the project.
        assert (project / "model.tflite").read_bytes() == b"old model"
    assert len(notices) == 1 and len(notices[0].splitlines()) == 1
    assert notices[0].startswith("The build of proj started at ")
    assert "did not finish (its process ended); TinyForge restored the project" in notices[0]
    assert notices[0].endswith("and kept src/main.cpp as you changed it since.")
    after = _tree(project)
    assert after.pop("src/main.cpp") != before.pop("src/main.cpp")
    assert after == before  # train.py, the model, artifacts, .tinyforge (manifest, device)
    assert (project / "src/main.cpp").read_text() == "int main() { return 42; }  // mine\n"
    assert not (project / ".tinyforge" / "transaction").exists()
    assert _backups(env) == []


def test_the_backup_and_its_journal_live_in_the_project(
    tmp_path: Path, env: dict[str, str]
) -> None:
    project = _project(tmp_path)
    before = _tree(project)
    mtimes = _mtimes(project)
    tx = project / ".tinyforge" / "transaction"
    with pytest.raises(StageError), all_or_nothing(project):
        data = json.loads((tx / "journal.json").read_text())
        assert data["command"] == "build" and data["pid"] == os.getpid()
        saved = ["model.tflite", "artifacts", "train.py", "src/main.cpp", ".tinyforge"]
        assert data["saved"] == saved
        assert data["before"]["train.py"] == before["train.py"]
        backup = _tree(tx / "backup")
        assert backup["model.tflite"] == before["model.tflite"]
        assert ".tinyforge/device/main.o" in backup
        assert not any(name.startswith(".tinyforge/transaction") for name in backup)
        assert _backups(env) == [] and list(Path(env["TMPDIR"]).iterdir()) == []
        (project / ".tinyforge" / "device" / "main.o").write_bytes(b"new object")
        (project / "model.tflite").write_bytes(b"new")
        raise StageError("train", "Training failed.")
    assert _tree(project) == before  # restored, and the transaction gone
    assert _mtimes(project) == mtimes  # to the last mtime, .tinyforge/ itself included
    # A project without .tinyforge/ before a successful command has none after it either.
    bare = tmp_path / "bare"
    bare.mkdir()
    (bare / "model.tflite").write_bytes(b"m")
    with all_or_nothing(bare):
        assert (bare / ".tinyforge" / "transaction" / "journal.json").is_file()
    assert sorted(p.name for p in bare.iterdir()) == ["model.tflite"]


def test_a_crafted_journal_restores_nothing_tinyforge_does_not_write(
    tmp_path: Path, env: dict[str, str]
) -> None:
    """A journal comes from the workspace (a cloned repository can hold one): it may not make
    a restore delete or overwrite the user's data or anything outside the project."""
    from tinyforge import journal

    project = _project(tmp_path)
    (project / "data").mkdir()
    (project / "data" / "sample.csv").write_text("a,b\n1,2\n")
    outside = tmp_path / "outside.txt"
    outside.write_text("keep me")
    tx = project / ".tinyforge" / "transaction"
    (tx / "backup").mkdir(parents=True)
    (tx / "backup" / "train.py").symlink_to(outside)
    crafted = {
        "version": 1,
        "command": "build",
        "pid": 1,
        "pid_started": 0,
        "started": time.time(),
        "outputs": ["data", "../outside.txt", "train.py"],
        "editable": [],
        "before": {},
        "saved": ["train.py"],
        "links": {},
        "state_dir_existed": True,
        "state_dir_times": None,
    }
    (tx / "journal.json").write_text(json.dumps(crafted))
    before = _tree(project)
    notices: list[str] = []
    with journal.notices_to(lambda _p, sentence: notices.append(sentence)), all_or_nothing(project):
        pass
    assert (project / "data" / "sample.csv").read_text() == "a,b\n1,2\n"
    assert outside.read_text() == "keep me"
    assert not tx.exists()
    after = _tree(project)
    assert after == {k: v for k, v in before.items() if not k.startswith(".tinyforge/transaction")}
    assert notices == [
        f"TinyForge found an unreadable transaction journal in {tx} and removed it; the project "
        "was left as it is."
    ]


HOLDER = """\
import sys, time
from pathlib import Path
from tinyforge.transaction import all_or_nothing

with all_or_nothing(Path(sys.argv[1])):
    (Path(sys.argv[1]) / "model.tflite").write_bytes(b"being written")
    print("inside", flush=True)
    time.sleep(120)
"""


def test_the_journal_of_a_live_command_is_left_to_it(tmp_path: Path, env: dict[str, str]) -> None:
    """Its lock in another cache folder (another environment), a live build is not 'restored'
    under its feet: the second command gets one sentence instead."""
    from tinyforge.lock import ProjectBusy

    project = _project(tmp_path)
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(project)],
        stdout=subprocess.PIPE,
        text=True,
        env={**env, "XDG_CACHE_HOME": str(tmp_path / "other-cache")},
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "inside"
        with pytest.raises(ProjectBusy) as busy, all_or_nothing(project, command="train"):
            pass
        assert f"`tinyforge build` (process {holder.pid}) has been running since" in str(busy.value)
        assert (project / "model.tflite").read_bytes() == b"being written"
        assert (project / ".tinyforge" / "transaction" / "journal.json").is_file()
    finally:
        holder.kill()
        holder.wait(timeout=10)


# -- over stdio: the real server -----------------------------------------------------------------


async def _start_server(workspace: Path, env: dict[str, str]) -> LanguageClient:
    client = make_test_lsp_client()
    await client.start_io(sys.executable, "-m", "tinyforge.lsp", env=env)
    await client.initialize_session(vscode_session(workspace, {"board": "nano33ble"}))
    return client


async def _messages(client: LanguageClient, count: int, seconds: float = 30) -> list[str]:
    deadline = time.monotonic() + seconds
    while len(client.messages) < count and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    return [m.message for m in client.messages]


async def test_the_server_restores_a_killed_build_when_it_starts(
    tmp_path: Path, env: dict[str, str]
) -> None:
    project = _project(tmp_path)  # one level down in the workspace folder
    before = _tree(project)
    _kill_inside_a_build(project, env)
    client = await _start_server(tmp_path / "ws", env)
    try:
        messages = await _messages(client, 1)
        assert len(messages) == 1, messages
        assert messages[0].startswith("The build of proj started at ")
        assert "TinyForge restored the project as it was before it." in messages[0]
        assert _tree(project) == before
        assert _backups(env) == []
    finally:
        await client.shutdown_session()


async def test_a_command_of_a_running_server_restores_and_shows_it(
    tmp_path: Path, env: dict[str, str]
) -> None:
    """A project outside the workspace folders: the first command that takes its lock (train,
    here stopped at once by the missing tinyforge.toml) restores it and the editor is told."""
    project = _project(tmp_path)
    before = _tree(project)
    _kill_inside_a_build(project, env)
    (tmp_path / "empty-ws").mkdir()
    client = await _start_server(tmp_path / "empty-ws", env)
    try:
        assert (project / ".tinyforge" / "transaction").is_dir()  # not in the workspace
        result = await client.workspace_execute_command_async(
            lsp.ExecuteCommandParams(command="tinyforge.train", arguments=[str(project)])
        )
        assert result["ok"] is False and "tinyforge.toml" in result["error"]
        messages = await _messages(client, 1)
        assert len(messages) == 1 and messages[0].startswith("The build of proj started at ")
        assert client.messages[0].type == lsp.MessageType.Warning
        assert _tree(project) == before
    finally:
        await client.shutdown_session()


def _descendants(pid: int) -> list[psutil.Process]:
    try:
        return psutil.Process(pid).children(recursive=True)
    except psutil.NoSuchProcess:
        return []


def _trainer(processes: list[psutil.Process]) -> psutil.Process | None:
    for process in processes:
        try:
            if any("train.py" in part for part in process.cmdline()):
                return process
        except psutil.Error:
            continue
    return None


@pytest.fixture
def digits(tmp_path: Path, env: dict[str, str]) -> Iterator[Path]:
    project = tmp_path / "digits"
    new = run_cli("new", REQUEST, "--out", str(project), env=env)
    assert new.returncode == 0, new.stderr
    # A spec change the build takes in: it regenerates train.py (and the manifest) before it
    # trains, so the killed build leaves a changed project; and it trains long enough.
    set_epochs(project, 400)
    yield project


async def test_chaos_kill_the_server_during_a_build(
    digits: Path, tmp_path: Path, env: dict[str, str]
) -> None:
    """The server is SIGKILLed while train.py runs: no process of the build is left, and the
    next command restores the project and says so; the user's edit made after the kill is
    kept, every other file is as before the build, no backup is left in the temp folder."""
    before = _tree(digits)
    client = await _start_server(tmp_path, env)
    server = client._server  # pytest-lsp keeps the server's process here
    build = asyncio.ensure_future(
        client.workspace_execute_command_async(
            lsp.ExecuteCommandParams(command="tinyforge.build", arguments=[str(digits)])
        )
    )
    try:
        deadline = time.monotonic() + 120
        while _trainer(_descendants(server.pid)) is None:
            assert not build.done(), build.result()
            assert time.monotonic() < deadline, "train.py never started"
            await asyncio.sleep(0.1)
        await asyncio.sleep(1.0)  # training really under way
        build_processes = _descendants(server.pid)
        assert _trainer(build_processes) is not None
        assert _tree(digits) != before  # the build has changed the project: train.py, manifest
        server.send_signal(signal.SIGKILL)
        await asyncio.wait_for(server.wait(), timeout=10)
    finally:
        build.cancel()
        if server.returncode is None:
            server.kill()
            await server.wait()
        await asyncio.wait_for(client.stop(), timeout=10)
    deadline = time.monotonic() + 15
    while not all(_gone(p.pid) for p in build_processes):
        assert time.monotonic() < deadline, "a process of the build outlived the server"
        await asyncio.sleep(0.1)
    # The user saves train.py after the kill, before the next command.
    user_train = (digits / "train.py").read_text() + "# my own change, after the kill\n"
    (digits / "train.py").write_text(user_train)
    # The next command (a cheap one that takes the project's lock: verify, which then stops at
    # the missing model) finishes the restore first and says so.
    verify = run_cli("verify", str(digits), env=env, timeout=120)
    output = " ".join((verify.stdout + verify.stderr).split())
    assert "The build of digits started at" in output, output
    assert "did not finish (its process ended); TinyForge restored the project" in output
    assert "kept train.py as you changed it since." in output
    after = _tree(digits)
    assert (digits / "train.py").read_text() == user_train
    after.pop("train.py"), before.pop("train.py")
    assert after == before  # no file lost, none left half-written, nothing new
    assert not (digits / ".tinyforge" / "transaction").exists()
    assert _backups(env) == []


def test_every_output_of_a_transaction_is_restorable() -> None:
    """journal.RESTORABLE is what a journal may name: every command's outputs are in it."""
    from tinyforge import journal
    from tinyforge.convert.onnx import _PROJECT_OUTPUTS
    from tinyforge.transaction import BUILD_OUTPUTS

    assert set(BUILD_OUTPUTS) | set(_PROJECT_OUTPUTS) <= journal.RESTORABLE
