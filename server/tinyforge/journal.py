"""The transaction journal: a build's backup kept inside the project, so a killed build is undone.

A build (train, convert, …) writes many files, and transaction.all_or_nothing puts back what it
wrote when it fails or is cancelled. A process killed outright (SIGKILL, an editor that crashed
with its server) runs no `except` clause, and a backup in the system temp folder would be
orphaned there. So the backup, and what the restore needs (the files the command may write,
their digests before it, which were links), go to `.tinyforge/transaction/` before the command's
body runs, and are removed when it ends. The next command that takes the project's lock
(lock.py) or the language server when it starts finds a journal whose owner is gone, finishes
the restore and says so in one sentence.

One restore serves both paths (`restore`): only what the command wrote is put back, and an
editable source (train.py, src/main.cpp, …) only when it still holds what the command generated
(.tinyforge/manifest.json); an edit the user saved meanwhile, even after the kill, is kept.

A journal is data read from a workspace: it is validated and may name only paths TinyForge
itself writes, nothing is copied through a link, and nothing is written through a link that
leaves the project; a crafted journal cannot delete or overwrite anything else.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import itertools
import json
import logging
import os
import re
import shutil
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from tinyforge.errors import TinyForgeError

STATE_DIR = ".tinyforge"
TRANSACTION = PurePosixPath(STATE_DIR, "transaction")
JOURNAL_NAME = "journal.json"
BACKUP_NAME = "backup"
VERSION = 1

# Every path a transaction may restore: the outputs of a build (transaction.BUILD_OUTPUTS) and of an
# ONNX conversion into a project (convert/onnx.py). A journal naming anything else is refused,
# so a crafted one cannot make a restore delete the user's data/ or sources.
RESTORABLE = frozenset(
    {
        ".tinyforge",
        ".gitignore",
        "artifacts",
        "calibration.npy",
        "lib/model/model_data.cc",
        "lib/model/model_data.h",
        "model.keras",
        "model.onnx",
        "model.tflite",
        "platformio.ini",
        "report.json",
        "src/main.cpp",
        "tinyforge.toml",
        "train.py",
    }
)

# What a command is called in the sentence ("The build started at 18:02 did not finish …").
_NOUNS = {
    "build": "build",
    "train": "training",
    "convert": "conversion",
    "deploy": "firmware build",
}

# The language server looks this many entries deep into each workspace folder, no further: a
# home folder opened as a workspace must not stall the start.
MAX_SUBFOLDERS = 500

_DIGEST = re.compile(r"[0-9a-f]{64}")

log = logging.getLogger(__name__)


class JournalError(ValueError):
    """A journal that is not one TinyForge wrote (truncated, crafted, of another version)."""


@dataclass(frozen=True)
class Journal:
    """What `restore` needs, as written before the command's body ran."""

    command: str
    pid: int
    pid_started: float | None  # the owner's start time: a reused pid is not the owner
    started: float
    outputs: tuple[str, ...]
    editable: tuple[str, ...]  # outputs a user edits: restored only when still generated
    before: dict[str, str | None]  # editable output → sha256 of its bytes before (None: absent)
    saved: tuple[str, ...]  # outputs copied to the backup
    links: dict[str, str]  # symlinked outputs (artifacts/ → a big disk): the link, not the data
    state_dir_existed: bool  # .tinyforge/ was there before: else it goes when empty again
    # .tinyforge/'s times (ns) before the transaction folder went in: a restored project is
    # as it was to the last mtime (a file watcher or `make` sees no change).
    state_dir_times: tuple[int, int] | None
    kept: tuple[str, ...] | None = None  # decided once, when a restore starts (see `restore`)

    def to_json(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data["version"] = VERSION
        return data

    @classmethod
    def from_json(cls, data: Any) -> Journal:
        """The journal in `data`, validated; JournalError when anything is off."""
        if not isinstance(data, dict) or data.get("version") != VERSION:
            raise JournalError("not a journal of this version")
        try:
            outputs = tuple(_rel(r) for r in _list(data["outputs"]))
            journal = cls(
                command=_text(data["command"]),
                pid=_int(data["pid"]),
                pid_started=None if data["pid_started"] is None else _num(data["pid_started"]),
                started=_num(data["started"]),
                outputs=outputs,
                editable=tuple(_rel(r) for r in _list(data["editable"])),
                before={_rel(k): _digest_or_none(v) for k, v in _dict(data["before"]).items()},
                saved=tuple(_rel(r) for r in _list(data["saved"])),
                links={_rel(k): _link(v) for k, v in _dict(data["links"]).items()},
                state_dir_existed=bool(data["state_dir_existed"]),
                state_dir_times=_times(data["state_dir_times"]),
                kept=None
                if data.get("kept") is None
                else tuple(_rel(r) for r in _list(data["kept"])),
            )
        except KeyError as exc:
            raise JournalError(f"no {exc.args[0]}") from None
        named = set(journal.outputs)
        parts = (journal.editable, journal.before, journal.saved, journal.links, journal.kept or ())
        if any(not set(part) <= named for part in parts):
            raise JournalError("names a path that is not among its outputs")
        return journal


def _list(value: Any) -> list[Any]:
    if not isinstance(value, list):
        raise JournalError("a list was expected")
    return value


def _dict(value: Any) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise JournalError("an object was expected")
    return value


def _text(value: Any) -> str:
    if not isinstance(value, str) or not value.isprintable() or len(value) > 40:
        raise JournalError("a short name was expected")
    return value


def _int(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise JournalError("a process id was expected")
    return value


def _num(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not value >= 0:
        raise JournalError("a time was expected")
    return float(value)


def _times(value: Any) -> tuple[int, int] | None:
    if value is None:
        return None
    times = _list(value)
    if len(times) != 2 or any(isinstance(t, bool) or not isinstance(t, int) for t in times):
        raise JournalError("two times were expected")
    return (times[0], times[1])


def _rel(value: Any) -> str:
    if not isinstance(value, str) or value not in RESTORABLE:
        raise JournalError(f"{value!r} is not a file TinyForge restores")
    return value


def _digest_or_none(value: Any) -> str | None:
    if value is None or (isinstance(value, str) and _DIGEST.fullmatch(value)):
        return value
    raise JournalError("a digest was expected")


def _link(value: Any) -> str:
    if not isinstance(value, str) or not value or "\0" in value:
        raise JournalError("a link target was expected")
    return value


# -- telling the user ----------------------------------------------------------------------------

Listener = Callable[[Path, str], None]
_listeners: list[Listener] = []
_listeners_guard = threading.Lock()


@contextlib.contextmanager
def notices_to(listener: Listener) -> Iterator[None]:
    """Send the sentences of finished restores to `listener` (the CLI prints them, the language
    server shows them) while the block runs: a recovery happens deep inside whatever command
    takes the lock, which has no other way to the user."""
    remove = add_listener(listener)
    try:
        yield
    finally:
        remove()


def add_listener(listener: Listener) -> Callable[[], None]:
    """Like `notices_to`, for the life of a process (the language server): returns its remover."""
    with _listeners_guard:
        _listeners.append(listener)

    def remove() -> None:
        with _listeners_guard, contextlib.suppress(ValueError):
            _listeners.remove(listener)

    return remove


def announce(project_dir: Path, sentence: str) -> None:
    log.info("%s", sentence)  # for a log handler, if any: the listeners tell the user
    with _listeners_guard:
        listeners = list(_listeners)
    for listener in listeners:
        try:
            listener(project_dir, sentence)
        except Exception:  # a closed editor connection must not fail the command itself
            log.exception("could not pass on: %s", sentence)


def recovered_sentence(
    journal: Journal, kept: Iterable[str], project_name: str, *, now: float | None = None
) -> str:
    """The one sentence of a finished recovery (pure: the tests and both doors share it)."""
    noun = _NOUNS.get(journal.command, f"`tinyforge {journal.command}`")
    started = time.localtime(journal.started)
    same_day = time.strftime("%Y-%m-%d", started) == time.strftime(
        "%Y-%m-%d", time.localtime(time.time() if now is None else now)
    )
    when = time.strftime("%H:%M" if same_day else "%Y-%m-%d %H:%M", started)
    why = "its process ended" if journal.pid != os.getpid() else "its restore was cut short"
    sentence = (
        f"The {noun} of {project_name} started at {when} did not finish ({why}); TinyForge "
        "restored the project as it was before it"
    )
    names = sorted(kept)
    if names:
        them = "it" if len(names) == 1 else "them"
        sentence += f", and kept {' and '.join(names)} as you changed {them} since"
    return sentence + "."


# -- the transaction -----------------------------------------------------------------------------


def transaction_dir(project_dir: Path) -> Path:
    return Path(project_dir) / TRANSACTION


def begin(
    project_dir: Path, outputs: Iterable[str], *, command: str, editable: Iterable[str]
) -> Journal:
    """Back up `outputs` into the project and write the journal; the body may run after this.

    The journal is written last, atomically: a transaction folder without one is a backup
    whose command never started, and is simply discarded.
    """
    from tinyforge.generate.files import inside_project, write_atomic

    project_dir = Path(project_dir)
    outputs = tuple(outputs)
    unknown = sorted(set(outputs) - RESTORABLE)
    if unknown:  # a programmer's error: a new output must be added to RESTORABLE
        raise ValueError(f"journal.RESTORABLE lacks {', '.join(unknown)}")
    inside_project(project_dir, TRANSACTION)  # .tinyforge/ may not lead out of the project
    recover(project_dir)  # the lock's holder recovers on taking it; this is for the odd caller
    tx = transaction_dir(project_dir)
    state = project_dir / STATE_DIR
    state_dir_existed = state.exists() or state.is_symlink()
    times = None
    if state.is_dir() and not state.is_symlink():
        stat = state.stat()
        times = (stat.st_atime_ns, stat.st_mtime_ns)
    backup = tx / BACKUP_NAME
    try:
        backup.mkdir(parents=True)
        editable_set = frozenset(editable)
        editable_here = tuple(rel for rel in outputs if rel in editable_set)
        before = {rel: file_digest(project_dir / rel) for rel in editable_here}
        saved: list[str] = []
        links: dict[str, str] = {}
        for rel in outputs:
            src = project_dir / rel
            if src.is_symlink():
                links[rel] = os.readlink(src)
            elif src.is_dir():
                skip = _skip_transaction(src, rel)
                shutil.copytree(src, backup / rel, symlinks=True, ignore=skip)
                saved.append(rel)
            elif src.is_file():
                (backup / rel).parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(src, backup / rel)
                saved.append(rel)
        journal = Journal(
            command=command,
            pid=os.getpid(),
            pid_started=_process_started(os.getpid()),
            started=time.time(),
            outputs=outputs,
            editable=editable_here,
            before=before,
            saved=tuple(saved),
            links=links,
            state_dir_existed=state_dir_existed,
            state_dir_times=times,
        )
        write_atomic(project_dir, TRANSACTION / JOURNAL_NAME, json.dumps(journal.to_json()))
    except BaseException:
        _discard(tx)
        if not state_dir_existed:
            with contextlib.suppress(OSError):
                state.rmdir()
        raise
    return journal


def restore(project_dir: Path, journal: Journal) -> list[str]:
    """Put back what the command wrote; the editable outputs the user changed meanwhile are
    kept, and returned. Safe to run again when cut short: the kept ones are decided once and
    written to the journal first, as the manifest they are judged by is itself restored."""
    from tinyforge.generate.files import NEW_SUFFIX, write_atomic

    project_dir = Path(project_dir)
    if journal.kept is None:
        journal = dataclasses.replace(journal, kept=tuple(_users_edits(project_dir, journal)))
        write_atomic(project_dir, TRANSACTION / JOURNAL_NAME, json.dumps(journal.to_json()))
    kept = set(journal.kept or ())
    backup = _backup_dir(project_dir)
    for rel in journal.outputs:
        target = _target(project_dir, rel)
        if rel in kept or (
            rel in journal.editable and file_digest(target) == journal.before.get(rel)
        ):
            continue  # the user's edit, or untouched
        _clear(project_dir, rel)
        stale = project_dir / (rel + NEW_SUFFIX)
        if rel not in journal.saved and (stale.is_file() or stale.is_symlink()):
            stale.unlink()
    for rel in journal.saved:
        target = _target(project_dir, rel)
        if rel in kept or (target.exists() and not _holds_transaction(rel)):
            continue
        _copy_back(backup, rel, target)
    for rel, link in journal.links.items():
        target = _target(project_dir, rel)
        if not target.is_symlink():
            _remove(target)
            target.parent.mkdir(parents=True, exist_ok=True)
            os.symlink(link, target)
    return sorted(kept)


def finish(project_dir: Path, journal: Journal, *, restored: bool = False) -> None:
    """The transaction is over (done, or `restored`): remove its folder."""
    tx = transaction_dir(project_dir)
    state = Path(project_dir) / STATE_DIR
    # The journal first: a finish cut short leaves a folder without one, which is discarded.
    with contextlib.suppress(FileNotFoundError):
        (tx / JOURNAL_NAME).unlink()
    _discard(tx)
    if not journal.state_dir_existed:
        with contextlib.suppress(OSError):  # not empty: the command wrote its manifest
            state.rmdir()
    elif restored and journal.state_dir_times and state.is_dir() and not state.is_symlink():
        with contextlib.suppress(OSError):
            os.utime(state, ns=journal.state_dir_times)


def recover(project_dir: Path) -> str | None:
    """Finish the restore of a command that ended inside its transaction; its sentence, or None
    when there was nothing to finish. The caller holds the project's lock (lock.py): the owner
    of any journal found has ended, unless its lock lives elsewhere (another cache folder), in
    which case a live owner is left alone."""
    project_dir = Path(project_dir)
    tx = transaction_dir(project_dir)
    if not (tx.exists() or tx.is_symlink()):
        return None  # the usual case: one stat per command
    if not tx.parent.resolve().is_relative_to(project_dir.resolve()):
        log.info("%s leads out of the project: left alone", tx.parent)
        return None  # not this project's: never removed or read through a link
    path = tx / JOURNAL_NAME
    if tx.is_symlink() or not (path.is_file() and not path.is_symlink()):
        _discard(tx)  # a backup whose command never began: nothing was touched
        return None
    try:
        journal = Journal.from_json(json.loads(path.read_text(encoding="utf-8")))
    except (OSError, ValueError) as exc:
        log.info("unreadable journal in %s: %s", tx, exc)
        _discard(tx)
        sentence = (
            f"TinyForge found an unreadable transaction journal in {tx} and removed it; the "
            "project was left as it is."
        )
        announce(project_dir, sentence)
        return sentence
    if _owner_alive(journal):
        from tinyforge.lock import ProjectBusy

        started = time.strftime("%H:%M:%S", time.localtime(journal.started))
        raise ProjectBusy(
            f"{project_dir} is busy: `tinyforge {journal.command}` (process {journal.pid}) has "
            f"been running since {started}; wait for it or cancel it."
        )
    kept = restore(project_dir, journal)
    finish(project_dir, journal, restored=True)
    sentence = recovered_sentence(journal, kept, project_dir.resolve().name)
    announce(project_dir, sentence)
    return sentence


def recover_folders(folders: Iterable[Path]) -> None:
    """The language server's start: finish the restores left in the workspace's projects (a
    folder, or one level down). Each is restored under its lock; a project whose lock another
    process holds is busy with a live command and is left to it. Sentences go to `announce`."""
    from tinyforge.lock import ProjectBusy, project_lock

    for project in _with_transactions(folders):
        try:
            with project_lock(project, "recover"):  # recovers on taking it
                pass
        except ProjectBusy:
            continue
        except (OSError, TinyForgeError) as exc:
            announce(project, f"TinyForge could not restore {project}: {exc}")


def _with_transactions(folders: Iterable[Path]) -> Iterator[Path]:
    for folder in folders:
        folder = Path(folder)
        try:
            below = itertools.islice(folder.iterdir(), MAX_SUBFOLDERS)
            subfolders = sorted(p for p in below if not p.name.startswith("."))
        except OSError:
            subfolders = []
        for candidate in (folder, *subfolders):
            tx = transaction_dir(candidate)
            with contextlib.suppress(OSError):
                if candidate.is_dir() and not candidate.is_symlink() and tx.exists():
                    yield candidate


# -- files ---------------------------------------------------------------------------------------


def file_digest(path: Path) -> str | None:
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()
    except OSError:
        return None


def _text_digest(path: Path) -> str | None:
    """The manifest's kind of digest (of the UTF-8 text), or None for no readable text."""
    try:
        return hashlib.sha256(path.read_text(encoding="utf-8").encode("utf-8")).hexdigest()
    except (OSError, UnicodeDecodeError):
        return None


def _users_edits(project_dir: Path, journal: Journal) -> list[str]:
    """Editable outputs changed since the journal began that do not hold what TinyForge
    generated (.tinyforge/manifest.json): the user's edits, made during the command or after."""
    from tinyforge.generate.files import load_manifest

    manifest = load_manifest(project_dir)
    kept = []
    for rel in sorted(journal.editable):
        target = _target(project_dir, rel)
        now = file_digest(target)
        if now == journal.before.get(rel):
            continue  # untouched: nothing to restore
        if now is not None and manifest.get(rel) != _text_digest(target):
            kept.append(rel)
    return kept


def _target(project_dir: Path, rel: str) -> Path:
    """`rel` in the project, its folder checked: a restore never writes or removes through a
    link that leaves the project (the link itself, at `rel`, is handled as a link)."""
    root = project_dir.resolve()
    target = project_dir / rel
    if not target.parent.resolve().is_relative_to(root):
        raise TinyForgeError(
            f"{target.parent} leads out of the project: TinyForge does not restore {rel} through "
            "it; make it a real folder and run the command again."
        )
    return target


def _backup_dir(project_dir: Path) -> Path:
    backup = transaction_dir(project_dir) / BACKUP_NAME
    if backup.is_symlink() or not backup.resolve().is_relative_to(project_dir.resolve()):
        raise TinyForgeError(f"{backup} is not TinyForge's backup folder: nothing was restored.")
    return backup


def _holds_transaction(rel: str) -> bool:
    """True for `.tinyforge`: the transaction's own folder lives inside it and stays."""
    return TRANSACTION.is_relative_to(PurePosixPath(rel)) and PurePosixPath(rel) != TRANSACTION


def _skip_transaction(src: Path, rel: str) -> Callable[[str, list[str]], set[str]] | None:
    """copytree's ignore for the output `rel`: the transaction folder is never part of its own
    backup (`.tinyforge/` holds it)."""
    if not _holds_transaction(rel):
        return None
    inner = TRANSACTION.relative_to(PurePosixPath(rel))
    parent = os.path.normpath(os.path.join(src, *inner.parts[:-1]))

    def ignore(folder: str, names: list[str]) -> set[str]:
        return {inner.name} if os.path.normpath(folder) == parent else set()

    return ignore


def _clear(project_dir: Path, rel: str) -> None:
    """Remove the output `rel`; of `.tinyforge/`, everything but the transaction itself."""
    target = _target(project_dir, rel)
    if _holds_transaction(rel) and target.is_dir() and not target.is_symlink():
        keep = TRANSACTION.relative_to(PurePosixPath(rel)).parts[0]
        for child in target.iterdir():
            if child.name != keep:
                _remove(child)
        return
    _remove(target)


def _remove(target: Path) -> None:
    if target.is_symlink() or target.is_file():
        target.unlink()  # a link itself, never what it points to
    elif target.is_dir():
        shutil.rmtree(target)


def _copy_back(backup: Path, rel: str, target: Path) -> None:
    """Copy the backup of `rel` to `target`: links as links, never what they point to."""
    src = backup / rel
    if not src.parent.resolve().is_relative_to(backup.resolve()):
        raise TinyForgeError(f"The backup of {rel} leads out of {backup}: it was not restored.")
    target.parent.mkdir(parents=True, exist_ok=True)
    if src.is_symlink():
        os.symlink(os.readlink(src), target)
    elif src.is_dir():
        shutil.copytree(src, target, symlinks=True, dirs_exist_ok=True)
    elif src.is_file():
        shutil.copy2(src, target)


def _discard(tx: Path) -> None:
    if tx.is_symlink():
        tx.unlink()
    elif tx.is_dir():
        shutil.rmtree(tx, ignore_errors=True)


def _process_started(pid: int) -> float | None:
    import psutil

    try:
        started: float = psutil.Process(pid).create_time()
    except psutil.Error:
        return None
    return started


def _owner_alive(journal: Journal) -> bool:
    """The journal's owner still runs: another process, with the start time it recorded."""
    import psutil

    if journal.pid == os.getpid():
        return False  # this process holds the lock: its own transaction is over
    try:
        owner = psutil.Process(journal.pid)
        if owner.status() == psutil.STATUS_ZOMBIE:
            return False
        started = owner.create_time()
    except psutil.Error:
        return False
    return journal.pid_started is None or abs(started - journal.pid_started) < 1.0
