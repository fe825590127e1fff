"""The Claude planner through the real anthropic SDK; only the API's network is replayed.

There is no network here: each test hands `httpx2.MockTransport` (the HTTP library this SDK
release is built on) to the SDK's client and replays responses in the shape the Messages API
sends: tool-use replies, error bodies, retry headers. Everything else is real: the SDK's request
building, retries and error classes, ProjectSpec validation, the board database, TFLM's op list
and the static memory estimator.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

import httpx2
import pytest

from tests.anthropic_replay import KEY, Replay, api_error, tool_reply
from tests.conftest import TINYFORGE
from tinyforge import generate, pipeline
from tinyforge.errors import PlanError
from tinyforge.llm import DEFAULT_MODEL, KEY_ENV, MODEL_ENV, resolve_model
from tinyforge.lsp.server import Settings
from tinyforge.plan import OfflinePlanner, get_planner
from tinyforge.plan.claude import ClaudePlanner
from tinyforge.spec import Budget, Dataset, DatasetKind, ProjectSpec, Task

DIGITS = "Recognize handwritten digits on a Raspberry Pi Pico"
PICO_RAM, PICO_FLASH = 262144, 2097152


@pytest.fixture(autouse=True)
def _no_ambient_key(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    # The tests decide the key and the model; a developer's environment must not.
    monkeypatch.delenv(KEY_ENV, raising=False)
    monkeypatch.delenv(MODEL_ENV, raising=False)
    monkeypatch.chdir(tmp_path)


def planner(replay: Replay, **options: Any) -> ClaudePlanner:
    return ClaudePlanner(
        api_key=options.pop("api_key", KEY), http_client=replay.client(), **options
    )


def digits_spec(**changes: Any) -> dict[str, Any]:
    spec = {
        "name": "digits_pico",
        "request": DIGITS,
        "task": "image_classification",
        "board": "pico",
        "input_shape": [8, 8, 1],
        "classes": [str(d) for d in range(10)],
        "num_classes": 10,
        "dataset": {"kind": "digits"},
        "budget": {"ram_bytes": PICO_RAM, "flash_bytes": PICO_FLASH},
        "quantization": "int8",
        "assumptions": ["No dataset named: the built-in 8x8 digits."],
    }
    spec.update(changes)
    return spec


def tool_results(body: dict[str, Any]) -> list[dict[str, Any]]:
    last = body["messages"][-1]
    return [b for b in last["content"] if isinstance(b, dict) and b.get("type") == "tool_result"]


# -- the spec ---------------------------------------------------------------------------------


def test_good_tool_use_reply_becomes_the_spec() -> None:
    replay = Replay(tool_reply("project_spec", digits_spec()))
    p = planner(replay)
    spec = p.plan(DIGITS)
    assert spec == ProjectSpec.model_validate(digits_spec())
    assert len(replay.requests) == 1
    body, request = replay.bodies[0], replay.requests[0]
    # The tool's schema is the spec type's own: one source of truth; the tool is forced.
    assert body["tools"][0]["input_schema"] == ProjectSpec.model_json_schema()
    assert body["tool_choice"] == {
        "type": "tool",
        "name": "project_spec",
        "disable_parallel_tool_use": True,
    }
    assert body["model"] == DEFAULT_MODEL
    # The board's limits and TFLM's op list are in the prompt.
    prompt = body["messages"][0]["content"]
    assert f"RAM {PICO_RAM} bytes, flash {PICO_FLASH} bytes" in prompt
    assert "CONV_2D" in prompt and "FULLY_CONNECTED" in prompt and "GELU" not in prompt
    assert KEY in (request.headers.get("x-api-key", "") + request.headers.get("authorization", ""))
    assert p.notices == [f"Planned by Claude ({DEFAULT_MODEL}), checked against pico."]


def test_malformed_reply_is_repaired_in_a_second_round() -> None:
    partial = digits_spec(task="digit_recognition")
    del partial["budget"]
    replay = Replay(
        tool_reply("project_spec", partial, 1), tool_reply("project_spec", digits_spec(), 2)
    )
    spec = planner(replay).plan(DIGITS)
    assert spec.budget == Budget(ram_bytes=PICO_RAM, flash_bytes=PICO_FLASH)
    assert len(replay.requests) == 2
    (result,) = tool_results(replay.bodies[1])
    assert result["is_error"] is True and result["tool_use_id"] == "toolu_01Abc0001"
    assert "task: Input should be" in result["content"]
    assert "budget: Field required" in result["content"]
    # The conversation carries Claude's own first answer before the errors.
    assert replay.bodies[1]["messages"][1]["role"] == "assistant"


def test_invalid_twice_falls_back_to_the_offline_planner() -> None:
    bad = digits_spec(board="arduino-uno-r3")
    replay = Replay(tool_reply("project_spec", bad, 1), tool_reply("project_spec", bad, 2))
    p = planner(replay)
    spec = p.plan(DIGITS)
    assert spec == OfflinePlanner().plan(DIGITS)
    assert len(replay.requests) == 2
    assert "not a supported board id" in p.notices[0]
    assert p.notices[0].endswith("Planned with the offline planner instead.")


def test_reply_is_held_to_the_board_database() -> None:
    # The request names a Pico: another board, or a budget above the Pico's, goes back.
    wrong = digits_spec(board="esp32dev", budget={"ram_bytes": 327680, "flash_bytes": 4194304})
    replay = Replay(
        tool_reply("project_spec", wrong, 1), tool_reply("project_spec", digits_spec(), 2)
    )
    assert planner(replay).plan(DIGITS).board == "pico"
    (result,) = tool_results(replay.bodies[1])
    assert "the request names Raspberry Pi Pico, whose id is pico" in result["content"]
    too_big = digits_spec(budget={"ram_bytes": 10**6, "flash_bytes": PICO_FLASH})
    replay = Replay(
        tool_reply("project_spec", too_big, 1), tool_reply("project_spec", digits_spec(), 2)
    )
    planner(replay).plan(DIGITS)
    assert (
        "budget.ram_bytes: 1000000 is more than the 262144 bytes pico has"
        in (tool_results(replay.bodies[1])[0]["content"])
    )


def test_board_override_wins_over_the_reply() -> None:
    replay = Replay(
        tool_reply("project_spec", digits_spec(budget={"ram_bytes": 262144, "flash_bytes": 983040}))
    )
    spec = planner(replay).plan("Recognize handwritten digits", board="nano33ble")
    assert spec.board == "nano33ble"
    assert "Arduino Nano 33 BLE Sense" in replay.bodies[0]["messages"][0]["content"]


def test_rejected_key_says_so_and_falls_back_without_leaking_the_key() -> None:
    # Even an error body that echoed the key must not carry it into a message.
    replay = Replay(api_error(401, "authentication_error", f"invalid x-api-key {KEY}"))
    p = planner(replay)
    spec = p.plan(DIGITS)
    assert spec == OfflinePlanner().plan(DIGITS)
    assert len(replay.requests) == 1  # a 401 is not retried
    (notice,) = p.notices
    assert notice.startswith("The Anthropic API rejected the key (401 authentication_error")
    assert KEY not in notice and "[redacted]" in notice
    assert KEY not in repr(p)


@pytest.mark.parametrize(
    ("status", "kind", "words"),
    [
        (429, "rate_limit_error", "rate-limiting this key (429) after 2 retries"),
        (529, "overloaded_error", "overloaded (529) after 2 retries"),
    ],
)
def test_rate_limit_and_overload_are_retried_then_fall_back(
    status: int, kind: str, words: str
) -> None:
    # retry-after-ms keeps the SDK's back-off short here; the API sends retry-after too.
    replay = Replay(
        api_error(status, kind, "try later", **{"retry-after": "1", "retry-after-ms": "5"})
    )
    p = planner(replay)
    spec = p.plan(DIGITS)
    assert len(replay.requests) == 3  # the SDK's own retries: 1 + max_retries
    assert [r.headers["x-stainless-retry-count"] for r in replay.requests] == ["0", "1", "2"]
    assert words in p.notices[0]
    assert spec == OfflinePlanner().plan(DIGITS)


def test_no_network_fails_fast_with_one_sentence() -> None:
    replay = Replay(httpx2.ConnectError("[Errno -2] Name or service not known"))
    p = planner(replay, max_retries=1)
    p.plan(DIGITS)
    assert len(replay.requests) == 2
    assert p.notices[0].startswith("Cannot reach the Anthropic API after 1 retries")
    # The rest of the run does not wait on the network again.
    assert p.propose_model(ProjectSpec.model_validate(digits_spec()), "") is None
    assert len(replay.requests) == 2


def test_no_key_plans_offline_without_calling_the_api() -> None:
    replay = Replay(tool_reply("project_spec", digits_spec()))
    p = planner(replay, api_key=None)
    assert p.plan(DIGITS) == OfflinePlanner().plan(DIGITS)
    assert replay.requests == []
    assert p.notices[0].startswith("No Anthropic API key: set ANTHROPIC_API_KEY")


def test_unreadable_request_names_both_reasons() -> None:
    with pytest.raises(PlanError, match=r"No Anthropic API key.*offline planner could not read"):
        ClaudePlanner().plan("hello there")


def test_model_id_comes_from_option_env_or_default(monkeypatch: pytest.MonkeyPatch) -> None:
    assert resolve_model() == DEFAULT_MODEL
    monkeypatch.setenv(MODEL_ENV, "claude-opus-5-5")
    assert resolve_model() == "claude-opus-5-5"
    assert resolve_model("claude-haiku-5-5") == "claude-haiku-5-5"
    replay = Replay(tool_reply("project_spec", digits_spec()))
    planner(replay).plan(DIGITS)
    assert replay.bodies[0]["model"] == "claude-opus-5-5"


def test_registry_and_editor_settings() -> None:
    assert isinstance(get_planner("claude"), ClaudePlanner)
    assert isinstance(get_planner("offline", api_key=KEY, model="x"), OfflinePlanner)
    settings = Settings()
    settings.update(
        {"tinyforge": {"planner": "claude", "anthropicApiKey": KEY, "claude": {"model": "m-1"}}}
    )
    assert settings.planner_options() == {"api_key": KEY, "model": "m-1"}
    assert KEY not in repr(settings)
    settings.update({"anthropicApiKey": "", "claude.model": "m-2"})
    assert settings.anthropic_api_key is None and settings.claude_model == "m-2"


def test_cli_without_key_says_so_and_still_plans(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != KEY_ENV}
    result = subprocess.run(
        [str(TINYFORGE), "plan", DIGITS, "--planner", "claude", "--json"],
        env={**env, "NO_COLOR": "1", "COLUMNS": "200"},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["board"] == "pico"  # stdout stays pure JSON
    assert "No Anthropic API key" in result.stderr and "offline planner" in result.stderr


# -- the model, checked before it trains ------------------------------------------------------

PETS = ProjectSpec(
    name="pets_pico",
    request="tell cats from dogs in 96x96 grayscale photos in ./pets on a Pi Pico",
    task=Task.IMAGE_CLASSIFICATION,
    board="pico",
    input_shape=[96, 96, 1],
    classes=["cat", "dog"],
    dataset=Dataset(kind=DatasetKind.FOLDER, path="./pets"),
    budget=Budget(ram_bytes=PICO_RAM, flash_bytes=PICO_FLASH),
)

TOO_BIG = """\
def build_model(num_classes: int, x_train: np.ndarray):
    import keras
    from keras import layers

    return keras.Sequential(
        [
            keras.Input(shape=INPUT_SHAPE),
            layers.Conv2D(64, 3, padding="same", activation="relu"),
            layers.MaxPooling2D(2),
            layers.Conv2D(64, 3, padding="same", activation="relu"),
            layers.GlobalAveragePooling2D(),
            layers.Dense(num_classes, activation="softmax"),
        ]
    )
