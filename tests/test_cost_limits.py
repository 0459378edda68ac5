"""What one request may cost (issue 15 §1): its images counted and their pixels read from the headers, before decoding.

Timings are bench/cost_limits.py's; here only what is refused, with which status, and that nothing was
decoded first.
"""

import base64
import io
import json
import re

import numpy as np
import pytest
from conftest import ROOT
from PIL import Image, ImageDraw

from cnn_mnist.serving.app import DEFAULTS, create_app
from cnn_mnist.serving.cli import parse_args
from cnn_mnist.serving.inputs import Budget, InputError, decode_images, pixel_array, tf_serving_input

TF = "/v1/models/cnn-mnist:predict"
DIGIT = np.zeros((28, 28), np.uint8)
DIGIT[6:22, 12:16] = 255


def stroke_png(width, height, mode="L", fmt="PNG") -> bytes:
    """An image of `width` x `height` holding one pen stroke: a small file, many pixels to decode."""
    image = Image.new("L", (width, height))
    ImageDraw.Draw(image).line([(width * 0.45, height * 0.2), (width * 0.55, height * 0.8)], fill=255, width=3)
    buffer = io.BytesIO()
    image.convert(mode).save(buffer, fmt)
    return buffer.getvalue()


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


@pytest.fixture
def no_decoding(monkeypatch):
    """Fails the test if any image is decoded (PIL's ImageFile.load, which Image.open never calls)."""
    monkeypatch.setattr("PIL.ImageFile.ImageFile.load", lambda image: pytest.fail("an image was decoded"))


# ---- the budget, on inputs.py's functions -------------------------------------------------------------


def test_too_many_pixels_together_are_refused_before_any_image_is_decoded(no_decoding):
    images = [stroke_png(100, 100)] * 4  # each within the image limit, 40,000 pixels together
    with pytest.raises(InputError) as refused:
        decode_images(images, Budget(images=10, image_pixels=100 * 100, request_pixels=30_000))
    assert refused.value.status == 413
    assert str(refused.value) == "the request's images hold 40000 pixels together; at most 30000 are accepted"


def test_an_image_over_the_image_limit_is_refused_before_any_is_decoded(no_decoding):
    images = [stroke_png(100, 100), stroke_png(101, 100)]
    with pytest.raises(InputError) as refused:
        decode_images(images, Budget(images=10, image_pixels=100 * 100, request_pixels=10**9))
    assert refused.value.status == 413 and "101x100" in str(refused.value)


def test_images_within_the_budget_are_classified():
    digits = decode_images([stroke_png(100, 100)] * 3, Budget(images=3, image_pixels=100 * 100, request_pixels=30_000))
    assert digits.shape == (3, 28, 28, 1)


BATCH = [DIGIT.tolist()] * 3
UNIT_BATCH = (DIGIT[None, ..., None].repeat(3, axis=0) / 255).tolist()


@pytest.mark.parametrize(
    "parse",
    [  # each → the images
        lambda budget: decode_images([stroke_png(28, 28)] * 3, budget),
        lambda budget: pixel_array(BATCH, budget, unit_range_only=False)[0],
        lambda budget: tf_serving_input({"instances": UNIT_BATCH}, b"", budget)[0],
        lambda budget: tf_serving_input({"inputs": UNIT_BATCH}, b"", budget)[0],
    ],
    ids=["encoded", "pixels", "tf instances", "tf inputs"],
)
def test_every_form_counts_its_images(parse):
    with pytest.raises(InputError) as refused:
        parse(Budget(images=2, image_pixels=10**6, request_pixels=10**6))
    assert refused.value.status == 413
    assert str(refused.value) == "the request holds 3 images; at most 2 are accepted"
    assert len(parse(Budget(images=3, image_pixels=10**6, request_pixels=10**6))) == 3


# ---- the defaults: what the page and a phone send fit, issue 15's request does not ----------------------


def canvas_pixels() -> int:
    page = (ROOT / "cnn_mnist" / "serving" / "static" / "index.html").read_text()
    tag = re.search(r"<canvas[^>]*>", page).group(0)
    return int(re.search(r'width="(\d+)"', tag).group(1)) * int(re.search(r'height="(\d+)"', tag).group(1))


