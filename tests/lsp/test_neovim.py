"""An outside client: headless Neovim shows the server's diagnostics (scripts/nvim-diagnostics)."""

from __future__ import annotations

import shutil
import subprocess
import sys

import pytest

from tests.conftest import REPO


def test_neovim_shows_diagnostics() -> None:
    if shutil.which("nvim") is None:
        pytest.fail("nvim is missing: `make test` installs it with scripts/system-deps.sh")
    result = subprocess.run(
        [
            str(REPO / "scripts" / "nvim-diagnostics"),
            str(REPO / "fixtures/lsp/wrong_board/platformio.ini"),
        ],
        capture_output=True,
        text=True,
        timeout=90,
        env={"TINYFORGE_PYTHON": sys.executable, "PATH": "/usr/bin:/bin"},
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "4:1 ERROR [tinyforge] Unknown board 'esp32-cam'" in result.stdout