"""
FITS = TOO_BIG.replace(
    'layers.Conv2D(64, 3, padding="same", activation="relu"),\n            layers.MaxPooling2D',
    'layers.Conv2D(16, 3, strides=2, padding="same", activation="relu"),\n'
    "            layers.MaxPooling2D",
).replace("Conv2D(64, 3, padding", "Conv2D(32, 3, padding")


def train_py(spec: ProjectSpec, folder: Path) -> str:
    return generate.render_project(spec, folder)[generate.TRAIN_SCRIPT]


def test_proposal_over_budget_goes_back_with_figures_and_is_fixed(tmp_path: Path) -> None:
    source = train_py(PETS, tmp_path)
    replay = Replay(
        tool_reply("propose_model", {"build_model": TOO_BIG, "rationale": "wide"}, 1),
        tool_reply("propose_model", {"build_model": FITS, "rationale": "stride 2 stem"}, 2),
    )
    p = planner(replay)
    proposal = p.propose_model(PETS, source)
    assert proposal is not None and proposal.rounds == 2
    assert "Conv2D(16, 3, strides=2" in proposal.train_source
    assert "def load_data" in proposal.train_source  # only build_model was replaced
    (result,) = tool_results(replay.bodies[1])
    feedback = result["content"]
    # "RAM 600 KB exceeds the 256 KB budget … largest layer: Conv2D #0 output 96×96×64".
    assert "RAM" in feedback and "exceeds the 256.0 KB budget on pico" in feedback
    assert "largest layer: Conv2D #0 output 96×96×64 = 576.0 KB" in feedback
    prompt = replay.bodies[0]["messages"][0]["content"]
    assert "RAM 262144 bytes" in prompt and "CONV_2D" in prompt and source in prompt
    assert any("Model designed by Claude" in n for n in p.notices)


def test_proposal_with_a_forbidden_import_or_unsupported_op_is_rejected(tmp_path: Path) -> None:
    sneaky = FITS.replace("    import keras\n", "    import keras\n    import subprocess\n")
    gelu = FITS.replace(
        'strides=2, padding="same", activation="relu"',
        'strides=2, padding="same", activation="gelu"',
    )
    replay = Replay(
        tool_reply("propose_model", {"build_model": sneaky, "rationale": "x"}, 1),
        tool_reply("propose_model", {"build_model": gelu, "rationale": "x"}, 2),
        tool_reply("propose_model", {"build_model": FITS, "rationale": "x"}, 3),
    )
    proposal = planner(replay).propose_model(PETS, train_py(PETS, tmp_path))
    assert proposal is not None and proposal.rounds == 3
    assert "import of 'subprocess' is not allowed" in tool_results(replay.bodies[1])[0]["content"]
    assert (
        "becomes the op GELU, which TFLite Micro cannot run"
        in (tool_results(replay.bodies[2])[0]["content"])
    )


def test_offline_sizing_takes_over_after_the_last_round(tmp_path: Path) -> None:
    replay = Replay(tool_reply("propose_model", {"build_model": TOO_BIG, "rationale": "x"}))
    p = planner(replay)
    assert p.propose_model(PETS, train_py(PETS, tmp_path)) is None
    assert len(replay.requests) == 3
    assert "kept TinyForge's own model sizing" in p.notices[-1]


# A small model for the digits that passes the checks: Claude's design in a new project.
SMALL_MODEL = (
    "def build_model(num_classes: int, x_train: np.ndarray):\n"
    "    import keras\n"
    "    from keras import layers\n\n"
    "    return keras.Sequential([\n"
    "        keras.Input(shape=INPUT_SHAPE),\n"
    '        layers.Conv2D(12, 3, padding="same", activation="relu"),\n'
    "        layers.Flatten(),\n"
    '        layers.Dense(num_classes, activation="softmax"),\n'
    "    ])\n"
)


def new_project_answers() -> tuple[tuple[int, dict, dict], ...]:
    """The API's answers to `tinyforge new DIGITS --planner claude`: the spec, then the model."""
    return (
        tool_reply("project_spec", digits_spec(), 1),
        tool_reply("propose_model", {"build_model": SMALL_MODEL, "rationale": "tiny"}, 2),
    )


