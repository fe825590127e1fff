"""The search space of `tinyforge fit`: per task, the architectures worth training.

A candidate is a few named choices (width, depth, separable or plain convolutions, a hidden
dense layer; for image folders also the input resolution and channels the images allow). It
becomes an `Architecture` of `Layer`s, the same types `generate.architecture` sizes a new
project with, so the training script of a candidate is rendered by the same template as any
TinyForge project. Nothing here imports Optuna or TensorFlow.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tinyforge import datasets
from tinyforge.generate.architecture import (
    Architecture,
    Layer,
    autoencoder_candidate,
    pool2d,
    relu_dense,
    softmax_output,
    to_vector,
)
from tinyforge.spec import DatasetKind, ProjectSpec, Task

# Base filters / units. Wide enough that a tight budget has something to reject.
CONV_WIDTHS = (4, 6, 8, 12, 16, 24, 32, 48, 64, 96, 128)
MLP_WIDTHS = (4, 8, 16, 32, 64, 128)
CONV1D_WIDTHS = (4, 8, 16, 32, 64)
AUTOENCODER_WIDTHS = (8, 16, 32, 64, 128)
DENSE_HEADS = (0, 16, 32, 64)
MAX_FILTERS = 256
# Input resolutions tried for image folders, as fractions of the project's own.
RESOLUTION_SCALES = (1.5, 1.0, 0.75, 0.5, 0.25)
MIN_RESOLUTION = 8
# Images read to learn what the data allows (size, colour): enough to be representative.
IMAGES_PROBED = 200


@dataclass(frozen=True)
class Dimension:
    """One choice of the search: its values in order (small to large where that means much)."""

    name: str
    choices: tuple[Any, ...]


@dataclass
class Candidate:
    """A point of the space: its choices, the input it takes and the model it is."""

    params: dict[str, Any]
    input_shape: tuple[int, ...]
    architecture: Architecture

    @property
    def key(self) -> tuple[Any, ...]:
        """Two choices that build the same model are one candidate (trained once)."""
        return (
            self.input_shape,
            tuple(layer.code or layer.kind for layer in self.architecture.layers),
        )

    def describe(self) -> str:
        parts = [self.architecture.family]
        for name, value in self.params.items():
            if name == "resolution":
                parts.append(f"{value[0]}×{value[1]}")
            elif name == "channels":
                parts.append("RGB" if value == 3 else "gray")
            elif isinstance(value, bool):
                if value:
                    parts.append(name)
            else:
                parts.append(f"{name} {value}")
        return " ".join(parts)


@dataclass
class SearchSpace:
    task: Task
    family: str
    input_shape: tuple[int, ...]  # the project's (a candidate may change an image's)
    num_classes: int
    dimensions: list[Dimension] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def size(self) -> int:
        return math.prod(len(d.choices) for d in self.dimensions)

    def distinct(self, limit: int = 50_000) -> int | None:
        """How many different models the space holds (choices can coincide, e.g. separable
        at depth 1); None when it is too large to count quickly."""
        if self.size > limit:
            return None
        names = [d.name for d in self.dimensions]
        return len(
            {
                self.build(dict(zip(names, values, strict=True))).key
                for values in itertools.product(*(d.choices for d in self.dimensions))
            }
        )

    def build(self, params: dict[str, Any]) -> Candidate:
        """The candidate for one choice per dimension."""
        shape = self.input_shape
        if "resolution" in params or "channels" in params:
            h, w = params.get("resolution", shape[:2])
            shape = (int(h), int(w), int(params.get("channels", shape[2])))
        if self.family == "mlp":
            arch = mlp(shape[0], self.num_classes, params["width"], params["depth"])
        elif self.family == "cnn1d":
            arch = cnn1d(
                shape,
                self.num_classes,
                width=params["width"],
                depth=params["depth"],
                separable=params["separable"],
                dense=params["dense"],
            )
        elif self.family == "autoencoder":
            arch = autoencoder_candidate(math.prod(shape), params["width"])
        else:
            arch = cnn2d(
                shape,
                self.num_classes,
                width=params["width"],
                depth=params["depth"],
                separable=params["separable"],
                stem_stride=params.get("stem_stride", 1),
                dense=params["dense"],
                normalizer=self.task is Task.KEYWORD_SPOTTING,
            )
        return Candidate(dict(params), shape, arch)


# -- builders ---------------------------------------------------------------------------------


def cnn2d(
    shape: tuple[int, ...],
    classes: int,
    *,
    width: int,
    depth: int,
    separable: bool,
    stem_stride: int = 1,
    dense: int = 0,
    normalizer: bool = False,
) -> Architecture:
    """Conv blocks (filters doubling, 2×2 max pooling while the map allows), then a head."""
    h, w, c = shape
    arch = Architecture(family="cnn2d", width=width)
    if normalizer:
        arch.layers.append(Layer("Normalization", "normalizer", shape, params=2))
    ch, cw, in_ch, filters = h, w, c, width
    for block in range(depth):
        if block and min(ch, cw) < 2:
            break  # the map is one pixel: more blocks would only add weights
        stride = stem_stride if block == 0 else 1
        ch, cw = math.ceil(ch / stride), math.ceil(cw / stride)
        if separable and block > 0:
            # The first convolution stays plain: a depthwise filter over 1-3 input channels
            # learns next to nothing.
            code = f'layers.SeparableConv2D({filters}, 3, padding="same", activation="relu")'
            arch.layers.append(
                Layer(
                    "SeparableConv2D",
                    code,
                    (ch, cw, filters),
                    9 * in_ch + in_ch * filters + filters,
                )
            )
        else:
            code = (
                f'layers.Conv2D({filters}, 3, strides={stride}, padding="same", activation="relu")'
            )
            arch.layers.append(
                Layer("Conv2D", code, (ch, cw, filters), 9 * in_ch * filters + filters)
            )
        ch, cw = pool2d(arch, ch, cw, filters)
        in_ch = filters
        filters = min(filters * 2, MAX_FILTERS)
    flat = to_vector(arch, ch, cw, in_ch)
    _head(arch, flat, classes, dense)
    if stem_stride > 1:
        arch.notes.append(f"first convolution uses stride {stem_stride} to save RAM")
    return arch


def cnn1d(
    shape: tuple[int, ...], classes: int, *, width: int, depth: int, separable: bool, dense: int
) -> Architecture:
    steps, channels = shape
    arch = Architecture(family="cnn1d", width=width)
    arch.layers.append(Layer("Normalization", "normalizer", shape, params=2 * channels))
    in_ch, filters = channels, width
    for block in range(depth):
        if block and steps < 2:
            break
        if separable and block > 0:
            code = f'layers.SeparableConv1D({filters}, 5, padding="same", activation="relu")'
            params = 5 * in_ch + in_ch * filters + filters
            kind = "SeparableConv1D"
        else:
            code = f'layers.Conv1D({filters}, 5, padding="same", activation="relu")'
            params = 5 * in_ch * filters + filters
            kind = "Conv1D"
        arch.layers.append(Layer(kind, code, (steps, filters), params))
        if steps >= 2:
            steps //= 2
            arch.layers.append(Layer("MaxPooling1D", "layers.MaxPooling1D(2)", (steps, filters)))
        in_ch = filters
        filters = min(filters * 2, MAX_FILTERS)
    arch.layers.append(Layer("GlobalAveragePooling1D", "layers.GlobalAveragePooling1D()", (in_ch,)))
    _head(arch, in_ch, classes, dense, dropout=False)
    return arch


def mlp(features: int, classes: int, width: int, depth: int) -> Architecture:
    """Dense layers halving from `width` (at least 4 units), features standardised first."""
    arch = Architecture(family="mlp", width=width)
    arch.layers.append(Layer("Normalization", "normalizer", (features,), params=2 * features))
    previous, units = features, width
    for _ in range(depth):
        arch.layers.append(relu_dense(previous, units))
        previous, units = units, max(4, units // 2)
    arch.layers.append(softmax_output(previous, classes))
    return arch


def _head(arch: Architecture, flat: int, classes: int, dense: int, dropout: bool = True) -> None:
    if dense:
        arch.layers.append(relu_dense(flat, dense))
        flat = dense
    if dropout:
        arch.layers.append(Layer("Dropout", "layers.Dropout(0.25)", (flat,)))
    arch.layers.append(softmax_output(flat, classes))


# -- the space of a project -------------------------------------------------------------------


def space_for(spec: ProjectSpec, project_dir: Path, num_classes: int) -> SearchSpace:
    """The search space for the project's task and data (`spec.input_shape` already fits the
    data: a CSV's feature count is settled by the caller)."""
    shape = tuple(spec.input_shape)
    if spec.task is Task.ANOMALY_DETECTION:
        return SearchSpace(
            spec.task,
            "autoencoder",
            shape,
            num_classes,
            [Dimension("width", AUTOENCODER_WIDTHS)],
        )
    if len(shape) == 1:
        return SearchSpace(
            spec.task,
            "mlp",
            shape,
            num_classes,
            [Dimension("width", MLP_WIDTHS), Dimension("depth", (1, 2, 3))],
        )
    if len(shape) == 2:
        return SearchSpace(
            spec.task,
            "cnn1d",
            shape,
            num_classes,
            [
                Dimension("width", CONV1D_WIDTHS),
                Dimension("depth", tuple(range(1, _max_blocks(shape[0]) + 1))),
                Dimension("separable", (False, True)),
                Dimension("dense", DENSE_HEADS[:3]),
            ],
        )
    space = SearchSpace(spec.task, "cnn2d", shape, num_classes)
    resolutions: list[tuple[int, int]] = [(shape[0], shape[1])]
    channels: list[int] = [shape[2]]
    if spec.task is Task.IMAGE_CLASSIFICATION and spec.dataset.kind is DatasetKind.FOLDER:
        resolutions, channels, notes = image_choices(spec, project_dir)
        space.notes += notes
    if len(resolutions) > 1:
        space.dimensions.append(Dimension("resolution", tuple(resolutions)))
    if len(channels) > 1:
        space.dimensions.append(Dimension("channels", tuple(channels)))
    largest = max(min(r) for r in resolutions)
    space.dimensions += [
        Dimension("width", CONV_WIDTHS),
        Dimension("depth", tuple(range(1, _max_blocks(largest) + 1))),
        Dimension("separable", (False, True)),
    ]
    if largest >= 32:
        space.dimensions.append(Dimension("stem_stride", (1, 2)))
    space.dimensions.append(Dimension("dense", DENSE_HEADS))
    return space


