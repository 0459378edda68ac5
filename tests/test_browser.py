"""Real-browser tests of the drawing page, against the real server.

Headless Chromium from Debian (/usr/bin/chromium) driven by the Playwright
Python package (sync API). The browser is never downloaded: no
``playwright install``. The server comes from the session-scoped
``live_server`` fixture (tests/conftest.py), which yields the base URL
(``http://127.0.0.1:PORT/``) of a running ``cnn-mnist`` serving a small
model trained on the bundled data.

Screenshots land in ``test-output/browser-<name>.png`` (gitignored).
"""

from __future__ import annotations

import base64
import io
import json
import os

import numpy as np
import pytest
from PIL import Image

from cnn_mnist.core.preprocessing import mnist_like

sync_api = pytest.importorskip("playwright.sync_api", reason="the playwright package is not installed")

from browser import (  # noqa: E402  (after the importorskip)
    ANSWER_TIMEOUT_MS,
    CHROMIUM,
    CHROMIUM_ARGS,
    DESKTOP,
    PHONE,
    canvas_box,
    assert_answer,
    canvas_png,
    assert_cleared,
    canvas_ink,
    draw_with_mouse,
    draw_with_touch,
    screenshot,
    wait_for_answer,
)


@pytest.fixture(scope="module")
def chromium_browser():
    if not os.path.exists(CHROMIUM):
        pytest.skip(f"{CHROMIUM} is missing: install the Debian packages chromium and chromium-driver (make does)")
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        try:
            yield b
        finally:
            b.close()


@pytest.fixture
def server_url(live_server) -> str:
    """The live server's base URL, always with a trailing slash."""
    return str(live_server).rstrip("/") + "/"


@pytest.fixture
def desktop_page(chromium_browser, server_url):
    context = chromium_browser.new_context(viewport=DESKTOP)
    pg = context.new_page()
    errors: list[str] = []
    pg.on("pageerror", lambda exc: errors.append(f"page error: {exc}"))
    pg.on("console", lambda msg: errors.append(f"console: {msg.text}") if msg.type == "error" else None)
    pg.console_errors = errors  # a test that provokes an error may empty it
    pg.goto(server_url)
    pg.wait_for_load_state("load")
    yield pg
    context.close()
    assert not errors, errors


# --------------------------------------------------------------------------
# Tests
# --------------------------------------------------------------------------

def test_page_structure(desktop_page):
    page = desktop_page
    assert page.title().startswith("cnn-mnist")
    assert page.locator("h1").inner_text().strip() == "cnn-mnist"
    canvas = page.locator("#canvas")
    assert canvas.get_attribute("role") == "img"
    assert canvas.get_attribute("aria-label")
    assert page.eval_on_selector("#canvas", "c => [c.width, c.height]") == [280, 280]
    assert page.locator("[aria-live=polite] #prediction").count() == 1
    assert page.locator("#clear").inner_text().strip() == "Clear"
    assert_cleared(page)


@pytest.mark.parametrize("digit", [1, 7, 0])
def test_draw_digit(desktop_page, digit):
    page = desktop_page
    # Draw another digit first and clear it, so the clear is tested between drawings.
    other = {1: 7, 7: 0, 0: 1}[digit]
    draw_with_mouse(page, other)
    wait_for_answer(page)
    assert page.locator("#prediction").inner_text().strip() != ""
    page.click("#clear")
    assert_cleared(page)

    draw_with_mouse(page, digit)
    assert canvas_ink(page) > 0
    assert_answer(page, digit)
    model = page.locator("#model").inner_text().strip()
    assert model and model != "–", "the footer shows no model name/version"
    screenshot(page, str(digit))

    page.click("#clear")
    assert_cleared(page)


def test_phone_viewport_touch(chromium_browser, server_url):
    context = chromium_browser.new_context(viewport=PHONE, has_touch=True, is_mobile=True, device_scale_factor=2)
    try:
        page = context.new_page()
        page.goto(server_url)
        page.wait_for_load_state("load")
        box = canvas_box(page)
        assert box["x"] >= 0 and box["x"] + box["width"] <= PHONE["width"], box
        assert box["width"] >= 0.75 * PHONE["width"], f"the canvas does not scale to the width: {box}"
        assert abs(box["width"] - box["height"]) < 2, box
        assert page.evaluate("() => document.documentElement.scrollWidth") <= PHONE["width"]
        assert page.eval_on_selector("#canvas", "c => getComputedStyle(c).touchAction") == "none"
        clear = page.locator("#clear").bounding_box()
        assert clear["height"] >= 44 and clear["width"] >= 44, f"the Clear button is a small touch target: {clear}"

        draw_with_touch(page, 7)
        assert canvas_ink(page) > 0, "touch input drew nothing"
        assert_answer(page, 7)
        screenshot(page, "phone-7")

        page.tap("#clear")
        assert_cleared(page)

        draw_with_mouse(page, 1)
        assert_answer(page, 1)
    finally:
        context.close()


