"""Generated files are written atomically and never through a link that leaves the project."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tinyforge.errors import TinyForgeError
from tinyforge.generate import files
from tinyforge.generate.files import NEW_SUFFIX, write_generated

pytestmark = pytest.mark.security


def test_a_dangling_link_out_of_the_project_is_refused(tmp_path: Path) -> None:
    project = tmp_path / "proj"
    project.mkdir()
    outside = tmp_path / "elsewhere" / "evil.py"
    outside.parent.mkdir()
    (project / "train.py").symlink_to(outside)  # dangling: evil.py does not exist yet
    with pytest.raises(TinyForgeError, match="outside the project"):
        write_generated(
            project, {"platformio.ini": "[env]\n", "train.py": "print(1)\n"}, force=True
        )
    assert not outside.exists()
    assert not (project / "platformio.ini").exists()  # refused before anything was written


def test_a_linked_folder_out_of_the_project_is_refused(tmp_path: Path) -> None:
    project = tmp_path / "proj"
    project.mkdir()
    (tmp_path / "out").mkdir()
    (project / "src").symlink_to(tmp_path / "out", target_is_directory=True)
    with pytest.raises(TinyForgeError, match="outside the project"):
        write_generated(project, {"src/main.cpp": "int main() {}\n"})
    assert list((tmp_path / "out").iterdir()) == []


def test_dotdot_is_refused(tmp_path: Path) -> None:
    project = tmp_path / "proj"
    with pytest.raises(TinyForgeError):
        write_generated(project, {"../escape.py": "x = 1\n"})
    assert not (tmp_path / "escape.py").exists()


def test_writes_are_atomic_and_leave_no_temporary_files(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    project = tmp_path / "proj"
    write_generated(project, {"train.py": "old = 1\n"})
    replaced: list[tuple[str, str]] = []
    real_replace = os.replace

    def spy(src: str, dst: str) -> None:
        replaced.append((str(src), str(dst)))
        real_replace(src, dst)

    monkeypatch.setattr(files.os, "replace", spy)
    write_generated(project, {"train.py": "new = 2\n"})
    assert (project / "train.py").read_text() == "new = 2\n"
    assert any(dst == str((project / "train.py").resolve()) for _, dst in replaced)
    leftovers = [p.name for p in project.rglob("*.tmp")]
    assert leftovers == []


def test_a_link_inside_the_project_is_written_through(tmp_path: Path) -> None:
    project = tmp_path / "proj"
    (project / "real").mkdir(parents=True)
    (project / "real" / "train.py").write_text("x = 1\n")
    (project / "train.py").symlink_to(project / "real" / "train.py")
    result = write_generated(project, {"train.py": "x = 2\n"}, force=True)
    assert result.written == ["train.py"]
    assert (project / "train.py").is_symlink()
    assert (project / "real" / "train.py").read_text() == "x = 2\n"
    assert not (project / ("train.py" + NEW_SUFFIX)).exists()
