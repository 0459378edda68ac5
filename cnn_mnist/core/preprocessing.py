"""Turning pixels into the network's input: the one path shared by training and serving.

`to_model_input` is the only conversion from pixels to what the net sees; the trainer calls it on the
dataset and the server on every request. `mnist_like` first brings an arbitrary image (a drawing, a
photo of a digit) into the form MNIST's authors gave their digits, so that serving sees what training saw.
"""

import base64
import io

import numpy as np
from PIL import Image

from .errors import ImageError

SIDE = 28  # MNIST images are 28x28 ...
BOX = 20  # ... with the digit scaled into a 20x20 box ...
# ... and shifted by whole pixels so that its centre of mass, in 0-based pixel indices, rounds to 14:
# MNIST's authors took the field's centre as 28 / 2, not the middle pixel's index (28 - 1) / 2 = 13.5.
# The test set's centres of mass lie in [13.5, 14.5], mean 14.0, std 0.29 (uniform: whole-pixel shifts).
CENTRE = SIDE / 2
INK_THRESHOLD = 0.1  # fraction of the brightest ink below which a pixel counts as background


def to_model_input(images) -> np.ndarray:
    """Pixels (N, 28, 28) or (N, 28, 28, 1), uint8 0-255 or floats 0-1 → float32 (N, 28, 28, 1) in 0-1."""
    array = np.asarray(images)
    if array.ndim == 3:
        array = array[..., np.newaxis]
    if array.ndim != 4 or array.shape[1:] != (SIDE, SIDE, 1):
        raise ValueError(f"expected images of shape (N, 28, 28[, 1]), got {array.shape}")
    if array.dtype == np.uint8:
        return array.astype(np.float32) / np.float32(255)
    return array.astype(np.float32, copy=False)


def png_data_url(model_input: np.ndarray) -> str:
    """One image of `to_model_input`'s output as the 8-bit grayscale PNG a person can look at (ink bright).

    Exact for whatever came in as bytes (uploads, drawings, 0-255 pixels); 0-1 floats round to 1/255.
    """
    pixels = (np.asarray(model_input, np.float32).reshape(SIDE, SIDE) * 255).round().clip(0, 255)
    buffer = io.BytesIO()
    Image.fromarray(pixels.astype(np.uint8), "L").save(buffer, "PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def mnist_like(image: Image.Image) -> np.ndarray:
    """Normalise any image of one digit the way MNIST was made; returns (28, 28) uint8, ink bright.

    Grayscale (ink from alpha when the image is transparent), inverted when the background is light,
    cropped to the ink's bounding box, the longer side scaled to 20 px keeping the aspect ratio, then
    placed in 28x28 with the centre of mass where MNIST has it (`CENTRE`). An image without ink raises ImageError.
    """
    ink = _ink(image)
    if ink.max() == 0:
        raise ImageError("the image holds no ink: draw or upload a digit")
    threshold = INK_THRESHOLD * ink.max()
    rows = np.flatnonzero(ink.max(axis=1) > threshold)
    cols = np.flatnonzero(ink.max(axis=0) > threshold)
    ink = ink[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1]

    height, width = ink.shape
    scale = BOX / max(height, width)
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    # Area averaging, as MNIST's anti-aliasing of its bilevel NIST scans: Lanczos' ringing leaves a halo
    # of faint pixels (a fifth more inked pixels than MNIST's digits have) and overshoots.
    digit = np.asarray(Image.fromarray(ink).resize(size, Image.Resampling.BOX), dtype=np.float32)
    # Faint pencil and full black alike, and a stroke too thin to cover a whole pixel, become MNIST's
    # full-strength ink: its digits (nearly) all reach 255.
    digit = digit * (255 / digit.max())

    ys, xs = np.indices(digit.shape)
    top = round(CENTRE - (ys * digit).sum() / digit.sum())
    left = round(CENTRE - (xs * digit).sum() / digit.sum())
    return _paste(digit, top, left).round().astype(np.uint8)


def _ink(image: Image.Image) -> np.ndarray:
    """The image as a float32 array where ink is high and background is 0, on a 0-255 scale."""
    if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
        alpha = np.asarray(image.convert("RGBA").getchannel("A"), dtype=np.float32)
        if alpha.min() < 255:
            return alpha
    gray = np.asarray(image.convert("L"), dtype=np.float32)
    border = np.concatenate([gray[0], gray[-1], gray[:, 0], gray[:, -1]])
    if np.median(border) > 127:  # a light background: dark ink on paper
        gray, border = 255 - gray, 255 - border
    return np.clip(gray - np.median(border), 0, None)  # a grey background (a photo) is not ink


def _paste(digit, top, left):
    """Place `digit` at (top, left) on a black 28x28 square, clipping whatever falls outside."""
    canvas = np.zeros((SIDE, SIDE), dtype=np.float32)
    height, width = digit.shape
    y0, x0 = max(top, 0), max(left, 0)
    y1, x1 = min(top + height, SIDE), min(left + width, SIDE)
    canvas[y0:y1, x0:x1] = digit[y0 - top : y1 - top, x0 - left : x1 - left]
    return canvas
