"""The chosen candidate, back in the project: a new train.py (and spec) to preview or apply.

Only the model definition changes: the project's own train.py keeps everything else the user
wrote (data loading, training set-up); its `build_model` (`build_models` for an anomaly
detector) is replaced by the one TinyForge's template writes for the candidate, and
`INPUT_SHAPE` follows when the search picked another image resolution or channel count (the
spec's input_shape then changes with it). A train.py without that function gets the
candidate's whole script.
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass
from pathlib import Path

from tinyforge.check.proposal import replace_function
from tinyforge.generate.files import NEW_SUFFIX
from tinyforge.lock import locked
from tinyforge.spec import SPEC_FILENAME, Task

TRAIN_SCRIPT = "train.py"
INPUT_SHAPE_LINE = re.compile(r"^INPUT_SHAPE\s*=.*$", re.MULTILINE)


@dataclass
class WriteBack:
    train_py: str  # the full new text of train.py
    spec_toml: str | None  # the new tinyforge.toml when the input shape changes, else None
    whole_script: bool  # True: train.py had no model function to replace
    rendered: str = ""  # the candidate's whole script, as TinyForge's template writes it
    task: Task = Task.IMAGE_CLASSIFICATION
    input_shape: tuple[int, ...] = ()

    def against(self, current: str | None) -> WriteBack:
        """The same choice applied to another text of train.py (an editor's unsaved buffer)."""
        text, whole = new_train_script(
            current, self.rendered, self.task, self.input_shape, self.spec_toml is not None
        )
        return WriteBack(text, self.spec_toml, whole, self.rendered, self.task, self.input_shape)

    def files(self) -> dict[str, str]:
        files = {TRAIN_SCRIPT: self.train_py}
        if self.spec_toml is not None:
            files[SPEC_FILENAME] = self.spec_toml
        return files


def function_source(source: str, name: str) -> str:
    """The text of the top-level `def name(...)` in `source`."""
    tree = ast.parse(source)
    for node in tree.body:
        if isinstance(node, ast.FunctionDef) and node.name == name:
            lines = source.splitlines(keepends=True)
            return "".join(lines[node.lineno - 1 : node.end_lineno])
    raise ValueError(f"no top-level def {name}()")


def new_train_script(
    current: str | None,
    rendered: str,
    task: Task,
    input_shape: tuple[int, ...],
    changed_shape: bool,
) -> tuple[str, bool]:
    """(new train.py text, whether it is the whole rendered script)."""
    name = "build_models" if task is Task.ANOMALY_DETECTION else "build_model"
    if current is None:
        return rendered, True
    try:
        text = replace_function(current, name, function_source(rendered, name))
    except (ValueError, SyntaxError):
        return rendered, True
    if changed_shape:
        text, count = INPUT_SHAPE_LINE.subn(f"INPUT_SHAPE = {tuple(input_shape)!r}", text, count=1)
        if count == 0:  # the user's script sizes its input elsewhere: take the whole script
            return rendered, True
    return text, False


@locked("fit")  # it writes train.py and tinyforge.toml: not under a running build
def write(project_dir: Path, write_back: WriteBack, *, apply: bool) -> list[str]:
    """Write the new files, beside the user's as NAME.tinyforge-new unless `apply`; the
    relative paths written."""
    written = []
    for relpath, text in write_back.files().items():
        target = project_dir / (relpath if apply else relpath + NEW_SUFFIX)
        target.write_text(text, encoding="utf-8")
        written.append(target.relative_to(project_dir).as_posix())
        if apply:
            stale = project_dir / (relpath + NEW_SUFFIX)
            if stale.exists():
                stale.unlink()
    return written
