"""Bad input: one clear sentence, a non-zero exit, and nothing half-written left behind."""

from __future__ import annotations

from pathlib import Path

from tests.conftest import run_cli


def _one_clear_error(result, *needles: str) -> None:
    assert result.returncode != 0
    assert "Traceback" not in result.stdout + result.stderr
    text = " ".join(result.stderr.split())
    assert text.startswith("error"), result.stderr
    for needle in needles:
        assert needle in text, text


def test_unknown_board_lists_closest(tmp_path: Path) -> None:
    result = run_cli(
        "new",
        "classify gestures from data.csv",
        "--board",
        "nano_33_bel",
        "--out",
        str(tmp_path / "p"),
    )
    _one_clear_error(result, "nano33ble")
    assert not (tmp_path / "p").exists()


def test_request_with_nothing_usable(tmp_path: Path) -> None:
    result = run_cli("new", "hello there", "--out", str(tmp_path / "p"))
    _one_clear_error(result)
    assert not (tmp_path / "p").exists()


def test_missing_dataset_path(tmp_path: Path) -> None:
    project = tmp_path / "p"
    missing = tmp_path / "nowhere" / "data.csv"
    new = run_cli("new", f"classify gestures from {missing} on a Pi Pico", "--out", str(project))
    assert new.returncode == 0, new.stderr
    before = sorted(p.name for p in project.iterdir())
    result = run_cli("build", str(project))
    _one_clear_error(result, "does not exist")
    assert sorted(p.name for p in project.iterdir()) == before


def test_folder_with_one_class(tmp_path: Path) -> None:
    images = tmp_path / "imgs"
    (images / "only").mkdir(parents=True)
    from PIL import Image

    Image.new("L", (8, 8)).save(images / "only" / "a.png")
    project = tmp_path / "p"
    new = run_cli(
        "new",
        f"classify 8x8 grayscale images in {images} on an ESP32 dev board",
        "--out",
        str(project),
    )
    assert new.returncode == 0, new.stderr
    result = run_cli("build", str(project))
    _one_clear_error(result, "at least two class sub-folders")
    assert not (project / "model.tflite").exists()


def test_unreadable_csv(tmp_path: Path) -> None:
    data = tmp_path / "data.csv"
    data.write_bytes(b"\xff\xfe\x00garbage\x00\x81\x82\n\x00\x00")
    project = tmp_path / "p"
    new = run_cli(
        "new",
        f"classify vibration from {data} with label column state on a Teensy 4.1",
        "--out",
        str(project),
    )
    assert new.returncode == 0, new.stderr
    result = run_cli("build", str(project))
    _one_clear_error(result, str(data))


def test_csv_with_text_features(tmp_path: Path) -> None:
    data = tmp_path / "data.csv"
    data.write_text("a,b,label\n1,2,x\n3,oops,y\n")
    project = tmp_path / "p"
    assert (
        run_cli("new", f"classify rows of {data} on a pico", "--out", str(project)).returncode == 0
    )
    result = run_cli("build", str(project))
    _one_clear_error(result, "line 3", "not a number")


def test_new_never_overwrites_a_non_empty_folder(tmp_path: Path) -> None:
    project = tmp_path / "p"
    project.mkdir()
    (project / "notes.txt").write_text("mine")
    result = run_cli("new", "Recognize handwritten digits on a Pi Pico", "--out", str(project))
    _one_clear_error(result, "not empty", "--force")
    assert sorted(p.name for p in project.iterdir()) == ["notes.txt"]
    forced = run_cli(
        "new", "Recognize handwritten digits on a Pi Pico", "--out", str(project), "--force"
    )
    assert forced.returncode == 0, forced.stderr
    assert (project / "notes.txt").read_text() == "mine"
    assert (project / "train.py").is_file()


def test_build_without_spec(tmp_path: Path) -> None:
    result = run_cli("build", str(tmp_path))
    _one_clear_error(result, "tinyforge.toml")


def test_broken_spec_names_the_field(tmp_path: Path) -> None:
    (tmp_path / "tinyforge.toml").write_text('task = "image_classification"\nboard = "pico"\n')
    result = run_cli("build", str(tmp_path))
    _one_clear_error(result, "input_shape")
