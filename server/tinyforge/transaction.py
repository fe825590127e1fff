"""All or nothing: a command that writes a project leaves it as before if it fails or is cancelled.

The build (pipeline.py), training alone, and an ONNX conversion into a project (convert/onnx.py)
run inside `all_or_nothing`. The journal (journal.py) keeps the backup in the project, so that a
process killed outright is undone by the next command too; this module is the transaction
around a command's body: the project's lock, the journal's begin, restore and finish, and the
sentence naming the user's edits that were kept.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tinyforge import journal
from tinyforge.errors import TinyForgeError
from tinyforge.generate import (
    ARTIFACTS_DIR,
    MAIN_CPP,
    MODEL_DATA_CC,
    MODEL_DATA_H,
    MODEL_KERAS,
    MODEL_TFLITE,
    PLATFORMIO_INI,
    REPORT_FILE,
    TRAIN_SCRIPT,
)
from tinyforge.lock import project_lock

# Everything a build writes: restored as it was when a build fails or is cancelled (all listed
# in journal.RESTORABLE; `.tinyforge` less its transaction folder, which holds the backup).
BUILD_OUTPUTS = (
    MODEL_KERAS,
    MODEL_TFLITE,
    REPORT_FILE,
    ARTIFACTS_DIR,
    TRAIN_SCRIPT,
    PLATFORMIO_INI,
    MAIN_CPP,
    MODEL_DATA_H,
    MODEL_DATA_CC,
    journal.STATE_DIR,
)

# Outputs a user edits (in the editor, during a long build): restored only when they still hold
# what the build generated (.tinyforge/manifest.json), never over the user's newer edits.
EDITABLE_OUTPUTS = frozenset({TRAIN_SCRIPT, PLATFORMIO_INI, MAIN_CPP, MODEL_DATA_H, MODEL_DATA_CC})


@contextmanager
def all_or_nothing(
    project_dir: Path, outputs: tuple[str, ...] = BUILD_OUTPUTS, *, command: str = "build"
) -> Iterator[None]:
    """Leave the project as before when the body fails or is cancelled: what the build wrote
    is restored, but a source the user changed meanwhile (train.py, src/main.cpp, …) stays as
    the user left it, and the error says so. The project's lock is held throughout: a second
    build, train, convert or deploy of it gets one sentence naming `command` (lock.py).

    The backup and its journal live in the project (.tinyforge/transaction, journal.py), not
    in the system temp folder: when the process is killed outright, the next command that
    takes the lock, or the language server's start, finishes the same restore."""
    with project_lock(project_dir, command), _journaled(project_dir, outputs, command):
        yield


# Projects with a transaction open in this process. Only the thread holding the project's lock
# opens one, so a second one here is nested in the first (same thread).
_open_transactions: set[Path] = set()


@contextmanager
def _journaled(project_dir: Path, outputs: tuple[str, ...], command: str) -> Iterator[None]:
    key = Path(project_dir).resolve()
    if key in _open_transactions:
        # Nested: the outer transaction's backup already holds the project as it was before
        # both, and the failure that reaches it restores that; one journal per project.
        yield
        return
    transaction = journal.begin(project_dir, outputs, command=command, editable=EDITABLE_OUTPUTS)
    _open_transactions.add(key)
    try:
        yield
    except BaseException as exc:
        # A restore that fails leaves the journal: the next command finishes it.
        kept = journal.restore(project_dir, transaction)
        journal.finish(project_dir, transaction, restored=True)
        if kept and isinstance(exc, TinyForgeError) and exc.args:
            names = ", ".join(kept)
            exc.args = (
                f"{exc.args[0]} The build kept {names} as you changed "
                f"{'it' if len(kept) == 1 else 'them'} during the build.",
                *exc.args[1:],
            )
        raise
    else:
        journal.finish(project_dir, transaction)
    finally:
        _open_transactions.discard(key)