def test_no_requests_to_other_hosts(chromium_browser, server_url):
    context = chromium_browser.new_context(viewport=DESKTOP)
    try:
        page = context.new_page()
        urls: list[str] = []
        failed: list[str] = []
        page.on("request", lambda r: urls.append(r.url))
        page.on("requestfailed", lambda r: failed.append(f"{r.url} {r.failure}"))
        page.goto(server_url)
        page.wait_for_load_state("networkidle")
        draw_with_mouse(page, 1)
        wait_for_answer(page)
        page.wait_for_load_state("networkidle")

        network = [u for u in urls if not u.startswith(("data:", "blob:"))]  # never leave the browser
        foreign = [u for u in network if not u.startswith(server_url)]
        assert not foreign, f"requests to other hosts: {foreign}"
        assert not failed, failed
        paths = {u[len(server_url):].split("?")[0] for u in network}
        assert {"", "static/app.js", "static/style.css", "predict"} <= paths, paths
    finally:
        context.close()


def test_server_error_is_shown(desktop_page):
    page = desktop_page
    # The page is the real one; only the answer to /predict is replaced,
    # to see that a JSON error from the server reaches the status line.
    page.route(
        "**/predict",
        lambda route: route.fulfill(
            status=400, content_type="application/json", body='{"error": "image is not a PNG"}'
        ),
    )
    draw_with_mouse(page, 1)
    status = page.locator("#status")
    sync_api.expect(status).to_have_text("image is not a PNG", timeout=ANSWER_TIMEOUT_MS)
    assert status.is_visible()
    assert page.locator("#prediction").inner_text().strip() == ""
    # Chromium logs "Failed to load resource: ... status of 400": expected here.
    page.console_errors[:] = [e for e in page.console_errors if "status of 400" not in e]
    page.unroute("**/predict")
    page.click("#clear")
    assert_cleared(page)


def test_the_image_the_model_saw_is_shown(desktop_page):
    page = desktop_page
    assert page.locator("#seen").is_hidden()  # nothing before a drawing
    draw_with_mouse(page, 7)
    assert_answer(page, 7)
    image = page.locator("#input")
    sync_api.expect(image).to_be_visible()
    assert "model saw" in image.get_attribute("alt")
    assert page.eval_on_selector("#input", "i => [i.naturalWidth, i.naturalHeight]") == [28, 28]
    assert page.eval_on_selector("#input", "i => getComputedStyle(i).imageRendering") == "pixelated"
    assert image.bounding_box()["width"] >= 3 * 28, "the 28x28 image is not scaled up"
    screenshot(page, "model-input-7")

    source = image.get_attribute("src")
    assert source.startswith("data:image/png;base64,")
    shown = np.asarray(Image.open(io.BytesIO(base64.b64decode(source.split(",", 1)[1]))))
    np.testing.assert_array_equal(shown, mnist_like(Image.open(io.BytesIO(canvas_png(page)))))

    page.click("#clear")
    assert page.locator("#seen").is_hidden()
    assert_cleared(page)


def test_footer_shows_the_serving_models_version(desktop_page, server_url):
    ready = desktop_page.request.get(server_url + "readyz").json()
    sync_api.expect(desktop_page.locator("#model")).to_contain_text(ready["model"]["version"])


@pytest.mark.parametrize("model, footer", [
    ({"name": "cnn-mnist", "version": "42", "sha256": "ab" * 32, "canary_accuracy": 0.987},
     "cnn-mnist 42 · sha256 abababababab · canary accuracy 98.7%"),
    ({"name": "cnn-mnist", "version": "42", "sha256": "ab" * 32}, "cnn-mnist 42 · sha256 abababababab"),
])
def test_footer_shows_the_canary_accuracy_when_the_server_has_one(chromium_browser, server_url, model, footer):
    context = chromium_browser.new_context(viewport=DESKTOP)
    try:
        page = context.new_page()
        body = json.dumps({"status": "ready", "model": model})
        page.route("**/readyz", lambda route: route.fulfill(status=200, content_type="application/json", body=body))
        page.goto(server_url)
        footer_line = page.locator("footer p")
        sync_api.expect(footer_line).to_have_text(f"Model: {footer}", timeout=ANSWER_TIMEOUT_MS)
    finally:
        context.close()
