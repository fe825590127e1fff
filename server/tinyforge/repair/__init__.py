"""Repair: a failure → proposed fixes (offline rules first, Claude for the rest) → a diff.

`diagnose` finds what failed (the last build's recorded stage error, a report over budget, a
log the user hands over, a platformio.ini without the TFLM library); `propose_fixes` asks the
offline rules, and Claude (when a ClaudeRepairer is given) for failures no rule cures; each fix
is a set of whole-file edits shown as a unified diff and written only by `apply_fix`, i.e. when
the user accepts it (`tinyforge repair DIR --yes`, or the editor applying the WorkspaceEdit).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from tinyforge.repair.failure import (
    Failure,
    clear_failure,
    failure_from_log,
    failure_from_report,
    load_failure,
    record_failure,
)
from tinyforge.repair.fixes import FileEdit, Fix, apply_fix
from tinyforge.repair.rules import INI, Project, offline_fixes

__all__ = [
    "Failure",
    "FileEdit",
    "Fix",
    "Repair",
    "Repairer",
    "apply_fix",
    "clear_failure",
    "diagnose",
    "propose_fixes",
    "record_failure",
]


class Repairer(Protocol):
    name: str
    notices: list[str]

    def propose(self, failure: Failure, project: Project) -> Fix | None: ...


@dataclass
class Repair:
    failures: list[Failure] = field(default_factory=list)
    fixes: list[Fix] = field(default_factory=list)
    notices: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "failures": [f.to_dict() for f in self.failures],
            "fixes": [f.to_dict() for f in self.fixes],
            "notices": self.notices,
        }


def diagnose(project_dir: Path, log_text: str | None = None) -> list[Failure]:
    """What is wrong with the project now, most telling first."""
    from tinyforge.repair.failure import (
        FIRMWARE_RESULT,
        RECORD,
        REPORT,
        load_firmware_failure,
    )
    from tinyforge.report import read_report

    project_dir = Path(project_dir)
    failures: list[Failure] = []
    if log_text is not None:
        failures.append(failure_from_log(log_text))
    else:
        # The newest of: the last build's stage error, the last firmware build's errors, a
        # report over budget. Each is replaced (or cleared) by the next run of its kind.
        report = read_report(project_dir)
        candidates = [
            (RECORD, load_failure(project_dir)),
            (FIRMWARE_RESULT, load_firmware_failure(project_dir)),
            (Path(REPORT), failure_from_report(report) if report else None),
        ]
        found = [(_mtime(project_dir / rel), f) for rel, f in candidates if f is not None]
        if found:
            failures.append(max(found, key=lambda item: item[0])[1])
    ini = project_dir / INI
    if ini.is_file():
        bare = _envs_without_tflm(ini)
        if bare:
            failures.append(
                Failure(
                    "static",
                    f"platformio.ini: [env:{bare[0]}] has no TensorFlow Lite Micro library in "
                    "lib_deps: the firmware will not compile",
                    source=INI,
                )
            )
    return failures


def _envs_without_tflm(ini: Path) -> list[str]:
    """The environments whose firmware lacks TFLM (the editor's platformio.ini check)."""
    import contextlib

    from tinyforge.boards import get_board
    from tinyforge.errors import TinyForgeError
    from tinyforge.project import read_platformio_ini
    from tinyforge.repair.edits import needs_tflm_library

    try:
        envs = read_platformio_ini(ini).envs
    except TinyForgeError:
        return []
    bare = []
    for env in envs:
        board = None
        if env.board:
            with contextlib.suppress(TinyForgeError):
                board = get_board(env.board)
        if needs_tflm_library(env.options.get("lib_deps", ""), board):
            bare.append(env.name)
    return bare


def _mtime(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except OSError:
        return 0.0


def propose_fixes(
    project_dir: Path,
    *,
    failures: list[Failure] | None = None,
    log_text: str | None = None,
    repairer: Repairer | None = None,
) -> Repair:
    """Fixes for the project's failures; nothing is written."""
    project_dir = Path(project_dir)
    result = Repair(failures if failures is not None else diagnose(project_dir, log_text))
    project = Project.load(project_dir)
    result.notices += project.problems
    seen: set[tuple[tuple[str, str], ...]] = set()
    for failure in result.failures:
        fixes = offline_fixes(failure, project)
        if repairer is not None and not any(f.applicable for f in fixes):
            proposed = repairer.propose(failure, project)
            result.notices += repairer.notices
            repairer.notices = []
            if proposed is not None:
                fixes.append(proposed)
        for fix in fixes:
            key = tuple((e.path, e.after) for e in fix.edits) or ((fix.rule, fix.title),)
            if key not in seen:
                seen.add(key)
                result.fixes.append(fix)
    return result
