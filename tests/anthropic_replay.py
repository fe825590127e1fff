"""The Anthropic Messages API's side of the wire, replayed for the real SDK client.

There is no network here: tests hand `httpx2.MockTransport` (the HTTP library this SDK release
is built on; it refuses `httpx` objects) to `anthropic.Anthropic(http_client=...)`, and these
answers come back in the shape the API sends them: tool-use messages, error bodies, request ids
and retry headers. Everything on the SDK's side (request building, retries, error classes) is
the real thing.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import httpx2

from tinyforge.llm import DEFAULT_MODEL

KEY = "sk-ant-api03-test-key-0123456789abcdef"


def tool_reply(name: str, data: dict[str, Any], n: int = 1) -> tuple[int, dict[str, Any], dict]:
    return (
        200,
        {
            "id": f"msg_01Rk3pX8yVb2ZKcQ9e{n:04d}",
            "type": "message",
            "role": "assistant",
            "model": DEFAULT_MODEL,
            "content": [
                {"type": "tool_use", "id": f"toolu_01Abc{n:04d}", "name": name, "input": data}
            ],
            "stop_reason": "tool_use",
            "stop_sequence": None,
            "usage": {
                "input_tokens": 3120,
                "output_tokens": 412,
                "cache_creation_input_tokens": 0,
                "cache_read_input_tokens": 0,
            },
        },
        {"request-id": f"req_011CTest{n:04d}"},
    )


def api_error(status: int, kind: str, message: str, **headers: str) -> tuple[int, dict, dict]:
    body = {"type": "error", "error": {"type": kind, "message": message}, "request_id": "req_1"}
    return status, body, {"request-id": "req_011CTestErr", **headers}


class Replay:
    """The API's side of the wire: answers in order (the last one repeats), keeps requests."""

    def __init__(self, *answers: tuple[int, dict, dict] | Exception) -> None:
        self.answers = list(answers)
        self.requests: list[httpx2.Request] = []
        self.bodies: list[dict[str, Any]] = []

    def __call__(self, request: httpx2.Request) -> httpx2.Response:
        self.requests.append(request)
        self.bodies.append(json.loads(request.content))
        answer = self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]
        if isinstance(answer, Exception):
            raise answer
        status, body, headers = answer
        return httpx2.Response(status, json=body, headers=headers)

    def client(self) -> httpx2.Client:
        return httpx2.Client(transport=httpx2.MockTransport(self))


def replaying_session_init(replay: Replay) -> Callable[..., None]:
    """A `ClaudeSession.__init__` whose SDK client talks to `replay` unless given its own.

    For the doors that build their planner themselves (the CLI, the language server): set it on
    ClaudeSession (monkeypatch, or a test server's launcher) and every request they make goes
    through the SDK's `http_client` hook to the recorded answers."""
    from tinyforge.llm import ClaudeSession

    original = ClaudeSession.__init__

    def init(self: ClaudeSession, *, http_client: httpx2.Client | None = None, **kw: Any) -> None:
        original(self, http_client=http_client or replay.client(), **kw)

    return init
