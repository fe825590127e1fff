"""Draws the extension's icon, client/media/icon.png: a microcontroller chip, 128x128.

    .venv/bin/python client/media/make_icon.py

Drawn rather than kept as a binary of unknown origin, so it can be changed here and redrawn
(Pillow, already a TinyForge dependency). The output is deterministic: the same bytes each run.
"""

from __future__ import annotations

import itertools
from pathlib import Path

from PIL import Image, ImageDraw

SIZE = 128
# Drawn at 4x and scaled down, for smooth edges without anti-aliasing support in ImageDraw.
SCALE = 4
BACKGROUND = (23, 37, 56, 255)  # dark slate, reads on light and dark Marketplace themes
PIN = (176, 190, 205, 255)
BODY = (44, 62, 84, 255)
EDGE = (98, 196, 160, 255)  # the "fits" green of the status bar's figures
TRACE = (98, 196, 160, 255)


def draw() -> Image.Image:
    s = SIZE * SCALE
    image = Image.new("RGBA", (s, s), (0, 0, 0, 0))
    pen = ImageDraw.Draw(image)
    pen.rounded_rectangle((0, 0, s - 1, s - 1), radius=24 * SCALE, fill=BACKGROUND)

    body = (34 * SCALE, 34 * SCALE, 94 * SCALE, 94 * SCALE)
    # Four pins a side, 10 px long, evenly spaced along the body.
    pin_w, pin_l = 6 * SCALE, 10 * SCALE
    for i in range(4):
        centre = body[0] + (9 + i * 14) * SCALE
        half = pin_w // 2
        pen.rectangle((centre - half, body[1] - pin_l, centre + half, body[1]), fill=PIN)
        pen.rectangle((centre - half, body[3], centre + half, body[3] + pin_l), fill=PIN)
        pen.rectangle((body[0] - pin_l, centre - half, body[0], centre + half), fill=PIN)
        pen.rectangle((body[2], centre - half, body[2] + pin_l, centre + half), fill=PIN)
    pen.rounded_rectangle(body, radius=6 * SCALE, fill=BODY, outline=EDGE, width=3 * SCALE)

    # A tiny network inside: three inputs, two hidden units, one output.
    layers = [
        [(48, 50), (48, 64), (48, 78)],
        [(64, 57), (64, 71)],
        [(80, 64)],
    ]
    for left, right in itertools.pairwise(layers):
        for a in left:
            for b in right:
                pen.line(
                    (a[0] * SCALE, a[1] * SCALE, b[0] * SCALE, b[1] * SCALE),
                    fill=TRACE,
                    width=2 * SCALE,
                )
    for layer in layers:
        for x, y in layer:
            r = 4 * SCALE
            pen.ellipse((x * SCALE - r, y * SCALE - r, x * SCALE + r, y * SCALE + r), fill=EDGE)
    return image.resize((SIZE, SIZE), Image.Resampling.LANCZOS)


def main() -> None:
    out = Path(__file__).resolve().parent / "icon.png"
    draw().save(out, optimize=True)
    print(f"wrote {out} ({SIZE}x{SIZE})")


if __name__ == "__main__":
    main()
