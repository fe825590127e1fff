"""Choose a model architecture sized for the board *before* training.

The budget is an input: candidates from a small family per input kind are sized with a quick
int8 estimate (activations for the arena, weights for flash) and the largest one that leaves
room for the runtime and the application is kept. The exact figures come later from the
converted model measured in TFLM; this only has to pick a sensible starting point.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, field

from tinyforge.spec import ProjectSpec, Task

# Fractions of the effective budget the model may take: the rest is the TFLM runtime, the
# framework (Arduino core, RTOS) and the user's application.
ARENA_SHARE = 0.6
FLASH_SHARE = 0.6


@dataclass(frozen=True)
class Layer:
    """One Keras layer: `code` is the constructor as it appears in train.py."""

    kind: str
    code: str
    out_shape: tuple[int, ...]
    params: int = 0


@dataclass
class Architecture:
    family: str
    layers: list[Layer] = field(default_factory=list)
    width: int = 0
    notes: list[str] = field(default_factory=list)

    @property
    def params(self) -> int:
        return sum(layer.params for layer in self.layers)

    def arena_estimate(self, input_shape: tuple[int, ...]) -> int:
        """Peak of input+output activation bytes over consecutive int8 layers, plus overhead."""
        sizes = [math.prod(input_shape)] + [math.prod(layer.out_shape) for layer in self.layers]
        peak = max(a + b for a, b in itertools.pairwise(sizes))
        return int(peak * 1.1) + 2048

    def flash_estimate(self) -> int:
        # int8 weights plus int32 biases roughly: 1 byte a parameter with flatbuffer overhead.
        return int(self.params * 1.15) + 4096


def _conv_out(size: int, stride: int) -> int:
    return math.ceil(size / stride)


def relu_dense(inputs: int, units: int) -> Layer:
    """A hidden Dense layer of `units`, ReLU, after `inputs` values."""
    code = f'layers.Dense({units}, activation="relu")'
    return Layer("Dense", code, (units,), params=inputs * units + units)


def softmax_output(inputs: int, classes: int) -> Layer:
    """The classifier's last layer: a unit per class (the template's num_classes), softmax."""
    code = 'layers.Dense(num_classes, activation="softmax")'
    return Layer("Dense", code, (classes,), params=inputs * classes + classes)


def pool2d(arch: Architecture, ch: int, cw: int, channels: int) -> tuple[int, int]:
    """A 2x2 max pooling after a convolution block, while the maps are still 2x2 or more; the
    maps' size after it."""
    if min(ch, cw) < 2:
        return ch, cw
    ch, cw = ch // 2, cw // 2
    arch.layers.append(Layer("MaxPooling2D", "layers.MaxPooling2D(2)", (ch, cw, channels)))
    return ch, cw


def to_vector(arch: Architecture, ch: int, cw: int, channels: int) -> int:
    """Feature maps → the classifier's vector: averaged per channel when more than 16 positions
    are left (a Flatten would make the Dense layer the model's largest), else flattened; its
    length."""
    if ch * cw > 16:
        arch.layers.append(
            Layer("GlobalAveragePooling2D", "layers.GlobalAveragePooling2D()", (channels,))
        )
        return channels
    arch.layers.append(Layer("Flatten", "layers.Flatten()", (ch * cw * channels,)))
    return ch * cw * channels