def test_new_project_saves_claudes_checked_model_until_accepted(tmp_path: Path) -> None:
    replay = Replay(*new_project_answers())
    notices: list[str] = []
    out = tmp_path / "digits"
    spec, written = pipeline.new_project(
        DIGITS,
        out,
        planner="claude",
        planner_options={"api_key": KEY, "http_client": replay.client()},
        notices=notices,
    )
    assert spec.board == "pico" and "train.py" in written.written
    assert notices[0].startswith("Planned by Claude")
    assert notices[1].startswith("Model designed by Claude") and "parameters" in notices[1]
    # Beside train.py until the user accepts it (tests/security/test_proposal_preview.py).
    assert "layers.Conv2D(12, 3" not in (out / "train.py").read_text()
    pending = pipeline.pending_proposal(out)
    assert pending is not None and '+        layers.Conv2D(12, 3, padding="same"' in pending.diff()
    pipeline.accept_proposal(out)
    assert "layers.Conv2D(12, 3" in (out / "train.py").read_text()
    assert pipeline.pending_proposal(out) is None
    # Claude's design is the user's now: a regeneration keeps it.
    again = generate.write_project(spec, out)
    assert again.kept == ["train.py"]


def test_reply_without_the_tool_call_is_asked_again() -> None:
    text_only = tool_reply("project_spec", {}, 1)
    text_only[1]["content"] = [{"type": "text", "text": "Which board do you mean?"}]
    text_only[1]["stop_reason"] = "end_turn"
    replay = Replay(text_only, tool_reply("project_spec", digits_spec(), 2))
    assert planner(replay).plan(DIGITS).board == "pico"
    turns = replay.bodies[1]["messages"]
    assert turns[1] == {
        "role": "assistant",
        "content": [{"type": "text", "text": "Which board do you mean?"}],
    }
    assert turns[2]["content"].endswith("Call project_spec.")


def test_csv_projects_keep_tinyforges_sizing(tmp_path: Path) -> None:
    # The input width of CSV data is only known when the build reads the file.
    csv_spec = digits_spec(
        task="sensor_classification",
        input_shape=[3],
        classes=["idle", "walk"],
        num_classes=2,
        dataset={"kind": "csv", "path": "moves.csv", "label_column": "label"},
    )
    replay = Replay(tool_reply("project_spec", csv_spec))
    notices: list[str] = []
    pipeline.new_project(
        "classify idle vs walk from moves.csv on a Pi Pico",
        tmp_path / "moves",
        planner="claude",
        planner_options={"api_key": KEY, "http_client": replay.client()},
        notices=notices,
    )
    assert len(replay.requests) == 1  # the spec only: no model proposal asked for
