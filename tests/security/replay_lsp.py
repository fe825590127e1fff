"""The language server with the Anthropic API's answers replayed (`python -m
tests.security.replay_lsp`): TINYFORGE_TEST_REPLAY holds them as JSON, a list of [status, body,
headers] as tests/anthropic_replay.py records them. Every Claude request the server makes goes
through the SDK's `http_client` hook to them; the rest of the server is the real one."""

from __future__ import annotations

import json
import os

from tests.anthropic_replay import Replay, replaying_session_init
from tinyforge.llm import ClaudeSession


def main() -> None:
    answers = [tuple(answer) for answer in json.loads(os.environ["TINYFORGE_TEST_REPLAY"])]
    ClaudeSession.__init__ = replaying_session_init(Replay(*answers))  # type: ignore[method-assign]
    from tinyforge.lsp import main as serve

    serve()


if __name__ == "__main__":
    main()
