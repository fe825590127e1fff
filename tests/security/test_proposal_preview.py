"""Claude's model design is shown as a diff and used only once the user accepts it: asked on a
terminal (`--yes` answers), kept beside train.py when no one can be asked, previewed in the
editor. Claude is the real SDK talking to recorded answers (tests/anthropic_replay.py)."""

from __future__ import annotations

import io
import json
import os
import sys
from pathlib import Path

import pytest
import pytest_lsp
from lsprotocol import types as lsp
from pytest_lsp import ClientServerConfig, LanguageClient

from tests.anthropic_replay import KEY, Replay, replaying_session_init
from tests.lsp.conftest import vscode_session
from tests.test_plan_claude import DIGITS, new_project_answers
from tinyforge import cli, generate
from tinyforge.llm import KEY_ENV, MODEL_ENV, ClaudeSession
from tinyforge.spec import ProjectSpec

pytestmark = pytest.mark.security

CLAUDES = 'layers.Conv2D(12, 3, padding="same"'  # only in Claude's design
PROPOSAL_FILE = "train.py.proposed"  # where it waits for the user's answer
QUESTION = "Use Claude's model design? [y/N]"


class Terminal(io.StringIO):
    """stdin as a terminal where the user types `answer`."""

    def isatty(self) -> bool:
        return True


@pytest.fixture
def claude(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Replay:
    monkeypatch.delenv(MODEL_ENV, raising=False)
    monkeypatch.setenv(KEY_ENV, KEY)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))  # the project's lock
    monkeypatch.chdir(tmp_path)
    replay = Replay(*new_project_answers())
    monkeypatch.setattr(ClaudeSession, "__init__", replaying_session_init(replay))
    return replay


def new(out: Path, *flags: str) -> int:
    return cli.main(["new", DIGITS, "--out", str(out), "--planner", "claude", *flags])


def test_without_a_terminal_the_design_waits_beside_train_py(
    claude: Replay, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    monkeypatch.setattr(sys, "stdin", io.StringIO(""))  # a script or CI: no one to ask
    out = tmp_path / "digits"
    assert new(out) == 0
    said = capsys.readouterr().out
    assert len(claude.requests) == 2  # the spec, then the model design
    assert CLAUDES not in (out / "train.py").read_text()  # a build would not run it
    assert CLAUDES in (out / PROPOSAL_FILE).read_text()
    assert f"+        {CLAUDES}" in said  # shown as a diff against TinyForge's train.py
    assert QUESTION not in said
    assert f"use it with tinyforge accept-proposal {out}." in said

    assert cli.main(["accept-proposal", str(out)]) == 0
    assert CLAUDES in (out / "train.py").read_text()
    assert not (out / PROPOSAL_FILE).exists()
    # Accepted, it is the user's: a regeneration keeps it.
    assert generate.write_project(ProjectSpec.load(out), out).kept == ["train.py"]


@pytest.mark.parametrize(("typed", "taken"), [("y\n", True), ("\n", False), ("no\n", False)])
def test_on_a_terminal_the_user_is_asked(
    claude: Replay,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture,
    typed: str,
    taken: bool,
) -> None:
    monkeypatch.setattr(sys, "stdin", Terminal(typed))
    out = tmp_path / "digits"
    assert new(out) == 0
    said = capsys.readouterr().out
    assert said.index(f"+        {CLAUDES}") < said.index(QUESTION)  # the diff, then the question
    assert (CLAUDES in (out / "train.py").read_text()) is taken
    assert not (out / PROPOSAL_FILE).exists()  # answered: nothing waits


def test_yes_takes_it_without_asking(
    claude: Replay, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    monkeypatch.setattr(sys, "stdin", Terminal(""))  # asking would end in EOF: "no"
    out = tmp_path / "digits"
    assert new(out, "--yes") == 0
    said = capsys.readouterr().out
    assert f"+        {CLAUDES}" in said and QUESTION not in said
    assert CLAUDES in (out / "train.py").read_text()


def test_accepting_never_writes_over_the_users_edits(
    claude: Replay, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    monkeypatch.setattr(sys, "stdin", io.StringIO(""))
    out = tmp_path / "digits"
    assert new(out) == 0
    edited = (out / "train.py").read_text() + "\n# my own change\n"
    (out / "train.py").write_text(edited)
    capsys.readouterr()
    assert cli.main(["accept-proposal", str(out)]) == 2
    err = capsys.readouterr().err
    assert "changed since Claude's proposal was made" in err and "Traceback" not in err
    assert (out / "train.py").read_text() == edited
    assert (out / PROPOSAL_FILE).is_file()


# -- the editor ---------------------------------------------------------------------------------

SERVER_ENV = {
    **{k: v for k, v in os.environ.items() if k not in (KEY_ENV, MODEL_ENV)},
    # The tests package, for the launcher.
    "PYTHONPATH": os.pathsep.join(
        p for p in (str(Path(__file__).resolve().parents[2]), os.environ.get("PYTHONPATH")) if p
    ),
    "TINYFORGE_TEST_REPLAY": json.dumps(new_project_answers()),
}


@pytest_lsp.fixture(
    config=ClientServerConfig(
        server_command=[sys.executable, "-m", "tests.security.replay_lsp"], server_env=SERVER_ENV
    )
)
async def editor(lsp_client: LanguageClient, tmp_path: Path):
    await lsp_client.initialize_session(
        vscode_session(tmp_path, {"tinyforge": {"planner": "claude", "anthropicApiKey": KEY}})
    )
    yield
    await lsp_client.shutdown_session()


@pytest.mark.parametrize("accepted", [True, False])
async def test_the_editor_previews_the_design_before_it_is_used(
    editor: LanguageClient, tmp_path: Path, accepted: bool
) -> None:
    previews: list[lsp.ApplyWorkspaceEditParams] = []

    @editor.feature(lsp.WORKSPACE_APPLY_EDIT)
    def apply_edit(_client: LanguageClient, params: lsp.ApplyWorkspaceEditParams):
        previews.append(params)
        return lsp.ApplyWorkspaceEditResult(applied=accepted)

    out = tmp_path / "digits"
    result = await editor.workspace_execute_command_async(
        lsp.ExecuteCommandParams(command="tinyforge.newProject", arguments=[DIGITS, str(out)])
    )
    assert result["ok"], result
    # One edit of train.py, under an annotation that needs the user's confirmation: VS Code's
    # refactor preview shows the diff and applies it only when the user accepts.
    (preview,) = previews
    edit = preview.edit
    assert edit.change_annotations
    assert all(a.needs_confirmation for a in edit.change_annotations.values())
    (change,) = edit.document_changes or []
    assert isinstance(change, lsp.TextDocumentEdit)
    assert change.text_document.uri == (out / "train.py").as_uri()
    (text_edit,) = change.edits
    assert isinstance(text_edit, lsp.AnnotatedTextEdit)
    assert text_edit.annotation_id in edit.change_annotations
    assert CLAUDES in text_edit.new_text
    # The server wrote none of it: accepted, it is in the editor's buffer; declined, it is gone.
    assert CLAUDES not in (out / "train.py").read_text()
    assert result["applied"] is accepted
    assert not (out / PROPOSAL_FILE).exists()
    assert ("Kept TinyForge's own train.py." in result["notices"]) is not accepted
