"""What a fix changes, for both doors: the editor's quick fixes and `tinyforge repair`.

One table of each kind and pure functions from a file's text to its fixed text; the doors
differ only in what they know (the editor: the open buffer and the static estimate against the
budget; repair: the files on disk, a recorded failure and the build's measured figures).

- shrinking: the filters/units of every layer but the output one are scaled down, in steps,
  until the caller's test says the estimate fits;
- activations TFLite Micro cannot run: replaced by the closest one it runs;
- platformio.ini: whether an environment still needs a TFLite Micro library in lib_deps.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace

from tinyforge.boards import Board
from tinyforge.memory.keras_estimate import ACTIVATION_OPS, FUSED_ACTIVATIONS
from tinyforge.memory.keras_layers import CannotInfer, ModelEstimate, estimate
from tinyforge.memory.keras_source import SourceLayer, SourceModel
from tinyforge.repair.fixes import split_lines

# The argument that sets a layer's width, per layer the shrink fix scales.
SHRINKABLE = {
    "Conv1D": "filters",
    "Conv2D": "filters",
    "SeparableConv1D": "filters",
    "SeparableConv2D": "filters",
    "Dense": "units",
}
# Each trial keeps this share of the widths of the one before, down to SHRINK_FLOOR of the
# original: fine enough to shrink no more than needed (the editor stepped by 0.75 before the
# two doors shared this search; repair's finer 0.85 is kept).
SHRINK_STEP = 0.85
SHRINK_FLOOR = 0.05

# Activations TFLM lacks → the closest one it runs (checked against TFLM's own list again).
# The editor knew the first four only; repair's table, the more complete, is the one kept.
ACTIVATION_REPLACEMENTS = {
    "gelu": "relu",
    "selu": "elu",
    "softplus": "relu",
    "mish": "relu",
    "softsign": "tanh",
    "hard_sigmoid": "sigmoid",
}

# Substrings that identify a TFLite Micro library in lib_deps.
TFLM_LIBRARY_HINTS = ("tensorflowlite", "tflite", "tflm", "tensorflow")


# -- shrinking --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Shrunk:
    """The last trial of the search: `fits` says whether the caller's test passed."""

    fits: bool
    factor: float
    estimate: ModelEstimate
    after: str  # the source with the scaled literals
    changes: list[str]  # e.g. "Conv2D filters 64→54"


def shrink_candidates(model: SourceModel) -> list[tuple[int, str]]:
    """(layer index, argument) of the widths a fix can rewrite: literal filters/units of every
    layer but the last (the output layer's width is the number of classes)."""
    found = []
    for index, layer in enumerate(model.layers[:-1]):
        key = SHRINKABLE.get(layer.class_name)
        if key and key in layer.literal_ranges and isinstance(layer.config.get(key), int):
            found.append((index, key))
    return found


def shrink(source: str, model: SourceModel, fits: Callable[[ModelEstimate], bool]) -> Shrunk | None:
    """Scale the candidates' widths until `fits` says yes, or down to SHRINK_FLOOR (then the
    result's `fits` is False). None when nothing can be scaled or the estimator cannot size a
    trial."""
    candidates = shrink_candidates(model)
    if not candidates:
        return None
    factor, fitted = 1.0, False
    trial, est = model, None
    while factor > SHRINK_FLOOR and not fitted:
        factor *= SHRINK_STEP
        trial = _scaled(model, candidates, factor)
        try:
            est = estimate(trial)
        except CannotInfer:
            return None
        fitted = fits(est)
    assert est is not None  # the loop runs at least once
    after, changes = _rewrite_widths(source, model, trial, candidates)
    return Shrunk(fitted, factor, est, after, changes)


def _scaled(model: SourceModel, candidates: list[tuple[int, str]], factor: float) -> SourceModel:
    layers = [replace(layer, config=dict(layer.config)) for layer in model.layers]
    for index, key in candidates:
        layers[index].config[key] = max(1, math.floor(model.layers[index].config[key] * factor))
    return replace(model, layers=layers)


def _rewrite_widths(
    source: str, model: SourceModel, trial: SourceModel, candidates: list[tuple[int, str]]
) -> tuple[str, list[str]]:
    spans = []
    changes = []
    for index, key in candidates:
        old, new = model.layers[index].config[key], trial.layers[index].config[key]
        spans.append((model.layers[index].literal_ranges[key], str(new)))
        changes.append(f"{model.layers[index].class_name} {key} {old}→{new}")
    return replace_ranges(source, spans), changes


# -- activations ------------------------------------------------------------------------------


def activation_op(activation: str) -> str:
    """The TFLite op a Keras activation becomes (a name no op has when there is none)."""
    return ACTIVATION_OPS.get(activation, f"ACTIVATION:{activation}")


def tflm_runs(activation: str, supported: frozenset[str]) -> bool:
    # relu/relu6 fuse into the layer before them: nothing to run, nothing to replace.
    return activation in FUSED_ACTIVATIONS or activation_op(activation) in supported


def replacement_for(activation: str, supported: frozenset[str]) -> str:
    new = ACTIVATION_REPLACEMENTS.get(activation, "relu")
    if new != "relu" and activation_op(new) not in supported:
        new = "relu"  # relu fuses into the layer before it: TFLM always runs it
    return new


def replace_activations(
    source: str, layers: Iterable[SourceLayer], supported: frozenset[str]
) -> tuple[str, list[str]]:
    """`source` with the literal activation of each of `layers` (those the caller found TFLM
    cannot run) replaced by one it runs, its quotes kept; and what changed, e.g. 'Dense
    activation "gelu" → "relu"'. A layer listed twice (by two model definitions) changes once."""
    lines = split_lines(source)
    spans: dict[tuple[int, int, int, int], tuple[tuple[int, int, int, int], str]] = {}
    changes = set()
    for layer in layers:
        activation = layer.config.get("activation")
        where = layer.literal_ranges.get("activation")
        if not isinstance(activation, str) or where is None:
            continue
        new = replacement_for(activation, supported)
        quote = lines[where[0]][where[1]] if where[0] < len(lines) else '"'
        spans[where] = (where, f"{quote}{new}{quote}")
        changes.add(f'{layer.class_name} activation "{activation}" → "{new}"')
    return replace_ranges(source, spans.values()), sorted(changes)


# -- platformio.ini ---------------------------------------------------------------------------


def has_tflm_library(lib_deps: str) -> bool:
    lowered = lib_deps.lower()
    return any(hint in lowered for hint in TFLM_LIBRARY_HINTS)


def needs_tflm_library(lib_deps: str, board: Board | None) -> bool:
    """An environment whose firmware cannot compile for want of TFLM: none in lib_deps, and the
    board's core does not bring its own (ESP32's Arduino core ships TFLM: an empty lib_deps is
    right there). Repair flagged ESP32 projects until it shared this check with the editor."""
    from tinyforge.generate.firmware import is_bundled

    if has_tflm_library(lib_deps):
        return False
    return board is None or not is_bundled(board)


# -- text -------------------------------------------------------------------------------------


def replace_ranges(source: str, spans: Iterable[tuple[tuple[int, int, int, int], str]]) -> str:
    """`source` with each (line, col, end_line, end_col) range (0-based, as the static pass
    records literals) replaced by its text; the ranges must not overlap."""
    starts = [0]
    for line in split_lines(source):
        starts.append(starts[-1] + len(line))
    offsets = [
        (starts[line] + col, starts[end_line] + end_col, text)
        for (line, col, end_line, end_col), text in spans
    ]
    after = source
    for start, end, text in sorted(offsets, reverse=True):
        after = after[:start] + text + after[end:]
    return after
