"""Keyword spotting: a folder of WAV clips (one sub-folder per word) goes through the build."""

from __future__ import annotations

import json
import wave
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import run_cli, set_epochs


def make_clips(root: Path, per_class: int = 24) -> Path:
    """Two 'words' with distinct pitch contours, real 16-bit PCM WAV files at 16 kHz or 8 kHz."""
    rng = np.random.default_rng(3)
    for word, (f0, f1) in {"up": (300.0, 900.0), "down": (1400.0, 500.0)}.items():
        (root / word).mkdir(parents=True)
        for i in range(per_class):
            rate = 16000 if i % 3 else 8000  # some clips need resampling
            t = np.arange(int(rate * rng.uniform(0.6, 1.0))) / rate
            sweep = np.sin(2 * np.pi * (f0 * t + (f1 - f0) * t**2 / (2 * t[-1])))
            signal = 0.5 * sweep * np.hanning(len(t)) + 0.05 * rng.normal(size=len(t))
            pcm = (np.clip(signal, -1, 1) * 32767).astype("<i2")
            with wave.open(str(root / word / f"{i:02d}.wav"), "wb") as out:
                out.setnchannels(1)
                out.setsampwidth(2)
                out.setframerate(rate)
                out.writeframes(pcm.tobytes())
    return root


@pytest.mark.slow
def test_keyword_folder_builds(tmp_path: Path) -> None:
    clips = make_clips(tmp_path / "clips")
    project = tmp_path / "kws"
    request = f"Spot the keywords up and down in audio clips from {clips} on an ESP32-S3 DevKitC"
    new = run_cli("new", request, "--out", str(project))
    assert new.returncode == 0, new.stdout + new.stderr
    spec = (project / "tinyforge.toml").read_text()
    assert (
        'task = "keyword_spotting"' in spec
        and "input_shape = [\n    49,\n    40,\n    1,\n]" in spec
    )
    set_epochs(project, 25)
    build = run_cli("build", str(project))
    assert build.returncode == 0, build.stdout + build.stderr
    report = json.loads((project / "report.json").read_text())
    # The data decides the order: its class folders, sorted (issue 14).
    assert report["classes"] == ["down", "up"]
    assert report["int8_accuracy"] >= 0.8
    assert report["arena_bytes"] > 0 and report["fits"]
    assert "def log_mel(" in (project / "train.py").read_text()


def test_audio_folder_without_clips_says_so(tmp_path: Path) -> None:
    (tmp_path / "clips" / "yes").mkdir(parents=True)
    (tmp_path / "clips" / "no").mkdir(parents=True)
    (tmp_path / "clips" / "yes" / "a.txt").write_text("not audio")
    project = tmp_path / "kws"
    request = f"detect the wake words yes and no from clips in {tmp_path / 'clips'} on a Pi Pico"
    assert run_cli("new", request, "--out", str(project)).returncode == 0
    result = run_cli("build", str(project))
    assert result.returncode == 2
    message = " ".join(result.stderr.split())
    # Each empty class folder is named, with what to put there (issue 14).
    assert "hold no WAV clips" in message and "clips/no" in message and "clips/yes" in message
    assert "16 kHz mono WAV" in message and "someone saying 'yes'" in message