def _image_candidate(
    shape: tuple[int, ...], classes: int, width: int, stem_stride: int
) -> Architecture:
    h, w, c = shape
    arch = Architecture(family="cnn2d", width=width)
    # Enough blocks to bring the feature map down to a few pixels, no more than four.
    depth = max(1, min(4, int(math.log2(max(2, min(h, w) // stem_stride) / 2))))
    filters, in_ch = width, c
    ch, cw = h, w
    for block in range(depth):
        stride = stem_stride if block == 0 else 1
        ch, cw = _conv_out(ch, stride), _conv_out(cw, stride)
        arch.layers.append(
            Layer(
                "Conv2D",
                f'layers.Conv2D({filters}, 3, strides={stride}, padding="same", activation="relu")',
                (ch, cw, filters),
                params=9 * in_ch * filters + filters,
            )
        )
        ch, cw = pool2d(arch, ch, cw, filters)
        in_ch = filters
        filters = min(filters * 2, 128)
    flat = to_vector(arch, ch, cw, in_ch)
    arch.layers.append(Layer("Dropout", "layers.Dropout(0.25)", (flat,)))
    arch.layers.append(softmax_output(flat, classes))
    if stem_stride > 1:
        arch.notes.append(f"first convolution uses stride {stem_stride} to save RAM")
    return arch


def _dense_candidate(features: int, classes: int, width: int) -> Architecture:
    arch = Architecture(family="mlp", width=width)
    arch.layers.append(Layer("Normalization", "normalizer", (features,), params=2 * features))
    arch.layers.append(relu_dense(features, width))
    half = max(4, width // 2)
    arch.layers.append(relu_dense(width, half))
    arch.layers.append(softmax_output(half, classes))
    return arch


def autoencoder_candidate(features: int, width: int) -> Architecture:
    """Encoder/decoder hidden layers; the template adds the output and the scoring ops."""
    arch = Architecture(family="autoencoder", width=width)
    bottleneck = max(2, width // 4)
    sizes = [width, bottleneck, width]
    previous = features
    for units in sizes:
        arch.layers.append(relu_dense(previous, units))
        previous = units
    # Reconstruction, error, square and mean: counted for sizing, written by the template.
    arch.layers.append(Layer("Reconstruction", "", (features,), previous * features + features))
    arch.layers.append(Layer("Score", "", (features,), features))
    return arch


def _conv1d_candidate(steps: int, channels: int, classes: int, width: int) -> Architecture:
    arch = Architecture(family="cnn1d", width=width)
    arch.layers.append(Layer("Normalization", "normalizer", (steps, channels), params=2 * channels))
    arch.layers.append(
        Layer(
            "Conv1D",
            f'layers.Conv1D({width}, 5, padding="same", activation="relu")',
            (steps, width),
            5 * channels * width + width,
        )
    )
    steps //= 2
    arch.layers.append(Layer("MaxPooling1D", "layers.MaxPooling1D(2)", (steps, width)))
    arch.layers.append(
        Layer(
            "Conv1D",
            f'layers.Conv1D({2 * width}, 5, padding="same", activation="relu")',
            (steps, 2 * width),
            5 * width * 2 * width + 2 * width,
        )
    )
    arch.layers.append(
        Layer("GlobalAveragePooling1D", "layers.GlobalAveragePooling1D()", (2 * width,))
    )
    arch.layers.append(
        Layer(
            "Dense",
            'layers.Dense(num_classes, activation="softmax")',
            (classes,),
            2 * width * classes + classes,
        )
    )
    return arch


def choose_architecture(
    spec: ProjectSpec, num_classes: int, ram_for_model: int, flash_for_model: int
) -> Architecture:
    """The largest candidate (up to a preferred width) whose estimate fits the given bytes."""
    shape = tuple(spec.input_shape)
    candidates: list[Architecture]
    if spec.task is Task.ANOMALY_DETECTION:
        features = math.prod(shape)
        candidates = [autoencoder_candidate(features, w) for w in (64, 32, 16, 8)]
    elif len(shape) == 3 and spec.task is Task.KEYWORD_SPOTTING:
        widths: list[int] = [32, 24, 16, 12, 8, 6, 4]
        candidates = [_image_candidate(shape, num_classes, w, 1) for w in widths]
        candidates += [_image_candidate(shape, num_classes, w, 2) for w in widths]
        for arch in candidates:
            # Log-mel energies are far from 0..1: standardise them inside the model.
            arch.layers.insert(0, Layer("Normalization", "normalizer", shape, params=2))
    elif len(shape) == 3:
        preferred = 16 if shape[0] * shape[1] <= 32 * 32 else 8
        widths = [w for w in (32, 24, 16, 12, 8, 6, 4) if w <= max(preferred, 4)]
        candidates = [_image_candidate(shape, num_classes, w, 1) for w in widths]
        candidates += [_image_candidate(shape, num_classes, w, 2) for w in widths]
        candidates += [_image_candidate(shape, num_classes, w, 4) for w in widths if w <= 8]
    elif len(shape) == 2:
        candidates = [_conv1d_candidate(shape[0], shape[1], num_classes, w) for w in (32, 16, 8, 4)]
    else:
        candidates = [_dense_candidate(shape[0], num_classes, w) for w in (32, 16, 8)]
    for arch in candidates:
        if arch.arena_estimate(shape) <= ram_for_model and arch.flash_estimate() <= flash_for_model:
            return arch
    smallest = candidates[-1]
    smallest.notes.append(
        "even the smallest candidate model is estimated over the budget; "
        "the build report will show the exact figures"
    )
    return smallest
