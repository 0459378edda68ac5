"""Preprocessing: a drawing shifted, scaled, inverted or re-encoded is classified like the MNIST digit it shows."""

import io

import numpy as np
import pytest
from canvas_drawings import canvas_drawing
from conftest import DATASET
from PIL import Image

from cnn_mnist.core.errors import ImageError
from cnn_mnist.core.preprocessing import mnist_like, to_model_input
from cnn_mnist.serving.app import create_app
from cnn_mnist.serving.inference import Predictor

COUNT = 50
REDRAWN = 1000  # test digits re-rendered as canvas drawings: enough for 0.01 px and 0.5-point resolution


@pytest.fixture(scope="module")
def digits():
    with np.load(DATASET) as data:
        return data["x_test"][:COUNT]


@pytest.fixture(scope="module")
def client(trained_model):
    return create_app({"MODEL": str(trained_model)}).test_client()


@pytest.fixture(scope="module")
def original_labels(client, digits):
    """What the model says about the untouched test digits."""
    response = client.post("/predict", json={"pixels": digits.tolist()})
    assert response.status_code == 200
    return [answer["digit"] for answer in response.json]


@pytest.fixture(scope="module")
def redrawn(test_set):
    """(indices into the test set, mnist_like of each of those digits drawn on a browser canvas)."""
    digits, _ = test_set
    rng = np.random.default_rng(8)
    chosen = rng.choice(len(digits), REDRAWN, replace=False)
    return chosen, np.stack([mnist_like(canvas_drawing(digits[i], rng)) for i in chosen])


def centres_of_mass(images):
    """(N, 2) centres of mass (row, column) in 0-based pixel indices."""
    weights = images.astype(np.float64)
    rows, cols = np.indices(images.shape[1:])
    mass = weights.sum(axis=(1, 2))
    return np.stack([(weights * rows).sum(axis=(1, 2)) / mass, (weights * cols).sum(axis=(1, 2)) / mass], axis=1)


def encode(image: Image.Image, fmt="PNG") -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, quality=90) if fmt == "JPEG" else image.save(buffer, fmt)
    return buffer.getvalue()


def upscaled(digit):
    return Image.fromarray(digit).resize((200, 200), Image.Resampling.BICUBIC)


def inverted(digit):
    return Image.fromarray(255 - np.asarray(upscaled(digit)))


def shifted(digit):
    """Dark ink on white paper, scaled to 120 px, off-centre on a 400x300 page."""
    page = Image.new("L", (400, 300), 255)
    page.paste(Image.fromarray(255 - digit).resize((120, 120), Image.Resampling.BILINEAR), (250, 20))
    return page


def transparent(digit):
    """RGBA: all pixels black, the ink only in the alpha channel (a canvas export)."""
    rgba = np.zeros((200, 200, 4), np.uint8)
    rgba[..., 3] = np.asarray(upscaled(digit))
    return Image.fromarray(rgba, "RGBA")


def jpeg_rgb(digit):
    """A colour JPEG of blue ink on a light grey page (lossy, not pure black and white)."""
    ink = np.asarray(shifted(digit), np.float32) / 255
    rgb = np.stack([ink * 200 + 20, ink * 200 + 30, 0 * ink + 230], axis=-1).astype(np.uint8)
    return Image.fromarray(rgb, "RGB")


VARIANTS = {
    "upscaled": (upscaled, "PNG"),
    "inverted": (inverted, "PNG"),
    "shifted-dark-on-light": (shifted, "PNG"),
    "rgba-alpha-ink": (transparent, "PNG"),
    "jpeg": (jpeg_rgb, "JPEG"),
}


@pytest.mark.parametrize("variant", VARIANTS)
def test_variants_are_classified_like_the_original(client, digits, original_labels, variant):
    make, fmt = VARIANTS[variant]
    files = [(io.BytesIO(encode(make(digit), fmt)), f"{i}.{fmt.lower()}") for i, digit in enumerate(digits)]
    response = client.post("/predict", data={"image": files})
    assert response.status_code == 200, response.json
    labels = [answer["digit"] for answer in response.json]
    agreement = np.mean(np.array(labels) == np.array(original_labels))
    assert agreement >= 0.9, (variant, agreement)


def test_mnist_like_is_the_same_for_inverted_and_transparent_drawings(digits):
    digit = digits[0]
    bright = mnist_like(upscaled(digit))
    for other in (inverted(digit), transparent(digit), shifted(digit)):
        assert difference_up_to_a_pixel(mnist_like(other), bright) < 6


