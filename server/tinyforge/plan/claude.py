"""The Claude planner: the request read by Claude, held to TinyForge's spec, board and TFLM.

Claude is asked to call one tool whose input schema *is* ProjectSpec's JSON schema (generated
from the type: one source of truth), with the board's RAM/flash budget and the op list the
installed TFLite Micro reports in the prompt. The reply is validated by ProjectSpec and against
the board database; an invalid or partial reply gets one more round with the validation errors,
then the offline planner takes over with a notice saying why. Without a key, with a rejected
key, a rate limit, an overloaded API or no network, the offline planner answers too, and the
notice says so in one sentence.

`propose_model` asks Claude for the model itself (a `build_model` function for train.py). The
proposal is parsed, never run: imports are restricted and the static memory estimator checks it
against the budget and the TFLM op list; a violation goes back with the figures for at most
`MODEL_ROUNDS` rounds, after which TinyForge's own sizing stays.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Unpack

from pydantic import ValidationError

from tinyforge.boards import Board, all_boards, find_board_mentions, get_board
from tinyforge.errors import PlanError, StageError, TinyForgeError
from tinyforge.llm import ClaudeReplyError, ClaudeSession, ClaudeUnavailable, SessionOptions
from tinyforge.plan.offline import DEFAULT_BOARD, OfflinePlanner
from tinyforge.spec import ProjectSpec, describe_validation_error

if TYPE_CHECKING:
    from tinyforge.check.proposal import ProposalCheck

__all__ = ["MODEL_ROUNDS", "SPEC_ROUNDS", "ClaudePlanner", "ModelProposal"]

SPEC_TOOL = "project_spec"
MODEL_TOOL = "propose_model"
SPEC_ROUNDS = 2  # the reply, then one repair round with the validation errors
MODEL_ROUNDS = 3  # proposals checked against the budget before the offline sizing takes over


class _InvalidReply(TinyForgeError):
    pass


@dataclass
class ModelProposal:
    train_source: str  # the whole new train.py
    function: str  # the proposed build_model
    rationale: str
    figures: str  # what the static check measured
    rounds: int


def board_facts(board: Board) -> str:
    from tinyforge.check import runtime_costs

    costs = runtime_costs(board.family)
    ram_fixed = costs.tflm_ram + costs.app_ram
    flash_fixed = costs.tflm_flash + costs.app_flash
    return (
        f"{board.name} (id {board.id}, {board.mcu}, {board.cpu}): RAM {board.ram_bytes} bytes, "
        f"flash {board.flash_bytes} bytes. The TFLM runtime and the application take about "
        f"{ram_fixed} bytes of RAM and {flash_fixed} bytes of flash plus ~{costs.op_flash_default}"
        " bytes of flash per kind of op; the rest is for the model's tensor arena (RAM) and "
        "weights (flash)."
    )


def _boards_table() -> str:
    return "\n".join(
        f"- {b.id}: {b.name}, RAM {b.ram_bytes} bytes, flash {b.flash_bytes} bytes"
        for b in all_boards()
    )


class ClaudePlanner:
    """Planner backed by Claude (anthropic SDK); the offline planner is its fallback."""

    name = "claude"

    def __init__(
        self,
        *,
        fallback: OfflinePlanner | None = None,
        supported_ops: frozenset[str] | None = None,
        **session: Unpack[SessionOptions],
    ) -> None:
        self.session = ClaudeSession(**session)
        self.fallback = fallback or OfflinePlanner()
        self.notices: list[str] = []
        self._supported_ops = supported_ops
        # Once Claude is known to be unreachable (no key, rejected key, no network), the rest
        # of this run does not ask again: one notice, no repeated waits.
        self.unavailable: ClaudeUnavailable | None = None

    @property
    def model(self) -> str:
        return self.session.model

    def __repr__(self) -> str:
        return f"ClaudePlanner({self.session!r})"

    # -- the spec ---------------------------------------------------------------------------

    def plan(self, request: str, *, board: str | None = None) -> ProjectSpec:
        self.notices = []
        if not isinstance(request, str):
            raise PlanError("The request must be text.")
        forced = get_board(board) if board else None  # an unknown --board fails right away
        try:
            spec = self._plan(request, forced)
        except (ClaudeUnavailable, ClaudeReplyError, _InvalidReply) as exc:
            if isinstance(exc, ClaudeUnavailable):
                self.unavailable = exc
            reason = self.session.redact(str(exc))
            try:
                spec = self.fallback.plan(request, board=board)
            except TinyForgeError as offline_exc:
                raise PlanError(
                    f"{reason} The offline planner could not read the request either: {offline_exc}"
                ) from offline_exc
            self.notices.append(f"{reason} Planned with the offline planner instead.")
            return spec
        self.notices.append(f"Planned by Claude ({self.model}), checked against {spec.board}.")
        return spec

    def _supported(self) -> frozenset[str] | None:
        if self._supported_ops is None:
            from tinyforge.memory.ops import tflm_supported_ops

            try:
                self._supported_ops = tflm_supported_ops()
            except StageError:
                return None  # the prompt then goes without the list; the checks still run
        return self._supported_ops

    def _context(self, board: Board | None) -> str:
        parts = []
        if board is not None:
            parts.append(f"Target board (from TinyForge's board database): {board_facts(board)}")
        else:
            parts.append(
                "TinyForge's board database found no board in the request: choose from the "
                f"list below, or {DEFAULT_BOARD} when nothing points to one."
            )
        parts.append(f"Supported boards (use the id):\n{_boards_table()}")
        ops = self._supported()
        if ops:
            parts.append(
                "TFLite Micro ops this TFLM build runs (a model may use no other): "
                + ", ".join(sorted(ops))
            )
        return "\n\n".join(parts)

    def _plan(self, request: str, forced: Board | None) -> ProjectSpec:
        if self.unavailable is not None:
            raise self.unavailable
        mentions = find_board_mentions(request)
        named = forced or (mentions[0].board if mentions else None)
        tool = {
            "name": SPEC_TOOL,
            "description": "The TinyForge project spec (tinyforge.toml) for the request.",
            "input_schema": ProjectSpec.model_json_schema(),
        }
        messages: list[dict[str, Any]] = [
            {
                "role": "user",
                "content": f"Request: {json.dumps(request)}\n\n{self._context(named)}",
            }
        ]
        errors = ""
        for _ in range(SPEC_ROUNDS):
            try:
                reply = self.session.ask_tool(
                    system=PLAN_SYSTEM, messages=messages, tool=tool, max_tokens=2048
                )
            except ClaudeReplyError as exc:
                errors = str(exc)
                messages += _retry_turns(exc, SPEC_TOOL)
                continue
            spec, problems = self._validate(reply.input, request, named, forced)
            if spec is not None:
                return spec
            errors = "; ".join(problems)
            messages += reply.rejected(
                f"The spec is invalid: {errors}. Call {SPEC_TOOL} again "
                "with every field, corrected."
            )
        raise _InvalidReply(
            f"Claude's spec was still invalid after {SPEC_ROUNDS} rounds ({_shorten(errors)})."
        )

    def _validate(
        self,
        data: dict[str, Any],
        request: str,
        named: Board | None,
        forced: Board | None,
    ) -> tuple[ProjectSpec | None, list[str]]:
        data = dict(data)
        data["request"] = request  # the user's words, whatever the reply says
        if forced is not None:
            data["board"] = forced.id
        try:
            spec = ProjectSpec.model_validate(data)
        except ValidationError as exc:
            return None, describe_validation_error(exc).split("; ")
        try:
            board = get_board(spec.board)
        except TinyForgeError:
            return None, [f"board: '{spec.board}' is not a supported board id"]
        problems = []
        if named is not None and board.id != named.id:
            problems.append(f"board: the request names {named.name}, whose id is {named.id}")
        if spec.budget.ram_bytes > board.ram_bytes:
            problems.append(
                f"budget.ram_bytes: {spec.budget.ram_bytes} is more than the "
                f"{board.ram_bytes} bytes {board.id} has"
            )
        if spec.budget.flash_bytes > board.flash_bytes:
            problems.append(
                f"budget.flash_bytes: {spec.budget.flash_bytes} is more than the "
                f"{board.flash_bytes} bytes {board.id} has"
            )
        if problems:
            return None, problems
        return spec.model_copy(update={"board": board.id}), []

    # -- the model --------------------------------------------------------------------------

    def propose_model(
        self, spec: ProjectSpec, train_source: str, *, num_classes: int | None = None
    ) -> ModelProposal | None:
        """A Claude-designed build_model for train.py that passed the static checks, or None.

        None leaves TinyForge's own architecture in place; `notices` says why. `num_classes`
        is the count known before training when the spec has none (a folder's sub-folders).
        """
        from tinyforge.check.proposal import check_source, replace_function

        if self.unavailable is not None or not self.session.has_key:
            return None
        board = get_board(spec.board)
        supported = self._supported()
        if supported is None:
            self.notices.append(
                "TFLM did not report its op list: Claude's model proposal was not asked for."
            )
            return None
        hints = {"num_classes": num_classes} if num_classes else None
        current = check_source(train_source, spec, supported_ops=supported, hints=hints)
        tool = {
            "name": MODEL_TOOL,
            "description": "A replacement for train.py's build_model function.",
            "input_schema": {
                "type": "object",
                "properties": {
                    "build_model": {
                        "type": "string",
                        "description": "The complete Python source of "
                        "`def build_model(num_classes: int, x_train: np.ndarray):`, returning "
                        "an uncompiled Keras model.",
                    },
                    "rationale": {"type": "string", "description": "One or two sentences."},
                },
                "required": ["build_model", "rationale"],
            },
        }
        prompt = (
            f"Project spec:\n{spec.model_dump_json(indent=1, exclude={'assumptions'})}\n\n"
            f"Board: {board_facts(board)}\n"
            f"Budget for this project: RAM {spec.budget.ram_bytes} bytes, flash "
            f"{spec.budget.flash_bytes} bytes.\n\n"
            "TFLite Micro ops this TFLM build runs (the model may use no other): "
            f"{', '.join(sorted(supported))}\n\n"
            f"The current train.py (TinyForge's own sizing; its figures: "
            f"{current.figures() or 'not sizable'}):\n```python\n{train_source}\n```"
        )
        messages: list[dict[str, Any]] = [{"role": "user", "content": prompt}]
        last = ""
        for round_ in range(1, MODEL_ROUNDS + 1):
            try:
                reply = self.session.ask_tool(
                    system=MODEL_SYSTEM, messages=messages, tool=tool, max_tokens=4096
                )
            except ClaudeUnavailable as exc:
                self.unavailable = exc
                self.notices.append(
                    f"{self.session.redact(str(exc))} Kept TinyForge's own model sizing."
                )
                return None
            except ClaudeReplyError as exc:
                last = str(exc)
                messages += _retry_turns(exc, MODEL_TOOL)
                continue
            function = str(reply.input.get("build_model") or "")
            rationale = str(reply.input.get("rationale") or "")
            check: ProposalCheck | None = None
            try:
                new_source = replace_function(train_source, "build_model", function)
            except ValueError as exc:
                problems = [str(exc)]
            else:
                check = check_source(
                    new_source,
                    spec,
                    base_source=train_source,
                    supported_ops=supported,
                    hints=hints,
                )
                problems = check.problems
            if check is not None and check.ok:
                self.notices.append(
                    f"Model designed by Claude ({self.model}) in {round_} round"
                    f"{'s' if round_ > 1 else ''}, checked before training: {check.figures()}."
                )
                return ModelProposal(new_source, function, rationale, check.figures(), round_)
            last = "; ".join(problems)
            messages += reply.rejected(
                "Rejected by TinyForge's static check (nothing was run): "
                + "\n".join(f"- {p}" for p in problems)
                + f"\nCall {MODEL_TOOL} again with a model that fits."
            )
        self.notices.append(
            f"Claude's model proposals did not pass the checks in {MODEL_ROUNDS} rounds "
            f"({_shorten(last)}): kept TinyForge's own model sizing."
        )
        return None


def _retry_turns(exc: ClaudeReplyError, tool: str) -> list[dict[str, Any]]:
    """Claude's answer without the tool call, then the request to call it."""
    turns: list[dict[str, Any]] = []
    if exc.content:
        turns.append({"role": "assistant", "content": exc.content})
    turns.append({"role": "user", "content": f"{exc} Call {tool}."})
    return turns


def _shorten(text: str, limit: int = 300) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


PLAN_SYSTEM = """\
You turn one-sentence TinyML requests into TinyForge project specs by calling the project_spec
tool. TinyForge trains a Keras model, converts it to full-int8 TFLite and runs it with TensorFlow
Lite Micro on the board, so the spec must respect the board's memory.

Rules:
- task: image_classification, sensor_classification (IMU, accelerometer, colour or other sensor
  readings), keyword_spotting (audio, speech, wake words) or anomaly_detection.
- board: an id from the supported list. budget: the board's RAM and flash in bytes, unless the
  request states a tighter limit (then that limit in bytes, 1 KB = 1024 bytes, "half the flash"
  = half the board's flash); never more than the board has.
- dataset.kind: "digits" (scikit-learn's built-in 8x8 handwritten digits, input_shape [8, 8, 1],
  classes "0".."9") only when handwritten digits are asked for and no data is named; "folder"
  for a folder of images or audio clips (one sub-folder per class); "csv" for a CSV file, with
  label_column when the request names it. dataset.path exactly as written in the request.
  No data named is fine: then dataset.path is "data" (a folder, for images or audio) or
  "data/readings.csv" (sensor readings, label_column "label"), and an assumption starting
  "No dataset named:"; keyword spotting then also gets the classes "silence" and "unknown".
- dataset.features: the quantities the model reads when the request names them ("from soil
  moisture, temperature and light readings" → ["soil moisture", "temperature", "light"]; RGB →
  ["red", "green", "blue"]). They are inputs, never classes.
- input_shape: images [height, width, channels] (grayscale, thermal and depth 1, RGB/colour 3;
  96x96 for a camera and 32x32 otherwise when no size is given); audio [49, 40, 1] (49 frames x
  40 mel bins); sensor windows [samples, axes]; one row of a CSV [features].
- classes: the class names the request lists, else null (the data's labels are used); never the
  inputs. num_classes when only a count is given.
- quantization: "int8" unless the request asks for float32.
- assumptions: one plain sentence for every default you chose.
- name: a short slug of letters, digits, '_' or '-'.
"""

MODEL_SYSTEM = """\
You design Keras models for microcontrollers. Call propose_model with a complete replacement of
train.py's `build_model(num_classes: int, x_train: np.ndarray)` function. TinyForge will parse it
(never run it) and check it with its static int8 memory estimator before anything trains.

Constraints:
- Import only keras (or tensorflow.keras), numpy and math, inside the function.
- Return keras.Sequential([keras.Input(shape=INPUT_SHAPE), ...]) or a functional keras.Model
  with one input and one output; the last layer is Dense(num_classes, activation="softmax").
- Use constant layer sizes (literals), so the memory can be computed from the source.
- Use only layers whose TFLite ops are in the TFLM op list given; prefer relu/relu6.
- The int8 tensor arena plus the runtime must fit the RAM budget, and the int8 weights plus the
  runtime the flash budget. Aim for the most accurate model that fits with some margin.
- For CSV data, keep a layers.Normalization layer adapted to x_train as the first layer.
"""
