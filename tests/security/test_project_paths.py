"""Paths read from a project's files stay inside the project."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tinyforge.fit import FIT_DIR
from tinyforge.lsp.fit import fit_section

pytestmark = pytest.mark.security

PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 16


def _fit_json(project: Path, plot: str) -> None:
    (project / FIT_DIR).mkdir(parents=True, exist_ok=True)
    (project / FIT_DIR / "fit.json").write_text(json.dumps({"board": "pico", "plot": plot}))


@pytest.mark.parametrize("kind", ["etc_passwd", "outside_png", "dotdot", "link_out", "not_png"])
def test_fit_plot_outside_the_project_is_not_read(kind: str, tmp_path: Path) -> None:
    project = tmp_path / "proj"
    project.mkdir()
    outside = tmp_path / "secret.png"
    outside.write_bytes(PNG + b"secret")
    plot = {
        "etc_passwd": "/etc/passwd",
        "outside_png": str(outside),
        "dotdot": "../secret.png",
        "link_out": "fit/link.png",
        "not_png": "notes.txt",
    }[kind]
    (project / "notes.txt").write_text("inside, but not a plot")
    _fit_json(project, plot)
    (project / FIT_DIR / "link.png").symlink_to(outside)
    section = fit_section(project)
    assert section is not None and section["board"] == "pico"
    assert "plot" not in section and "plot_data_uri" not in section


@pytest.mark.parametrize("relative", [True, False])
def test_fit_plot_inside_the_project_is_shown(relative: bool, tmp_path: Path) -> None:
    project = tmp_path / "proj"
    (project / FIT_DIR).mkdir(parents=True)
    png = project / FIT_DIR / "pareto.png"
    png.write_bytes(PNG)
    _fit_json(project, "fit/pareto.png" if relative else str(png))
    section = fit_section(project)
    assert section is not None and section["plot_data_uri"].startswith("data:image/png;base64,")
