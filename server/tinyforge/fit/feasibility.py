"""Before any training: can the candidate fit the target at all?

The candidate's Keras code is read by the same static pass the editor uses (keras_source →
keras_estimate: the converter emulated, TFLM's planner replayed), its ops are checked
against what the installed TFLM reports it can run, and its figures go through `check_budget`
with the project's budget (the whole firmware) plus the model's own limits given to `fit`
(tensor arena, model bytes). A candidate that fails any of these is never trained.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from tinyforge.boards import Board
from tinyforge.check import Verdict, check_budget, kb
from tinyforge.fit.space import Candidate
from tinyforge.memory.keras_estimate import KerasEstimateError, estimate_from_description
from tinyforge.memory.keras_source import find_models
from tinyforge.spec import Budget, Task


@dataclass(frozen=True)
class Target:
    """What a model must fit: the project's budget and, optionally, the model's own share."""

    board: Board
    budget: Budget  # the whole firmware: model, arena, TFLM runtime, application (tinyforge.toml)
    ram_for_model: int | None = None  # the tensor arena on the 32-bit target (--budget-ram)
    flash_for_model: int | None = None  # the .tflite model (--budget-flash)

    def firmware_verdict(self, *, arena_target: int, model_bytes: int, ops: list[str]) -> Verdict:
        """The whole firmware's figures against the project's budget (check's own verdict)."""
        return check_budget(
            board=self.board,
            budget=self.budget,
            model_bytes=model_bytes,
            arena_bytes_target=arena_target,
            ops=ops,
        )

    def violations(self, *, arena_target: int, model_bytes: int, ops: list[str]) -> list[str]:
        """Why these figures do not fit, one sentence each; empty when they do."""
        reasons = []
        if self.ram_for_model is not None and arena_target > self.ram_for_model:
            reasons.append(
                f"tensor arena {kb(arena_target)} exceeds the {kb(self.ram_for_model)} RAM "
                "budget for the model"
            )
        if self.flash_for_model is not None and model_bytes > self.flash_for_model:
            reasons.append(
                f"model {kb(model_bytes)} exceeds the {kb(self.flash_for_model)} flash budget "
                "for the model"
            )
        verdict = self.firmware_verdict(arena_target=arena_target, model_bytes=model_bytes, ops=ops)
        reasons += [v.message for v in verdict.violations]
        return reasons

    def constraints(
        self, *, arena_target: int, model_bytes: int, ops: list[str]
    ) -> dict[str, float]:
        """Optuna's constraint values (≤ 0 is satisfied), in KB so they are comparable."""
        verdict = self.firmware_verdict(arena_target=arena_target, model_bytes=model_bytes, ops=ops)
        ram_limit = self.ram_for_model if self.ram_for_model is not None else arena_target
        flash_limit = self.flash_for_model if self.flash_for_model is not None else model_bytes
        return {
            "model_ram": (arena_target - ram_limit) / 1024,
            "model_flash": (model_bytes - flash_limit) / 1024,
            "firmware_ram": (verdict.ram_bytes_estimate - self.budget.ram_bytes) / 1024,
            "firmware_flash": (verdict.flash_bytes_estimate - self.budget.flash_bytes) / 1024,
        }

    def to_dict(self) -> dict[str, Any]:
        return {
            "board": self.board.id,
            "ram_bytes": self.budget.ram_bytes,
            "flash_bytes": self.budget.flash_bytes,
            "ram_for_model": self.ram_for_model,
            "flash_for_model": self.flash_for_model,
        }


@dataclass
class Screen:
    """The static verdict on one candidate."""

    feasible: bool
    reasons: list[str] = field(default_factory=list)
    arena_bytes_target: int | None = None
    model_bytes: int | None = None
    ops: list[str] = field(default_factory=list)
    macs: int | None = None
    constraints: dict[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "feasible": self.feasible,
            "reasons": self.reasons,
            "arena_bytes_target": self.arena_bytes_target,
            "model_bytes": self.model_bytes,
            "ops": self.ops,
            "macs": self.macs,
        }


def keras_source(candidate: Candidate, task: Task) -> str:
    """The candidate as plain Keras code, with every size a literal (so it can be read
    statically), exactly the layers its train.py builds."""
    shape = candidate.input_shape
    axis = "None" if task is Task.KEYWORD_SPOTTING else "-1"
    codes = [
        f"layers.Normalization(axis={axis})" if layer.code == "normalizer" else layer.code
        for layer in candidate.architecture.layers
        if layer.code
    ]
    if task is Task.ANOMALY_DETECTION:
        # train_anomaly.py.j2's deployed scorer: standardise, encode/decode, mean squared error.
        lines, previous = [], "scaled"
        for number, code in enumerate(codes):
            lines.append(f"    x{number} = {code}({previous})")
            previous = f"x{number}"
        body = "\n".join(lines)
        return (
            "import keras\nfrom keras import layers\n\n"
            "def build():\n"
            f"    inputs = keras.Input(shape={shape!r})\n"
            "    scaled = layers.Normalization(axis=-1)(inputs)\n"
            f"{body}\n"
            f"    reconstruction = layers.Dense({shape[-1]})({previous})\n"
            "    error = layers.Subtract()([reconstruction, scaled])\n"
            "    squared = layers.Multiply()([error, error])\n"
            "    mean = layers.Dense(1, use_bias=False)(squared)\n"
            "    return keras.Model(inputs, mean)\n"
        )
    items = "\n".join(f"        {code}," for code in codes)
    return (
        "import keras\nfrom keras import layers\n\n"
        "model = keras.Sequential(\n    [\n"
        f"        keras.Input(shape={shape!r}),\n{items}\n    ]\n)\n"
    )


def screen(
    candidate: Candidate,
    task: Task,
    num_classes: int,
    target: Target,
    supported: frozenset[str],
    quantization: str = "int8",
) -> Screen:
    """Size the candidate statically and judge it against the target (milliseconds)."""
    source = keras_source(candidate, task)
    models = find_models(source, {"num_classes": num_classes})
    if len(models) != 1:
        return Screen(False, ["the candidate's Keras code could not be read statically"])
    model = models[0]
    # As TinyForge converts: a batch of one, the project's quantization.
    description = {
        "input_shape": model.input_shape,
        "layers": model.layers,
        "problems": model.problems,
        "static_batch": True,
        "quantization": quantization,
    }
    try:
        est = estimate_from_description(description)
    except KerasEstimateError as exc:
        return Screen(False, [f"cannot be sized statically: {exc}"])
    all_ops = [op.op for op in est.model.ops]
    ops = sorted(set(all_ops))
    arena, model_bytes = est.arena_bytes_target, est.model_bytes_estimate
    reasons = [f"op {op} is not in the installed TFLite Micro" for op in ops if op not in supported]
    reasons += target.violations(arena_target=arena, model_bytes=model_bytes, ops=all_ops)
    constraints = target.constraints(arena_target=arena, model_bytes=model_bytes, ops=all_ops)
    constraints["tflm_ops"] = float(sum(op not in supported for op in ops))
    return Screen(
        feasible=not reasons,
        reasons=reasons,
        arena_bytes_target=arena,
        model_bytes=model_bytes,
        ops=ops,
        macs=sum(layer.macs for layer in est.static.layers),
        constraints=constraints,
    )
