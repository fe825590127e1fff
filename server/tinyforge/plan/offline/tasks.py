"""Which task a request asks for: the cues of each task (lexicon.toml [tasks]) and their scores."""

from __future__ import annotations

from tinyforge.plan.offline.lexicon import lexicon
from tinyforge.spec import Task

_LEX = lexicon()

# Tie-break order, most specific first.
TASK_ORDER: list[Task] = [Task(name) for name in _LEX.ordered("tasks.order")]
TASK_SHORT: dict[Task, str] = {Task(k): v for k, v in _LEX.names("tasks.short_names").items()}
_TASK_CUES = _LEX.named_cues("tasks.cues", "task")


def cue_score(task: Task, text: str) -> int:
    """The weighted count of `task`'s cues in `text` (0: nothing points to it)."""
    return sum(
        cue.weight * len(cue.pattern.findall(text)) for cue in _TASK_CUES if cue.name == task.value
    )


def task_scores(text: str) -> dict[Task, int]:
    return {task: cue_score(task, text) for task in TASK_ORDER}
