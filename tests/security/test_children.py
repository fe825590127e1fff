"""Children run nothing from the workspace and get no API key."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from tinyforge import jobs, pipeline
from tinyforge.memory import measure
from tinyforge.progress import NullProgress
from tinyforge.spec import ProjectSpec

pytestmark = pytest.mark.security

KEY = "sk-ant-test-secret"


def _hostile_workspace(tmp_path: Path) -> tuple[Path, Path]:
    """A workspace whose own `tinyforge` package leaves a marker when imported."""
    workspace = tmp_path / "ws"
    marker = tmp_path / "imported-from-workspace"
    (workspace / "tinyforge").mkdir(parents=True)
    (workspace / "tinyforge" / "__init__.py").write_text(
        f"open({str(marker)!r}, 'w').write('ran')\n"
    )
    return workspace, marker


def test_module_children_run_in_safe_path_mode(tmp_path: Path) -> None:
    workspace, marker = _hostile_workspace(tmp_path)
    cmd = jobs.python_command("-m", "tinyforge.errors")
    assert cmd[:3] == [sys.executable, "-P", "-m"]
    result = jobs.run(cmd, cwd=workspace)
    assert result.ok, result.tail_text()
    assert not marker.exists()  # the workspace's tinyforge/__init__.py never ran
    assert measure._child_argv(["x"])[:3] == [sys.executable, "-P", "-m"]


def test_a_script_keeps_its_folder_on_the_path() -> None:
    assert jobs.python_command("train.py") == [sys.executable, "train.py"]


def test_children_get_no_api_key(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ANTHROPIC_API_KEY", KEY)
    lines: list[str] = []
    result = jobs.run(
        jobs.python_command("-c", "import os; print(os.environ.get('ANTHROPIC_API_KEY'))"),
        cwd=tmp_path,
        on_line=lines.append,
    )
    assert result.ok and lines == ["None"]
    assert "ANTHROPIC_API_KEY" not in measure._child_env()
    assert "ANTHROPIC_API_KEY" not in jobs.child_environment({"X": "1"})
    assert jobs.child_environment({"X": "1"})["X"] == "1"


def test_keras_worker_runs_outside_the_project(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: dict[str, object] = {}

    def fake_run(cmd: list[str], **kwargs: object) -> jobs.JobResult:
        seen["cmd"], seen["cwd"] = cmd, kwargs.get("cwd")
        raise RuntimeError("stop here")

    monkeypatch.setattr(pipeline.jobs, "run", fake_run)
    spec = ProjectSpec.from_dict(
        {
            "task": "image_classification",
            "board": "nano33ble",
            "input_shape": [28, 28, 1],
            "dataset": {"kind": "digits"},
            "budget": {"ram_bytes": 262144, "flash_bytes": 983040},
        }
    )
    project = tmp_path / "proj"
    project.mkdir()
    monkeypatch.chdir(tmp_path)
    with pytest.raises(RuntimeError, match="stop here"):
        pipeline._convert(Path("proj"), spec, NullProgress(), None)
    cmd = seen["cmd"]
    assert isinstance(cmd, list) and cmd[1:4] == ["-P", "-m", "tinyforge.convert.keras_worker"]
    assert cmd[4] == str(project.resolve())
    cwd = Path(str(seen["cwd"])).resolve()
    assert cwd != project.resolve() and not cwd.is_relative_to(project.resolve())
