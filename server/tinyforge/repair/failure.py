"""What failed: a build stage's error and log tail, a verdict over budget, or a static finding.

A failed build leaves the project exactly as before (transaction.all_or_nothing), so the failure
itself is recorded beside it, in `.tinyforge/last-failure.json`, for `tinyforge repair` and the
editor's repair command to read later. A build that completes clears it; its report.json then
says whether the model fits.
"""

from __future__ import annotations

import contextlib
import json
import re
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from tinyforge.errors import StageError
from tinyforge.report import BuildReport

RECORD = Path(".tinyforge") / "last-failure.json"
REPORT = "report.json"
# What `tinyforge deploy` (pio run) keeps of its last firmware build.
FIRMWARE_RESULT = Path(".tinyforge") / "firmware.json"
LOG_LIMIT = 12_000  # characters of a log kept: the end, where compilers and TFLM say why


@dataclass
class Failure:
    stage: str  # train | convert | measure | check (over budget) | deploy | log | static
    message: str
    log_tail: str = ""
    source: str = ""  # where it was found: "last build", "report.json", "platformio.ini", ...
    violations: list[dict[str, Any]] = field(default_factory=list)

    def text(self) -> str:
        return f"{self.message}\n{self.log_tail}"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def record_failure(project_dir: Path, exc: StageError) -> None:
    """Keep a failed stage's message and log for the repairer (best effort, never raises)."""
    data = {
        "stage": exc.stage,
        "message": str(exc),
        "log_tail": (exc.log_tail or "")[-LOG_LIMIT:],
        "time": time.time(),
    }
    path = Path(project_dir) / RECORD
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(data, indent=1), encoding="utf-8")
    except OSError:
        pass  # a read-only project loses only the repair hint, not the error itself


def clear_failure(project_dir: Path) -> None:
    with contextlib.suppress(OSError):
        (Path(project_dir) / RECORD).unlink(missing_ok=True)


def load_failure(project_dir: Path) -> Failure | None:
    try:
        data = json.loads((Path(project_dir) / RECORD).read_text(encoding="utf-8"))
        return Failure(
            stage=str(data["stage"]),
            message=str(data["message"]),
            log_tail=str(data.get("log_tail", "")),
            source="last build",
        )
    except (OSError, ValueError, KeyError, TypeError):
        return None


def load_firmware_failure(project_dir: Path) -> Failure | None:
    """The last firmware build (pio run), when it failed: its problems as the toolchain said
    them ("file:line:col: error: …", "region `RAM' overflowed by N bytes")."""
    try:
        data = json.loads((Path(project_dir) / FIRMWARE_RESULT).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict) or data.get("ok") is not False:
        return None
    lines: list[str] = []
    first = ""
    for problem in data.get("problems") or []:
        if not isinstance(problem, dict) or problem.get("severity") != "error":
            continue
        message = str(problem.get("message", ""))
        first = first or message
        extra = problem.get("data") or {}
        if str(problem.get("code", "")).endswith("overflow") and extra.get("overflow_bytes"):
            region = extra.get("region") or extra.get("resource", "RAM")
            lines.append(f"region `{region}' overflowed by {extra['overflow_bytes']} bytes")
        where = ":".join(
            str(p) for p in (problem.get("file"), problem.get("line"), problem.get("column")) if p
        )
        lines.append(f"{where}: error: {message}")
    if not lines:
        return None
    summary = str(data.get("summary") or first)
    return Failure("deploy", first or summary, "\n".join(lines), source=str(FIRMWARE_RESULT))


def failure_from_report(report: BuildReport) -> Failure | None:
    """A completed build whose model does not fit: its violations, with the figures."""
    if report.fits is not False:
        return None
    message = "; ".join(v.message for v in report.violations) or "does not fit"
    violations = [asdict(v) for v in report.violations]
    return Failure("check", message, source=REPORT, violations=violations)


# Compilers and linkers say why in their *first* error; later lines are consequences.
_FIRST_ERROR = re.compile(r"(?i)fatal error|\berror:|overflowed by|will not fit|didn't find op")
_ANY_ERROR = re.compile(r"(?i)\b(error|failed|exception)\b")


def failure_from_log(text: str, stage: str = "log") -> Failure:
    """A log the user hands over (e.g. a PlatformIO build's output)."""
    lines = [ln for ln in text.splitlines() if ln.strip()]
    telling = next((ln for ln in lines if _FIRST_ERROR.search(ln)), None)
    telling = telling or next((ln for ln in reversed(lines) if _ANY_ERROR.search(ln)), None)
    message = (telling or (lines[-1] if lines else "empty log")).strip()
    return Failure(stage, message, text[-LOG_LIMIT:], source="")
