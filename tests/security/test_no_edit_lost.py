"""A failed or cancelled build restores what it wrote, never over the user's newer edits."""

from __future__ import annotations

from pathlib import Path

import pytest

from tinyforge.errors import StageError
from tinyforge.generate.files import write_generated
from tinyforge.transaction import all_or_nothing

pytestmark = pytest.mark.security


def _project(tmp_path: Path) -> Path:
    project = tmp_path / "proj"
    write_generated(
        project,
        {"train.py": "EPOCHS = 1\n", "src/main.cpp": "int main() { return 0; }\n"},
    )
    (project / "artifacts").mkdir()
    (project / "artifacts" / "metrics.json").write_text('{"old": true}')
    (project / "model.tflite").write_bytes(b"old model")
    return project


def test_edits_saved_during_a_failed_build_are_kept(tmp_path: Path) -> None:
    project = _project(tmp_path)
    with pytest.raises(StageError) as failed, all_or_nothing(project):
        # The build regenerates main.cpp and writes new outputs...
        write_generated(project, {"src/main.cpp": "int main() { return 1; }\n"})
        (project / "model.tflite").write_bytes(b"half-written")
        (project / "artifacts" / "metrics.json").write_text('{"new": true}')
        # ...while the user saves an edit of train.py in the editor; then the build fails.
        (project / "train.py").write_text("EPOCHS = 50  # my change\n")
        raise StageError("train", "Training failed.")
    assert (project / "train.py").read_text() == "EPOCHS = 50  # my change\n"
    assert (project / "src/main.cpp").read_text() == "int main() { return 0; }\n"
    assert (project / "model.tflite").read_bytes() == b"old model"
    assert (project / "artifacts" / "metrics.json").read_text() == '{"old": true}'
    message = str(failed.value)
    assert message.startswith("Training failed.") and "kept train.py" in message


def test_a_failed_build_without_edits_restores_everything(tmp_path: Path) -> None:
    project = _project(tmp_path)
    with pytest.raises(StageError) as failed, all_or_nothing(project):
        write_generated(project, {"train.py": "EPOCHS = 2\n"})
        (project / "report.json").write_text("{}")
        raise StageError("convert", "Conversion failed.")
    assert (project / "train.py").read_text() == "EPOCHS = 1\n"
    assert not (project / "report.json").exists()
    assert str(failed.value) == "Conversion failed."


def test_a_symlinked_artifacts_folder_survives_the_restore(tmp_path: Path) -> None:
    project = _project(tmp_path)
    elsewhere = tmp_path / "big-disk"
    elsewhere.mkdir()
    (project / "artifacts" / "metrics.json").unlink()
    (project / "artifacts").rmdir()
    (project / "artifacts").symlink_to(elsewhere, target_is_directory=True)
    with pytest.raises(StageError), all_or_nothing(project):
        (project / "artifacts" / "splits.npz").write_bytes(b"x")
        raise StageError("train", "Training failed.")
    assert (project / "artifacts").is_symlink()
    assert (project / "artifacts").resolve() == elsewhere.resolve()
    assert elsewhere.is_dir()
