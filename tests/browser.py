"""Drawing digits in the page and reading its answer, for tests/test_browser.py (Playwright, sync API)."""

from __future__ import annotations

import base64
import io
import math
import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

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
# axe-core, pinned by tests/axe/package-lock.json and installed with `npm ci --prefix tests/axe`.
AXE_JS = Path(os.environ.get("CNN_MNIST_AXE", Path(__file__).resolve().parent / "axe/node_modules/axe-core/axe.min.js"))
AXE_FAILING_IMPACTS = ("serious", "critical")
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
    for (x0, y0), (x1, y1) in zip(points, points[1:], strict=False):
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


# --------------------------------------------------------------------------
# The keyboard pen: key presses on the focused canvas. The pen starts in the
# centre and moves PEN_STEP canvas pixels (of 280) per arrow key press.
# --------------------------------------------------------------------------

PEN_STEP = 10
KEYBOARD_DIGITS: dict[int, list[str]] = {
    # Up to the top, pen down, straight down, pen up (lifting it predicts).
    1: ["ArrowUp"] * 7 + ["Space"] + ["ArrowDown"] * 14 + ["Space"],
    # The top bar left to right, then a staircase down to the left, then Enter (lifts the pen, predicts).
    7: ["ArrowUp"] * 6
    + ["ArrowLeft"] * 5
    + ["Space"]
    + ["ArrowRight"] * 10
    + ["ArrowDown", "ArrowDown", "ArrowLeft"] * 6
    + ["Enter"],
}


def focus_canvas_with_tab(page) -> None:
    """Tab from the top of the page until the canvas has the focus (it is the first control)."""
    page.evaluate("() => document.activeElement && document.activeElement.blur()")
    for _ in range(10):
        page.keyboard.press("Tab")
        if page.evaluate("() => document.activeElement.id") == "canvas":
            return
    raise AssertionError("Tab never reaches the canvas")


def draw_with_keyboard(page, digit: int) -> None:
    focus_canvas_with_tab(page)
    for key in KEYBOARD_DIGITS[digit]:
        page.keyboard.press(key)


# --------------------------------------------------------------------------
# Uploads: an MNIST digit as a scan would show it, dark ink on white, large.
# --------------------------------------------------------------------------


def scanned_png(digit: np.ndarray, scale: int = 10) -> bytes:
    """A 28x28 uint8 MNIST digit (ink bright) → PNG bytes of it dark on white, `scale` times as large."""
    side = digit.shape[0] * scale
    image = Image.fromarray(255 - digit).resize((side, side), Image.Resampling.BICUBIC)
    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    return buffer.getvalue()


def upload(page, name: str, data: bytes, mime: str = "image/png") -> None:
    page.set_input_files("#upload", files=[{"name": name, "mimeType": mime, "buffer": data}])


def thumbnail(page) -> np.ndarray:
    """The 28x28 image the page shows as what the model saw."""
    source = page.locator("#input").get_attribute("src")
    assert source and source.startswith("data:image/png;base64,"), source
    return np.asarray(Image.open(io.BytesIO(base64.b64decode(source.split(",", 1)[1]))))


def shown_error(page) -> dict:
    """The status line: its text and the HTTP status and kind the page marked it with."""
    return page.eval_on_selector(
        "#status",
        "s => ({text: s.textContent.trim(), status: s.dataset.status, kind: s.dataset.kind,"
        " error: s.classList.contains('error'), visible: s.offsetParent !== null})",
    )


# --------------------------------------------------------------------------
# axe-core
# --------------------------------------------------------------------------


def axe_violations(page, impacts=AXE_FAILING_IMPACTS) -> list[str]:
    """Run axe-core in the page; one line per violation of one of `impacts`, naming the elements."""
    if not AXE_JS.is_file():
        pytest.fail(f"{AXE_JS} is missing: install axe-core with `npm ci --prefix tests/axe` (make test does)")
    if not page.evaluate("() => typeof window.axe === 'object'"):
        page.add_script_tag(path=str(AXE_JS))
    result = page.evaluate("() => axe.run(document, {resultTypes: ['violations']})")
    return [
        f"{v['id']} ({v['impact']}): {v['help']} – {[n['target'] for n in v['nodes']]}"
        for v in result["violations"]
        if v["impact"] in impacts
    ]


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
    assert page.locator("#seen").is_hidden()
    assert page.eval_on_selector("#upload", "u => u.value") == ""
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
