"""MNIST test digits re-rendered the way a browser canvas exports a drawing, for preprocessing tests.

A drawing on the page is not an MNIST digit: it is large, hard-edged with a pixel of anti-aliasing,
drawn with whatever pen width the user's hand gives, anywhere on the canvas, and exported either with
the ink in the alpha channel (a transparent canvas) or as dark ink on white. `canvas_drawing` turns a
28x28 digit into such an image, seeded, so that `mnist_like` can be checked against the dataset itself.
"""

import numpy as np
from PIL import Image, ImageFilter

PEN_LEVELS = (0.2, 0.6)  # where the outline lies, as a share of the darkest ink: 0.2 a thick pen, 0.6 a thin one
INK_COLOURS = [(0, 0, 0), (20, 20, 20), (25, 35, 90)]  # black, a soft black, a dark blue pen


def canvas_drawing(digit: np.ndarray, rng: np.random.Generator, pen_levels=PEN_LEVELS) -> Image.Image:
    """One 28x28 uint8 digit (ink bright) → an RGBA or RGB canvas export of the same digit."""
    scale = rng.uniform(7, 14)  # the 20 px digit becomes 140-280 px tall
    side = round(28 * scale)
    upscaled = Image.fromarray(digit).resize((side, side), Image.Resampling.BICUBIC)
    # A pen thinner or thicker than the digit's own: the outline of the blurred digit at a lower level
    # lies further out, at a higher one further in.
    outline = np.asarray(upscaled.filter(ImageFilter.GaussianBlur(0.4 * scale)))
    stroke = Image.fromarray(np.where(outline > rng.uniform(*pen_levels) * outline.max(), 255, 0).astype(np.uint8))
    ink = stroke.filter(ImageFilter.GaussianBlur(0.6))  # the canvas' anti-aliased edge

    width, height = side + rng.integers(40, 400), side + rng.integers(40, 300)
    left, top = rng.integers(0, width - side + 1), rng.integers(0, height - side + 1)
    alpha = np.zeros((height, width), np.float32)
    alpha[top : top + side, left : left + side] = np.asarray(ink, np.float32) / 255
    colour = np.array(INK_COLOURS[rng.integers(len(INK_COLOURS))], np.float32)
    if rng.random() < 0.5:  # a transparent canvas: the colour everywhere, the ink in alpha
        rgba = np.dstack([np.broadcast_to(colour, (height, width, 3)), alpha * 255])
        return Image.fromarray(rgba.round().astype(np.uint8), "RGBA")
    rgb = 255 + alpha[..., np.newaxis] * (colour - 255)  # dark ink composited onto white
    return Image.fromarray(rgb.round().astype(np.uint8), "RGB")
