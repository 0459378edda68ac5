"""Real-browser tests of the drawing page, against the real server.

Headless Chromium from Debian (/usr/bin/chromium) driven by the Playwright
Python package (sync API). The browser is never downloaded: no
``playwright install``. The server comes from the session-scoped
``live_server`` fixture (tests/conftest.py), which yields the base URL
(``http://127.0.0.1:PORT/``) of a running ``cnn-mnist`` serving a small
model trained on the bundled data.

Screenshots land in ``test-output/browser-<name>.png`` (gitignored).

The accessibility checks inject axe-core (``npm ci --prefix tests/axe``, pinned by
tests/axe/package-lock.json) into the page and fail on a serious or critical violation.
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
    PEN_STEP,
    PHONE,
    assert_answer,
    assert_cleared,
    axe_violations,
    canvas_box,
    canvas_ink,
    canvas_png,
    draw_with_keyboard,
    draw_with_mouse,
    draw_with_touch,
    focus_canvas_with_tab,
    scanned_png,
    screenshot,
    shown_error,
    thumbnail,
    upload,
    wait_for_answer,
)

# Official MNIST test digits (indices into x_test), uploaded as scans: a 2, a 5 and a 6 that are plainly
# written (the first 5, index 8, is not: the test model reads it at 60 %), so they must come back right.
UPLOADED_DIGITS = [1, 15, 11]


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
    # A keyboard-operable widget: focusable, named, described by the visible key help.
    assert canvas.get_attribute("role") == "application"
    assert canvas.get_attribute("tabindex") == "0"
    assert canvas.get_attribute("aria-label")
    described_by = canvas.get_attribute("aria-describedby").split()
    assert "keys-help" in described_by
    help_text = page.locator("#keys-help")
    sync_api.expect(help_text).to_be_visible()
    for key in ("Space", "Enter", "Esc", "Delete", "Shift", "←", "↑", "→", "↓"):
        assert key in help_text.inner_text(), f"the key help does not mention {key}"
    sync_api.expect(page.get_by_label("Or upload a photo or scan of one digit")).to_have_attribute("type", "file")
    assert page.locator("#predict").inner_text().strip() == "Predict"
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
        paths = {u[len(server_url) :].split("?")[0] for u in network}
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
    assert shown_error(page)["status"] == "400"
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


@pytest.mark.parametrize(
    "model, footer",
    [
        (
            {"name": "cnn-mnist", "version": "42", "sha256": "ab" * 32, "canary_accuracy": 0.987},
            "cnn-mnist 42 · sha256 abababababab · canary accuracy 98.7%",
        ),
        ({"name": "cnn-mnist", "version": "42", "sha256": "ab" * 32}, "cnn-mnist 42 · sha256 abababababab"),
    ],
)
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


# --------------------------------------------------------------------------
# Keyboard, uploads, errors by status, axe-core
# --------------------------------------------------------------------------


@pytest.mark.parametrize("digit", [1, 7])
def test_keyboard_drawing(desktop_page, digit):
    """A digit drawn with the arrow keys and Space (no mouse) is predicted; Delete and Esc clear it."""
    page = desktop_page
    focus_canvas_with_tab(page)
    assert page.evaluate("() => document.activeElement.matches(':focus-visible')")
    assert page.locator("#pen").is_visible(), "the keyboard pen is not shown on the focused canvas"
    page.keyboard.press("Space")
    sync_api.expect(page.locator("#pen-state")).to_contain_text("down")
    page.keyboard.press("ArrowRight")
    page.keyboard.press("Space")
    sync_api.expect(page.locator("#pen-state")).to_contain_text("up")
    assert canvas_ink(page) > 0
    wait_for_answer(page)
    page.keyboard.press("Delete")
    assert_cleared(page)

    draw_with_keyboard(page, digit)
    assert canvas_ink(page) > 0
    assert_answer(page, digit)
    assert page.evaluate("() => document.activeElement.id") == "canvas", "drawing moved the focus"
    screenshot(page, f"keyboard-{digit}")
    page.keyboard.press("Escape")
    assert_cleared(page)


def test_keyboard_pen_stays_on_the_canvas_and_keys_do_not_scroll(desktop_page):
    page = desktop_page
    page.set_viewport_size({"width": 1024, "height": 500})  # a page that can scroll
    focus_canvas_with_tab(page)
    scroll = page.evaluate("() => window.scrollY")
    page.keyboard.press("Space")
    for _ in range(40):  # far past the bottom edge
        page.keyboard.press("ArrowDown")
    page.keyboard.press("Shift+ArrowLeft")
    assert page.evaluate("() => window.scrollY") == scroll, "Space or the arrows scrolled the page"
    canvas = page.locator("#canvas").bounding_box()
    pen = page.locator("#pen").bounding_box()
    assert canvas["y"] <= pen["y"] and pen["y"] + pen["height"] <= canvas["y"] + canvas["height"] + 4
    assert pen["x"] < canvas["x"] + canvas["width"] / 2 - 3 * PEN_STEP, "Shift+ArrowLeft did not take a big step"
    page.keyboard.press("Enter")
    wait_for_answer(page)
    assert page.locator("#pen-state").inner_text().endswith("up")


def test_every_control_is_reached_by_tab_with_a_visible_focus(desktop_page):
    page = desktop_page
    controls = page.eval_on_selector_all(
        "button, input, select, textarea, a[href], [tabindex]", "els => els.map(e => e.id)"
    )
    reached = []
    page.evaluate("() => document.activeElement && document.activeElement.blur()")
    for _ in range(len(controls) + 2):
        page.keyboard.press("Tab")
        focus = page.evaluate(
            """() => {
                const e = document.activeElement, s = getComputedStyle(e);
                return {id: e.id, visible: e.matches(':focus-visible'), style: s.outlineStyle,
                        width: parseFloat(s.outlineWidth), color: s.outlineColor};
            }"""
        )
        if focus["id"] in reached or not focus["id"]:
            break
        reached.append(focus["id"])
        assert focus["visible"] and focus["style"] != "none" and focus["width"] >= 2, focus
        assert focus["color"] == "rgb(180, 83, 9)", focus  # --focus: 3:1 or more on white and on the page's grey
    assert reached == ["canvas", "clear", "predict", "upload"], reached
    assert sorted(reached) == sorted(controls), f"controls Tab does not reach: {set(controls) - set(reached)}"
    screenshot(page, "focus-upload")


def test_predict_button_and_enter_without_a_drawing_say_so(desktop_page):
    page = desktop_page
    page.click("#predict")
    status = shown_error(page)
    assert "draw a digit" in status["text"].lower() and not status["error"], status
    assert page.locator("#prediction").inner_text().strip() == ""
    page.click("#clear")
    assert_cleared(page)


@pytest.mark.parametrize("index", UPLOADED_DIGITS)
def test_upload_a_scanned_mnist_digit(desktop_page, test_set, index):
    """An MNIST test digit, uploaded as a 280x280 scan (dark on white), is sent as a multipart upload."""
    page = desktop_page
    images, labels = test_set
    label = int(labels[index])
    png = scanned_png(images[index])
    # Something drawn first: the upload's answer replaces it, and the canvas is cleared.
    draw_with_mouse(page, 1)
    wait_for_answer(page)
    with page.expect_request("**/predict") as sent:
        upload(page, f"mnist-test-{index}.png", png)
    request = sent.value
    assert request.headers["content-type"].startswith("multipart/form-data"), request.headers
    assert_answer(page, label)
    assert canvas_ink(page) == 0
    assert f"mnist-test-{index}.png" in page.locator("#confidence").inner_text()
    sync_api.expect(page.locator("#input")).to_be_visible()
    np.testing.assert_array_equal(thumbnail(page), mnist_like(Image.open(io.BytesIO(png))))
    screenshot(page, f"upload-{label}")

    # Drawing afterwards replaces the upload's answer.
    draw_with_mouse(page, 7)
    assert_answer(page, 7)
    assert page.eval_on_selector("#upload", "u => u.value") == ""
    page.click("#clear")
    assert_cleared(page)


def test_uploading_a_non_image_shows_the_servers_400(desktop_page):
    page = desktop_page
    with page.expect_response("**/predict") as answered:
        upload(page, "notes.txt", b"these are not pixels\n", "text/plain")
    response = answered.value
    assert response.status == 400
    said = response.json()["error"]
    status = page.locator("#status")
    sync_api.expect(status).to_have_text(said, timeout=ANSWER_TIMEOUT_MS)
    shown = shown_error(page)
    assert shown["status"] == "400" and shown["kind"] == "input" and shown["error"] and shown["visible"], shown
    assert page.locator("#prediction").inner_text().strip() == ""
    assert page.locator("#seen").is_hidden()
    assert page.locator("#confidence").inner_text() == "No prediction."
    screenshot(page, "upload-error")
    page.console_errors[:] = [e for e in page.console_errors if "status of 400" not in e]
    page.click("#clear")
    assert_cleared(page)


def test_an_unsupported_image_format_shows_the_servers_415(desktop_page):
    page = desktop_page
    buffer = io.BytesIO()
    Image.new("L", (56, 56), 255).save(buffer, "PPM")  # Pillow reads it; the API accepts PNG, JPEG and a few more
    with page.expect_response("**/predict") as answered:
        upload(page, "digit.ppm", buffer.getvalue(), "image/x-portable-pixmap")
    assert answered.value.status == 415
    sync_api.expect(page.locator("#status")).to_have_text(answered.value.json()["error"], timeout=ANSWER_TIMEOUT_MS)
    assert shown_error(page)["status"] == "415" and shown_error(page)["kind"] == "format"
    page.console_errors[:] = [e for e in page.console_errors if "status of 415" not in e]


# Each answer carries the same message: what the page shows must follow the status, not the text.
@pytest.mark.parametrize(
    "status, kind, shows",
    [
        (400, "input", "some message"),
        (413, "too-large", "too large"),
        (415, "format", "some message"),
        (503, "busy", "busy"),
        (500, "server", "The server failed (500)"),
        (404, "no-api", "no prediction API"),
        (200, "bad-answer", "Unexpected answer"),
        (0, "network", "Could not reach the server"),
    ],
)
def test_errors_are_told_apart_by_status(desktop_page, status, kind, shows):
    page = desktop_page
    body = json.dumps({"error": "some message"})
    if status == 0:
        page.route("**/predict", lambda route: route.abort("connectionrefused"))
    else:
        page.route("**/predict", lambda route: route.fulfill(status=status, content_type="application/json", body=body))
    upload(page, "digit.png", scanned_png(np.zeros((28, 28), np.uint8)))
    status_line = page.locator("#status")
    sync_api.expect(status_line).to_have_attribute("data-status", str(status), timeout=ANSWER_TIMEOUT_MS)
    shown = shown_error(page)
    assert shown["kind"] == kind and shown["error"] and shown["visible"], shown
    assert shows in shown["text"], shown
    page.console_errors.clear()  # the browser logs each failed load
    page.unroute("**/predict")
    page.click("#clear")
    assert_cleared(page)


def test_a_503_is_sent_again_after_its_retry_after(desktop_page, test_set):
    """A 503 (the server is full) is the one error the same request may outlive: the page retries once."""
    page = desktop_page
    answers = []

    def first_busy(route):
        answers.append(route.request.url)
        if len(answers) == 1:
            route.fulfill(
                status=503,
                headers={"Retry-After": "1"},
                content_type="application/json",
                body=json.dumps({"error": "the server is answering 8 predictions already; try again"}),
            )
        else:
            route.continue_()

    page.route("**/predict", first_busy)
    images, labels = test_set
    upload(page, "digit.png", scanned_png(images[UPLOADED_DIGITS[0]]))
    sync_api.expect(page.locator("#status")).to_have_attribute("data-status", "503", timeout=ANSWER_TIMEOUT_MS)
    assert shown_error(page)["kind"] == "busy" and "trying again in 1 s" in shown_error(page)["text"]
    assert page.locator("#result").get_attribute("aria-busy") == "true", "an answer is still to come"
    assert_answer(page, int(labels[UPLOADED_DIGITS[0]]))
    assert len(answers) == 2
    page.console_errors[:] = [e for e in page.console_errors if "status of 503" not in e]


def test_no_serious_accessibility_violations(chromium_browser, server_url):
    """axe-core on the page as loaded, with an answer, with an error, on a desktop and on a phone."""
    for viewport in (DESKTOP, PHONE):
        context = chromium_browser.new_context(viewport=viewport)
        try:
            page = context.new_page()
            page.goto(server_url)
            page.wait_for_load_state("networkidle")
            found = {"loaded": axe_violations(page)}
            draw_with_keyboard(page, 1)
            wait_for_answer(page)
            found["answer"] = axe_violations(page)
            with page.expect_response("**/predict"):
                upload(page, "notes.txt", b"not an image", "text/plain")
            sync_api.expect(page.locator("#status")).to_have_attribute("data-status", "400")
            found["error"] = axe_violations(page)
            assert not any(found.values()), f"axe-core at {viewport}: {found}"
        finally:
            context.close()


def test_the_axe_check_fails_on_a_violation(desktop_page):
    """The check can fail: without its label, the file input is a critical violation ("label")."""
    page = desktop_page
    assert axe_violations(page) == []
    page.evaluate("() => document.querySelector('label[for=upload]').remove()")
    found = axe_violations(page)
    assert any(line.startswith("label (critical)") and "#upload" in line for line in found), found


# --------------------------------------------------------------------------
# Corrections: a server started with --corrections (a real SQLite store)
# --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def corrections_server(trained_model, tmp_path_factory):
    """(base URL, store path) of a `cnn-mnist --corrections STORE`."""
    from conftest import start_server
    from helpers import stop

    path = tmp_path_factory.mktemp("corrections") / "corrections.sqlite"
    process, url = start_server(trained_model / "model.keras", "--corrections", path)
    yield url, path
    stop(process)


def test_without_corrections_the_page_has_no_correction_buttons(desktop_page):
    page = desktop_page
    sync_api.expect(page.locator("#canary")).to_contain_text("canary accuracy")  # /readyz has been read
    draw_with_mouse(page, 1)
    wait_for_answer(page)
    assert page.locator("#correction").is_hidden()
    assert page.locator("#correction-digits button").count() == 0


STORED_AS_SAID = ("28×28 image", "the digit you choose", "the time", "model's version", "No IP address", "no cookie")


def test_a_misread_drawing_is_corrected_on_the_page_with_the_keyboard(chromium_browser, corrections_server):
    """Draw, read what is stored, Tab to "It was: N", Enter: the store holds the image the model saw, pending."""
    from conftest import metric
    from helpers import get

    from cnn_mnist.corrections.store import open_store

    url, path = corrections_server
    context = chromium_browser.new_context(viewport=DESKTOP)
    try:
        page = context.new_page()
        sent = []
        page.on("request", lambda r: sent.append(r) if r.url.endswith("v1/corrections") else None)
        page.goto(url)
        draw_with_keyboard(page, 7)
        shown = int(wait_for_answer(page))
        panel = page.locator("#correction")
        sync_api.expect(panel).to_be_visible()
        note = page.locator("#correction-note").inner_text()
        for said in STORED_AS_SAID:
            assert said in note, f"the page does not say what is stored: {said!r} missing from {note!r}"
        assert not sent, "nothing is sent before a button is pressed"
        buttons = page.locator("#correction-digits button")
        assert buttons.all_inner_texts() == [str(d) for d in range(10)]
        assert page.locator(f"#correct-{shown}").get_attribute("aria-disabled") == "true", "the predicted digit"
        assert axe_violations(page) == []

        label = 1 if shown != 1 else 2
        page.locator("#clear").focus()
        for _ in range(4 + label):  # predict, then the digit buttons 0 … label
            page.keyboard.press("Tab")
            if page.evaluate("() => document.activeElement.id") == f"correct-{label}":
                break
        assert page.evaluate("() => document.activeElement.id") == f"correct-{label}", "Tab does not reach it"
        with page.expect_response("**/v1/corrections") as answered:
            page.keyboard.press("Enter")
        assert answered.value.status == 201
        status = page.locator("#correction-status")
        sync_api.expect(status).to_contain_text(f"kept as a {label}")
        assert page.locator(f"#correct-{label}").get_attribute("aria-disabled") == "true", "sent once per answer"
        screenshot(page, "correction")
        assert context.cookies() == []

        body = json.loads(sent[0].post_data)
        ready = json.loads(get(url + "readyz"))
        assert body == {"input": body["input"], "label": label, "predicted": shown, "model_version": "1"}
        assert ready["model"]["version"] == "1"
        with open_store(str(path)) as store:
            (kept,) = store.list()
        np.testing.assert_array_equal(kept.image, thumbnail(page))  # the 28x28 image the model saw
        assert (kept.label, kept.predicted, kept.model_version, kept.status) == (label, shown, "1", "pending")
        text = get(url + "metrics")
        assert metric(text, "cnn_mnist_corrections_received_total", label=str(label), result="created") == 1
    finally:
        context.close()
