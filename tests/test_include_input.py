"""`include_input`: /predict answers with the 28x28 image the model saw, as a PNG, in every input form."""

import base64
import io

import numpy as np
import pytest
from canvas_drawings import canvas_drawing
from conftest import DATASET
from PIL import Image

DATA_URL = "data:image/png;base64,"


@pytest.fixture(scope="module")
def digits():
    with np.load(DATASET) as data:
        return data["x_test"][:3]


@pytest.fixture
def model_inputs(app, monkeypatch):
    """Every batch the model is given while the test runs."""
    predictor = app.extensions["cnn_mnist"].store.predictor
    seen = []

    def recording_predict(batch):
        seen.append(batch.copy())
        return type(predictor).predict(predictor, batch)

    monkeypatch.setattr(predictor, "predict", recording_predict)
    return seen


def png_bytes(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    return buffer.getvalue()


def drawings(digits):
    """Canvas-style drawings: the forms that go through mnist_like, not only pixels passed through."""
    rng = np.random.default_rng(0)
    return [png_bytes(canvas_drawing(digit, rng)) for digit in digits]


def decoded(answer) -> np.ndarray:
    assert answer["input"].startswith(DATA_URL)
    image = Image.open(io.BytesIO(base64.b64decode(answer["input"][len(DATA_URL) :], validate=True)))
    assert image.format == "PNG" and image.mode == "L" and image.size == (28, 28)
    return np.asarray(image)


def requests(digits):
    """(name, keyword arguments of client.post, number of answers or None for a single answer)."""
    encoded = [base64.b64encode(data).decode() for data in drawings(digits)]
    uploads = drawings(digits)
    return [
        ("image", {"json": {"image": DATA_URL + encoded[0], "include_input": True}}, None),
        ("images", {"json": {"images": encoded, "include_input": True}}, len(digits)),
        ("pixels", {"json": {"pixels": digits[0].tolist(), "include_input": True}}, None),
        ("pixels batch", {"json": {"pixels": digits.tolist(), "include_input": True}}, len(digits)),
        ("multipart", {"data": {"image": (io.BytesIO(uploads[0]), "0.png"), "include_input": "true"}}, None),
        (
            "multipart batch",
            {"data": {"image": [(io.BytesIO(u), f"{i}.png") for i, u in enumerate(uploads)], "include_input": "true"}},
            len(digits),
        ),
    ]


def test_every_form_answers_with_the_image_the_model_saw(client, digits, model_inputs):
    for name, arguments, count in requests(digits):
        model_inputs.clear()
        response = client.post("/predict", **arguments)
        assert response.status_code == 200, (name, response.json)
        answers = response.json if count else [response.json]
        assert len(answers) == (count or 1), name
        (batch,) = model_inputs
        assert len(batch) == len(answers), name
        for answer, seen in zip(answers, batch, strict=True):
            np.testing.assert_array_equal(decoded(answer), (seen[..., 0] * 255).round(), err_msg=name)
            assert decoded(answer).max() == 255, name  # ink bright, as MNIST


def test_pixels_come_back_unchanged(client, digits):
    response = client.post("/predict", json={"pixels": digits[1].tolist(), "include_input": True})
    np.testing.assert_array_equal(decoded(response.json), digits[1])


def test_no_image_unless_asked(client, digits):
    for body in ({"pixels": digits[0].tolist()}, {"pixels": digits[0].tolist(), "include_input": False}):
        response = client.post("/predict", json=body)
        assert response.status_code == 200 and "input" not in response.json
    upload = {"image": (io.BytesIO(drawings(digits[:1])[0]), "0.png"), "include_input": "false"}
    response = client.post("/predict", data=upload)
    assert response.status_code == 200 and "input" not in response.json


@pytest.mark.parametrize("value", ["true", 1, 0, None, [], {}])
def test_a_json_include_input_that_is_not_a_boolean_is_refused(client, digits, value):
    response = client.post("/predict", json={"pixels": digits[0].tolist(), "include_input": value})
    assert response.status_code == 400
    assert "include_input" in response.json["error"] and "true or false" in response.json["error"]


@pytest.mark.parametrize("value", ["yes", "1", "True", ""])
def test_a_form_include_input_other_than_true_or_false_is_refused(client, digits, value):
    upload = {"image": (io.BytesIO(drawings(digits[:1])[0]), "0.png"), "include_input": value}
    response = client.post("/predict", data=upload)
    assert response.status_code == 400
    assert "include_input" in response.json["error"] and "true or false" in response.json["error"]
