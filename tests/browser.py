"""Drawing digits in the page and reading its answer, for tests/test_browser.py (Playwright, sync API)."""

from __future__ import annotations

import base64
import math
import os
from pathlib import Path

import pytest

CHROMIUM = os.environ.get("CNN_MNIST_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
OUTPUT_DIR = Path(__file__).resolve().parent.parent / "test-output"
DESKTOP = {"width": 1024, "height": 768}
PHONE = {"width": 390, "height": 844}
ANSWER_TIMEOUT_MS = 20_000


# --------------------------------------------------------------------------
# Digits as strokes, in canvas-relative coordinates (0..1 of the canvas box).
# Each digit spans ~60 % of the canvas height, with handwriting proportions.
# --------------------------------------------------------------------------

def _ellipse(cx: float, cy: float, rx: float, ry: float, n: int = 30) -> list[tuple[float, float]]:
    # Start near the top and go round counter-clockwise, closing the loop
    # with a small overlap, as a "0" is usually written.
    start = -math.pi / 2 - 0.3
    return [
        (cx + rx * math.cos(start - 2 * math.pi * i / n), cy + ry * math.sin(start - 2 * math.pi * i / n))
        for i in range(n + 2)
    ]


DIGITS: dict[int, list[list[tuple[float, float]]]] = {
    # One slightly slanted vertical stroke.
    1: [[(0.52, 0.20), (0.51, 0.40), (0.50, 0.60), (0.49, 0.80)]],
    # Horizontal top bar, then a diagonal down to the left (a second stroke).
    7: [
        [(0.31, 0.22), (0.50, 0.22), (0.68, 0.22)],
        [(0.68, 0.22), (0.60, 0.41), (0.52, 0.61), (0.45, 0.80)],
    ],
    # An ellipse of ~30 points.
    0: [_ellipse(0.5, 0.5, 0.19, 0.30)],
}


def _densify(points: list[tuple[float, float]], step: float = 0.025) -> list[tuple[float, float]]:
    """Points every ~`step` along the polyline, so moves look like a hand."""
    out = [points[0]]
    for (x0, y0), (x1, y1) in zip(points, points[1:]):
        n = max(1, math.ceil(math.hypot(x1 - x0, y1 - y0) / step))
        out.extend((x0 + (x1 - x0) * k / n, y0 + (y1 - y0) * k / n) for k in range(1, n + 1))
    return out


def canvas_box(page) -> dict:
    box = page.locator("#canvas").bounding_box()
    assert box is not None, "the canvas is not visible"
    return box


def draw_with_mouse(page, digit: int) -> None:
    box = canvas_box(page)

    def at(p):
        return box["x"] + p[0] * box["width"], box["y"] + p[1] * box["height"]

    for stroke in DIGITS[digit]:
        points = _densify(stroke)
        page.mouse.move(*at(points[0]))
        page.mouse.down()
        for i, p in enumerate(points[1:], 1):
            page.mouse.move(*at(p), steps=2)
            if i % 4 == 0:
                page.wait_for_timeout(15)  # a human pace: exercises the throttling
        page.mouse.up()
        page.wait_for_timeout(40)  # pen lifted between strokes


def draw_with_touch(page, digit: int) -> None:
    """Real touch input (Chromium DevTools protocol): touchstart/move/end."""
    box = canvas_box(page)
    cdp = page.context.new_cdp_session(page)

    def touch(kind: str, p=None):
        points = []
        if p is not None:
            points = [{"x": box["x"] + p[0] * box["width"], "y": box["y"] + p[1] * box["height"], "id": 1}]
        cdp.send("Input.dispatchTouchEvent", {"type": kind, "touchPoints": points})

    try:
        for stroke in DIGITS[digit]:
            points = _densify(stroke)
            touch("touchStart", points[0])
            for i, p in enumerate(points[1:], 1):
                touch("touchMove", p)
                if i % 4 == 0:
                    page.wait_for_timeout(15)
            touch("touchEnd")
            page.wait_for_timeout(40)
    finally:
        cdp.detach()


def wait_for_answer(page) -> str:
    """Wait until the page shows the answer for the finished drawing.

    The page marks its result region aria-busy while a request is in flight,
    queued or throttled, so an answer for a half-drawn digit is not taken.
    """
    page.wait_for_function(
        """() => {
            const r = document.getElementById('result');
            const d = document.getElementById('prediction').textContent.trim();
            return d !== '' && r.getAttribute('aria-busy') !== 'true';
        }""",
        timeout=ANSWER_TIMEOUT_MS,
    )
    return page.locator("#prediction").inner_text().strip()


def read_bars(page) -> list[tuple[int, float, str]]:
    return page.eval_on_selector_all(
        "#probabilities [data-digit]",
        "els => els.map(e => [Number(e.dataset.digit), Number(e.dataset.probability), e.textContent.trim()])",
    )


def canvas_ink(page) -> int:
    """Number of non-transparent pixels on the canvas."""
    return page.evaluate(
        """() => {
            const c = document.getElementById('canvas');
            const a = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
            let n = 0;
            for (let i = 3; i < a.length; i += 4) if (a[i] !== 0) n++;
            return n;
        }"""
    )


def canvas_png(page) -> bytes:
    """The drawing as the page sends it to the server (a transparent PNG)."""
    url = page.evaluate("() => document.getElementById('canvas').toDataURL('image/png')")
    return base64.b64decode(url.split(",", 1)[1])


def assert_cleared(page) -> None:
    assert page.locator("#prediction").inner_text().strip() == ""
    bars = read_bars(page)
    assert [d for d, _, _ in bars] == list(range(10))
    assert all(p == 0 for _, p, _ in bars), bars
    assert canvas_ink(page) == 0
    assert page.locator("#status").inner_text().strip() == ""


def assert_answer(page, digit: int) -> None:
    shown = wait_for_answer(page)
    bars = read_bars(page)
    probs = [p for _, p, _ in bars]
    status = page.locator("#status").inner_text().strip()
    assert status == "", f"the page shows an error: {status!r}"
    assert [d for d, _, _ in bars] == list(range(10)), "expected ten bars labelled 0-9 in order"
    assert all(0.0 <= p <= 1.0 for p in probs), probs
    assert sum(probs) == pytest.approx(1.0, abs=1e-3)
    for d, _, text in bars:
        assert text.startswith(str(d)) and "%" in text, f"bar {d} has no text value: {text!r}"
    assert shown == str(digit), f"drew a {digit}, the page predicted {shown}; probabilities {probs}"
    assert max(range(10), key=probs.__getitem__) == digit, f"the largest bar is not {digit}: {probs}"


def screenshot(page, name: str) -> None:
    OUTPUT_DIR.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(OUTPUT_DIR / f"browser-{name}.png"), full_page=True)


# --------------------------------------------------------------------------
# Fixtures
# --------------------------------------------------------------------------
