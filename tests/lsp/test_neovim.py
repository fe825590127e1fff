"""An outside client: headless Neovim shows the server's diagnostics (scripts/nvim-diagnostics)."""

from __future__ import annotations

import shutil
import subprocess
import sys

import pytest

from tests.conftest import REPO


def _nvim(fixture: str) -> subprocess.CompletedProcess[str]:
    if shutil.which("nvim") is None:
        pytest.fail("nvim is missing: `make test` installs it with scripts/system-deps.sh")
    return subprocess.run(
        [str(REPO / "scripts" / "nvim-diagnostics"), str(REPO / fixture)],
        capture_output=True,
        text=True,
        timeout=90,
        env={"TINYFORGE_PYTHON": sys.executable, "PATH": "/usr/bin:/bin"},
        check=False,
    )


def test_neovim_shows_model_budget_error() -> None:
    result = _nvim("fixtures/lsp/over_budget/model.py")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "11:9 ERROR [tinyforge] tensor arena ≈" in result.stdout
    assert "exceeds the nano33ble RAM budget of 256.0 KB" in result.stdout


def test_neovim_shows_platformio_ini_error() -> None:
    result = _nvim("fixtures/lsp/wrong_board/platformio.ini")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "4:1 ERROR [tinyforge] Unknown board 'esp32-cam'" in result.stdout
