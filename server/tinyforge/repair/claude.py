"""Claude for the failures no offline rule knows, held to the same checks as everything else.

Claude gets the failure (stage, message, log tail), the spec, the board's figures, the TFLM op
list and the project's editable files, and answers with whole new files through one tool. A
proposed train.py is parsed and sized statically against the budget and the op list (never
run); a tinyforge.toml must validate as a ProjectSpec; a platformio.ini must parse and keep a
TFLM library. What fails goes back with the reasons and figures, for at most `REPAIR_ROUNDS`
rounds; then there is no fix rather than an unchecked one.
"""

from __future__ import annotations

from typing import Any, Unpack

from tinyforge.boards import get_board
from tinyforge.errors import StageError, TinyForgeError
from tinyforge.llm import ClaudeReplyError, ClaudeSession, ClaudeUnavailable, SessionOptions
from tinyforge.repair.edits import needs_tflm_library
from tinyforge.repair.failure import Failure
from tinyforge.repair.fixes import FileEdit, Fix
from tinyforge.repair.rules import EDITABLE, INI, TRAIN, Project
from tinyforge.spec import SPEC_FILENAME, ProjectSpec

REPAIR_TOOL = "propose_fix"
REPAIR_ROUNDS = 3
LOG_CHARS = 6000

SYSTEM = """\
You repair TinyML projects built by TinyForge: a Keras train.py is trained, converted to
full-int8 TFLite and run with TensorFlow Lite Micro on a microcontroller. A stage failed. Find
the cause in the log and call propose_fix with the smallest change that cures it: the complete
new content of each file you change (train.py, tinyforge.toml or platformio.ini only).
TinyForge parses your train.py without running it: import only keras (or tensorflow.keras),
numpy, math and what train.py already imports; keep layer sizes constant; use only ops in the
TFLM op list; the int8 model must fit the RAM and flash budget. If nothing in these files can
cure the failure, return no files and say what the user must do in the explanation.
"""