def difference_up_to_a_pixel(image, reference):
    """Mean absolute difference after the best whole-pixel shift: centring by whole pixels, as MNIST's,
    moves a digit whose centre of mass lies near a half pixel by one pixel for a slight change."""
    return min(
        np.abs(np.roll(image.astype(int), (dy, dx), axis=(0, 1)) - reference).mean()
        for dy in (-1, 0, 1)
        for dx in (-1, 0, 1)
    )


def test_mnist_like_output_is_mnist_shaped(digits):
    result = mnist_like(shifted(digits[1]))
    assert result.shape == (28, 28) and result.dtype == np.uint8
    assert result.max() == 255
    ys, xs = np.nonzero(result > 25)
    assert ys.max() - ys.min() < 21 and xs.max() - xs.min() < 21  # fits MNIST's 20x20 box
    weights = result.astype(float)
    rows, cols = np.indices(result.shape)
    centre = ((rows * weights).sum() / weights.sum(), (cols * weights).sum() / weights.sum())
    assert abs(centre[0] - 14) <= 0.5 and abs(centre[1] - 14) <= 0.5  # MNIST's centre, to the whole pixel
    assert result[:2].max() == 0 and result[-2:].max() == 0  # a border of background


@pytest.mark.slow  # `redrawn` draws 2,000 test digits on a canvas: 7 s, the quick loop's largest share
def test_centres_of_mass_are_distributed_as_mnists(test_set, redrawn):
    """MNIST shifted each digit by whole pixels to put its centre of mass at 14: mean 14.0, std 0.29."""
    dataset = centres_of_mass(test_set[0])
    ours = centres_of_mass(redrawn[1])
    np.testing.assert_allclose(ours.mean(axis=0), dataset.mean(axis=0), atol=0.05)
    np.testing.assert_allclose(ours.std(axis=0), dataset.std(axis=0), atol=0.03)
    assert ours.min() >= dataset.min() - 0.01 and ours.max() <= dataset.max() + 0.01


@pytest.mark.slow  # `redrawn`, as above
def test_anti_aliasing_leaves_no_halo(test_set, redrawn):
    """Inked pixels per unit of ink as in MNIST: a resampling filter that rings adds faint pixels around strokes."""

    def area_per_ink(images):
        return (images > 0).sum() / (images.astype(np.float64).sum() / 255)

    digits, _ = test_set
    assert area_per_ink(redrawn[1]) == pytest.approx(area_per_ink(digits), rel=0.06)


def test_accuracy_on_canvas_drawings_is_the_test_accuracy(trained_model, test_set, redrawn):
    """The same digits, drawn on a canvas and brought back by mnist_like, score as the originals do."""
    digits, labels = test_set
    chosen, images = redrawn
    predictor = Predictor(str(trained_model / "model.keras"), "test")

    def accuracy(batch):
        return (predictor.predict(to_model_input(batch)).argmax(axis=1) == labels[chosen]).mean()

    original, drawn = accuracy(digits[chosen]), accuracy(images)
    assert original > 0.95, original  # a model that has learnt MNIST, or the comparison says nothing
    assert drawn >= original - 0.015, (original, drawn)


def test_faint_ink_is_normalised(digits):
    faint = Image.fromarray((digits[2] // 8).astype(np.uint8))
    assert mnist_like(faint).max() == 255


@pytest.mark.parametrize(
    "page",
    [
        Image.new("L", (50, 50), 0),
        Image.new("L", (50, 50), 255),
        Image.new("L", (50, 50), 128),
        Image.new("RGBA", (50, 50), (0, 0, 0, 0)),
        Image.new("RGB", (50, 50), (255, 255, 255)),
    ],
)
def test_an_image_without_ink_is_a_clear_error(client, page):
    with pytest.raises(ImageError, match="no ink"):
        mnist_like(page)
    response = client.post("/predict", data={"image": (io.BytesIO(encode(page)), "blank.png")})
    assert response.status_code == 400
    assert "no ink" in response.json["error"] and "draw" in response.json["error"]
    ok = client.post(
        "/predict", data={"image": (io.BytesIO(encode(upscaled(np.eye(28, dtype=np.uint8) * 255))), "ok.png")}
    )
    assert ok.status_code == 200


def test_to_model_input_scales_bytes_and_keeps_floats():
    uint8 = np.full((2, 28, 28), 255, np.uint8)
    assert to_model_input(uint8).shape == (2, 28, 28, 1)
    assert to_model_input(uint8).dtype == np.float32 and to_model_input(uint8).max() == 1
    floats = np.full((1, 28, 28, 1), 0.5, np.float64)
    np.testing.assert_array_equal(to_model_input(floats), floats.astype(np.float32))
    with pytest.raises(ValueError, match="28, 28"):
        to_model_input(np.zeros((1, 27, 28)))