def test_the_defaults_fit_a_drawing_a_batch_of_them_and_a_12_megapixel_photo():
    budget = Budget(DEFAULTS["MAX_IMAGES_PER_REQUEST"], DEFAULTS["MAX_IMAGE_PIXELS"], DEFAULTS["MAX_REQUEST_PIXELS"])
    for width, height in [(4032, 3024), (4000, 3000), (4080, 3072)]:  # 12 MP phone cameras' photos
        assert width * height <= min(budget.image_pixels, budget.request_pixels)
    assert budget.images * canvas_pixels() <= budget.request_pixels  # a full batch of the page's drawings
    assert budget.images >= DEFAULTS["MAX_BATCH_SIZE"]  # a batch client can fill a forward pass
    photo = stroke_png(4032, 3024, "RGB", "JPEG")
    assert decode_images([photo], budget).shape == (1, 28, 28, 1)


def test_the_defaults_refuse_issue_15s_request_before_decoding(no_decoding):
    """20 PNGs of 4096x4096 holding one pen stroke each: 2.7 s of CPU before the limits."""
    budget = Budget(DEFAULTS["MAX_IMAGES_PER_REQUEST"], DEFAULTS["MAX_IMAGE_PIXELS"], DEFAULTS["MAX_REQUEST_PIXELS"])
    with pytest.raises(InputError) as refused:
        decode_images([stroke_png(4096, 4096)] * 20, budget)
    assert refused.value.status == 413


# ---- the flags and the app ------------------------------------------------------------------------------


def test_the_limits_are_flags_with_environment_variables(tmp_path, monkeypatch):
    model = tmp_path / "model.keras"
    model.touch()
    defaults = parse_args(["--model", str(model)])
    assert (defaults.max_images_per_request, defaults.max_image_pixels, defaults.max_request_pixels) == (
        DEFAULTS["MAX_IMAGES_PER_REQUEST"],
        DEFAULTS["MAX_IMAGE_PIXELS"],
        DEFAULTS["MAX_REQUEST_PIXELS"],
    )
    monkeypatch.setenv("MAX_IMAGE_PIXELS", "5000")
    chosen = parse_args(["--model", str(model), "--max-images-per-request", "2", "--max-request-pixels", "9000"])
    assert (chosen.max_images_per_request, chosen.max_image_pixels, chosen.max_request_pixels) == (2, 5000, 9000)
    for flag in ("--max-images-per-request", "--max-image-pixels", "--max-request-pixels"):
        with pytest.raises(SystemExit) as exited:
            parse_args(["--model", str(model), flag, "0"])
        assert exited.value.code == 2


def test_every_route_answers_an_over_budget_request_with_a_json_413(trained_model):
    client = create_app(
        {
            "MODEL": str(trained_model),
            "MAX_IMAGES_PER_REQUEST": 2,
            "MAX_IMAGE_PIXELS": 100 * 100,
            "MAX_REQUEST_PIXELS": 15_000,
        }
    ).test_client()
    small = stroke_png(100, 100)
    over = {
        "images, counted": client.post("/predict", json={"images": [b64(stroke_png(28, 28))] * 3}),
        "images, pixels together": client.post("/predict", json={"images": [b64(small)] * 2}),
        "multipart, counted": client.post(
            "/predict", data={"image": [(io.BytesIO(small), f"{i}.png") for i in range(3)]}
        ),
        "multipart, one image": client.post("/predict", data={"image": (io.BytesIO(stroke_png(101, 100)), "d.png")}),
        "pixels": client.post("/predict", json={"pixels": BATCH}),
        "tf instances": client.post(TF, json={"instances": UNIT_BATCH}),
    }
    for name, response in over.items():
        assert response.status_code == 413 and response.is_json, name
        assert "at most" in response.json["error"], (name, response.json)
    assert client.post("/predict", json={"images": [b64(small)]}).status_code == 200
    assert client.post(TF, json={"instances": UNIT_BATCH[:2]}).status_code == 200
    assert json.loads(client.get("/openapi.json").data)["paths"]["/predict"]["post"]["responses"]["413"]