class ClaudeRepairer:
    """Repairer backed by Claude; every proposal passes TinyForge's checks or is dropped."""

    name = "claude"

    def __init__(
        self,
        *,
        supported_ops: frozenset[str] | None = None,
        **session: Unpack[SessionOptions],
    ) -> None:
        self.session = ClaudeSession(**session)
        self.notices: list[str] = []
        self._supported_ops = supported_ops

    def __repr__(self) -> str:
        return f"ClaudeRepairer({self.session!r})"

    def _supported(self) -> frozenset[str] | None:
        if self._supported_ops is None:
            from tinyforge.memory.ops import tflm_supported_ops

            try:
                self._supported_ops = tflm_supported_ops()
            except StageError:
                return None
        return self._supported_ops

    def propose(self, failure: Failure, project: Project) -> Fix | None:
        """A checked fix, or None (with a notice saying why)."""
        tool = _tool()
        messages: list[dict[str, Any]] = [
            {"role": "user", "content": self._prompt(failure, project)}
        ]
        last = ""
        for _ in range(REPAIR_ROUNDS):
            try:
                reply = self.session.ask_tool(
                    system=SYSTEM, messages=messages, tool=tool, max_tokens=8192
                )
            except ClaudeUnavailable as exc:
                self.notices.append(f"{self.session.redact(str(exc))} No Claude fix.")
                return None
            except ClaudeReplyError as exc:
                last = str(exc)
                messages.append({"role": "user", "content": f"{exc} Call {REPAIR_TOOL}."})
                continue
            explanation = str(reply.input.get("explanation") or "").strip()
            edits, problems = self._check(reply.input.get("files"), project)
            if not problems:
                if not edits:
                    # Claude's answer is advice: worth showing, nothing to apply.
                    return Fix("claude", "Claude's diagnosis (no file change)", explanation)
                title = explanation.split(". ")[0].strip().rstrip(".") or "Claude's fix"
                return Fix("claude", f"Claude: {title[:100]}", explanation, edits)
            last = "; ".join(problems)
            messages += reply.rejected(
                "Rejected by TinyForge's checks (nothing was run):\n"
                + "\n".join(f"- {p}" for p in problems)
                + f"\nCall {REPAIR_TOOL} again with a fix that passes them."
            )
        self.notices.append(
            f"Claude's fixes did not pass TinyForge's checks in {REPAIR_ROUNDS} rounds "
            f"({' '.join(last.split())[:300]}): no fix proposed."
        )
        return None

    def _prompt(self, failure: Failure, project: Project) -> str:
        from tinyforge.plan.claude import board_facts

        parts = [
            f"Failed stage: {failure.stage} ({failure.source or 'build'})",
            f"Error: {failure.message}",
        ]
        if failure.log_tail:
            parts.append(f"Log (end):\n```\n{failure.log_tail[-LOG_CHARS:]}\n```")
        if project.board is not None and project.spec is not None:
            parts.append(f"Board: {board_facts(project.board)}")
            budget = project.spec.budget
            parts.append(f"Budget: RAM {budget.ram_bytes} bytes, flash {budget.flash_bytes} bytes.")
        if project.report is not None:
            report = project.report.to_json()
            keys: tuple[str, ...] = ("model_bytes", "arena_bytes_target", "ram_bytes_estimate")
            keys += ("flash_bytes_estimate", "ops", "violations")
            figures = {k: report[k] for k in keys if k in report}
            parts.append(f"Last completed build's figures: {figures}")
        ops = self._supported()
        if ops:
            parts.append("TFLite Micro ops this TFLM build runs: " + ", ".join(sorted(ops)))
        for name in EDITABLE:
            if name in project.files:
                parts.append(f"{name}:\n```\n{project.files[name]}\n```")
        return "\n\n".join(parts)

    def _check(self, files: Any, project: Project) -> tuple[list[FileEdit], list[str]]:
        from tinyforge.check.proposal import check_source
        from tinyforge.project import read_platformio_ini

        if files is None:
            return [], []
        if not isinstance(files, list):
            return [], ["files must be a list of {path, content}"]
        problems: list[str] = []
        proposed: dict[str, str] = {}
        for item in files:
            path = item.get("path") if isinstance(item, dict) else None
            content = item.get("content") if isinstance(item, dict) else None
            if path not in EDITABLE or not isinstance(content, str):
                problems.append(f"only {', '.join(EDITABLE)} may be changed, as whole files")
                continue
            if content != project.files.get(path):
                proposed[path] = content
        spec = project.spec
        if SPEC_FILENAME in proposed:
            try:
                spec = ProjectSpec.from_toml_text(proposed[SPEC_FILENAME])
                get_board(spec.board)
            except TinyForgeError as exc:
                problems.append(f"{SPEC_FILENAME}: {exc}")
        if INI in proposed:
            try:
                ini = read_platformio_ini(project.root / INI, proposed[INI])
                # The same check as the editor's and diagnose's: bundled boards need none.
                if any(
                    needs_tflm_library(env.options.get("lib_deps", ""), project.board)
                    for env in ini.envs
                ):
                    problems.append(f"{INI}: lib_deps must keep a TensorFlow Lite Micro library")
            except TinyForgeError as exc:
                problems.append(f"{INI}: {exc}")
        if TRAIN in proposed:
            if spec is None:
                problems.append(f"{TRAIN} cannot be checked without a valid {SPEC_FILENAME}")
            else:
                check = check_source(
                    proposed[TRAIN],
                    spec,
                    base_source=project.files.get(TRAIN),
                    supported_ops=self._supported(),
                )
                problems += [f"{TRAIN}: {p}" for p in check.problems]
        edits = [FileEdit(p, project.files.get(p, ""), text) for p, text in proposed.items()]
        return edits, problems


def _tool() -> dict[str, Any]:
    return {
        "name": REPAIR_TOOL,
        "description": "A fix for the failed TinyForge project: whole new files.",
        "input_schema": {
            "type": "object",
            "properties": {
                "explanation": {
                    "type": "string",
                    "description": "The cause, then what the change does, in two sentences.",
                },
                "files": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "properties": {
                            "path": {"type": "string", "enum": list(EDITABLE)},
                            "content": {"type": "string"},
                        },
                        "required": ["path", "content"],
                    },
                },
            },
            "required": ["explanation", "files"],
        },
    }
