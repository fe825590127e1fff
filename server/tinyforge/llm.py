"""Claude through the official `anthropic` SDK: one forced tool call at a time, clear failures.

The planner and the repairer share this. It resolves the API key (given by the editor, else
ANTHROPIC_API_KEY) and the model (given, else TINYFORGE_CLAUDE_MODEL, else DEFAULT_MODEL),
keeps retries bounded and the connect timeout short so that a machine without a network fails
in a couple of seconds with one sentence, and turns every SDK error into `ClaudeUnavailable`
whose message never contains the key. The key lives in memory only: it is never logged,
printed or written to a file.
"""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypedDict, Unpack, cast

from tinyforge.errors import TinyForgeError

if TYPE_CHECKING:  # the SDK costs ~0.5 s to import: only when Claude is really used
    import anthropic
    import httpx2
    from anthropic.types import MessageParam, ToolParam

KEY_ENV = "ANTHROPIC_API_KEY"
MODEL_ENV = "TINYFORGE_CLAUDE_MODEL"
# The current Sonnet in the pinned SDK's model list; claude-sonnet-4-5 is marked there as
# reaching end-of-life on 2026-11-30, so it is not the default.
DEFAULT_MODEL = "claude-sonnet-5-5"
# The SDK retries 408/409/429/5xx/529 and connection errors with exponential back-off (honouring
# retry-after): two retries keep a dead network or an overloaded API to a few seconds.
MAX_RETRIES = 2
CONNECT_TIMEOUT = 5.0
READ_TIMEOUT = 90.0
KEY_HELP = "set ANTHROPIC_API_KEY, or give the key to the editor extension (anthropicApiKey)"


class ClaudeUnavailable(TinyForgeError):
    """Claude could not be asked (no key, key rejected, rate limit, network…): one sentence."""

    def __init__(self, kind: str, message: str) -> None:
        self.kind = kind  # "no-key" | "key-rejected" | "rate-limited" | "overloaded" | ...
        super().__init__(message)


class ClaudeReplyError(TinyForgeError):
    """Claude answered, but not with the tool call that was asked for."""

    def __init__(self, message: str, content: list[dict[str, Any]] | None = None) -> None:
        self.content = content or []  # what it said instead, to keep the conversation whole
        super().__init__(message)


def resolve_model(model: str | None = None) -> str:
    return (model or "").strip() or os.environ.get(MODEL_ENV, "").strip() or DEFAULT_MODEL


def resolve_key(api_key: str | None = None) -> str | None:
    key = (api_key or "").strip() or os.environ.get(KEY_ENV, "").strip()
    return key or None


class SessionOptions(TypedDict, total=False):
    """How to reach Claude; what the planner, the repairer and their session take."""

    api_key: str | None  # else ANTHROPIC_API_KEY
    model: str | None  # else TINYFORGE_CLAUDE_MODEL, else DEFAULT_MODEL
    http_client: httpx2.Client | None  # the SDK's HTTP hook (tests replay recorded answers)
    max_retries: int


@dataclass
class ToolReply:
    """The forced tool call's input, and what it takes to continue the conversation."""

    input: dict[str, Any]
    tool_use_id: str
    assistant_content: list[dict[str, Any]]

    def rejected(self, why: str) -> list[dict[str, Any]]:
        """The turns that hand this call back to Claude as failed, saying why: the messages to
        append before asking again."""
        result = {"type": "tool_result", "tool_use_id": self.tool_use_id, "is_error": True}
        return [
            {"role": "assistant", "content": self.assistant_content},
            {"role": "user", "content": [{**result, "content": why}]},
        ]