def _max_blocks(size: int) -> int:
    """Conv blocks until 2×2 pooling brings the map to one pixel, at most four."""
    blocks = 0
    while size >= 2 and blocks < 4:
        size //= 2
        blocks += 1
    return max(blocks, 1)


def image_choices(
    spec: ProjectSpec, project_dir: Path
) -> tuple[list[tuple[int, int]], list[int], list[str]]:
    """Resolutions and channel counts an image folder allows: never above the smallest image
    (upscaling adds RAM, not information), colour only when some images have it."""
    from PIL import Image, UnidentifiedImageError

    h, w, c = spec.input_shape
    root = datasets.resolve_path(spec, project_dir)
    smallest: tuple[int, int] | None = None
    colour = False
    seen = 0
    if root is not None and root.is_dir():
        for path in sorted(root.rglob("*")):
            if path.suffix.lower() not in datasets.IMAGE_SUFFIXES:
                continue
            try:
                with Image.open(path) as img:  # reads the header only
                    size = (img.height, img.width)
                    colour = colour or img.mode not in ("L", "1", "I", "I;16", "F", "LA")
            except (OSError, UnidentifiedImageError):
                continue
            smallest = (
                size if smallest is None else (min(smallest[0], size[0]), min(smallest[1], size[1]))
            )
            seen += 1
            if seen >= IMAGES_PROBED:
                break
    notes: list[str] = []
    resolutions: list[tuple[int, int]] = []
    for scale in RESOLUTION_SCALES:
        rh, rw = max(1, round(h * scale)), max(1, round(w * scale))
        if min(rh, rw) < MIN_RESOLUTION and scale != 1.0:
            continue
        if scale > 1.0 and (smallest is None or rh > smallest[0] or rw > smallest[1]):
            continue
        if (rh, rw) not in resolutions:
            resolutions.append((rh, rw))
    resolutions.sort()
    channels = sorted({c, 1, 3} if colour else {c, 1})
    if smallest is not None:
        notes.append(
            f"images: smallest {smallest[0]}×{smallest[1]}, "
            + ("colour" if colour else "grayscale")
            + f" (from {seen} files)"
        )
    return resolutions, channels, notes