class ClaudeSession:
    """One configured SDK client; `ask_tool` makes Claude fill one tool's input schema."""

    def __init__(self, **options: Unpack[SessionOptions]) -> None:
        self.model = resolve_model(options.get("model"))
        self._key = resolve_key(options.get("api_key"))
        self._http_client = options.get("http_client")
        self._max_retries = options.get("max_retries", MAX_RETRIES)
        self._client: anthropic.Anthropic | None = None

    def __repr__(self) -> str:  # never show the key, even in a debugger or a log of objects
        return f"ClaudeSession(model={self.model!r}, key={'set' if self._key else 'unset'})"

    @property
    def has_key(self) -> bool:
        return self._key is not None

    def redact(self, text: str) -> str:
        """`text` with the key blanked out: error bodies and exception strings pass here."""
        if self._key and self._key in text:
            text = text.replace(self._key, "[redacted]")
        return text

    def _sdk(self) -> anthropic.Anthropic:
        if self._key is None:
            raise ClaudeUnavailable("no-key", f"No Anthropic API key: {KEY_HELP}.")
        if self._client is None:
            import anthropic
            import httpx2

            # The key is passed explicitly so the SDK never goes looking for profiles or
            # credential files on disk.
            self._client = anthropic.Anthropic(
                api_key=self._key,
                max_retries=self._max_retries,
                timeout=httpx2.Timeout(READ_TIMEOUT, connect=CONNECT_TIMEOUT),
                http_client=self._http_client,
            )
        return self._client

    def ask_tool(
        self,
        *,
        system: str,
        messages: list[dict[str, Any]],
        tool: dict[str, Any],
        max_tokens: int = 4096,
    ) -> ToolReply:
        """One Messages API call whose reply must be a call of `tool` (tool_choice forces it)."""
        import anthropic

        client = self._sdk()
        try:
            with warnings.catch_warnings():
                # A deprecated model id only warns; the user chose it, the call still works.
                warnings.simplefilter("ignore", DeprecationWarning)
                # The planners build messages and the tool from JSON schemas, as plain dicts.
                message = client.messages.create(
                    model=self.model,
                    max_tokens=max_tokens,
                    system=system,
                    messages=cast("list[MessageParam]", messages),
                    tools=[cast("ToolParam", tool)],
                    tool_choice={
                        "type": "tool",
                        "name": tool["name"],
                        "disable_parallel_tool_use": True,
                    },
                )
        except anthropic.APIError as exc:
            raise self._unavailable(exc) from None
        content = [block.model_dump(mode="json", exclude_none=True) for block in message.content]
        for block in message.content:
            if block.type == "tool_use" and block.name == tool["name"]:
                data = block.input if isinstance(block.input, dict) else {}
                return ToolReply(dict(data), block.id, content)
        why = f"stop_reason {message.stop_reason}"
        raise ClaudeReplyError(f"Claude's reply had no {tool['name']} tool call ({why}).", content)

    def _unavailable(self, exc: Exception) -> ClaudeUnavailable:
        import anthropic

        tries = f"after {self._max_retries} retries"
        detail = self.redact(_api_message(exc))
        if isinstance(exc, anthropic.AuthenticationError):
            return ClaudeUnavailable(
                "key-rejected",
                f"The Anthropic API rejected the key (401 {detail}): {KEY_HELP} with a valid key.",
            )
        if isinstance(exc, anthropic.PermissionDeniedError):
            return ClaudeUnavailable(
                "key-rejected",
                f"The Anthropic API key may not use {self.model} (403 {detail}).",
            )
        if isinstance(exc, anthropic.NotFoundError):
            return ClaudeUnavailable(
                "model",
                f"The Anthropic API does not know the model '{self.model}' (404): choose "
                f"another with --model or {MODEL_ENV}.",
            )
        if isinstance(exc, anthropic.RateLimitError):
            return ClaudeUnavailable(
                "rate-limited",
                f"The Anthropic API is rate-limiting this key (429) {tries}; try again later.",
            )
        if isinstance(exc, anthropic.OverloadedError):
            return ClaudeUnavailable(
                "overloaded", f"The Anthropic API is overloaded (529) {tries}; try again later."
            )
        if isinstance(exc, anthropic.APITimeoutError):
            return ClaudeUnavailable(
                "network", f"The Anthropic API did not answer in time {tries}."
            )
        if isinstance(exc, anthropic.APIConnectionError):
            cause = self.redact(str(exc.__cause__ or exc))
            return ClaudeUnavailable(
                "network", f"Cannot reach the Anthropic API {tries} ({cause})."
            )
        if isinstance(exc, anthropic.APIStatusError):
            return ClaudeUnavailable(
                "api", f"The Anthropic API failed ({exc.status_code} {detail}) {tries}."
            )
        return ClaudeUnavailable("api", f"The Anthropic API call failed: {detail}.")


def _api_message(exc: Exception) -> str:
    """The API's own error type and message, e.g. 'authentication_error: invalid x-api-key'."""
    body = getattr(exc, "body", None)
    if isinstance(body, dict):
        error = body.get("error")
        if isinstance(error, dict):
            kind, message = error.get("type"), error.get("message")
            if kind or message:
                return ": ".join(str(p) for p in (kind, message) if p)
    return str(getattr(exc, "message", "") or exc)
