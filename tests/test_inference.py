"""The compiled forward pass: every batch size, padded or not, gives each image the answer it gets alone."""

import numpy as np
import pytest
from conftest import DATASET

from cnn_mnist.core.preprocessing import to_model_input
from cnn_mnist.serving.inference import Predictor


@pytest.fixture(scope="module")
def images():
    with np.load(DATASET) as data:
        return to_model_input(data["x_test"][:70])


@pytest.mark.parametrize("pads", [False, True], ids=["as-is", "padded"])
def test_any_batch_size_answers_each_image_as_alone(trained_model, images, pads):
    predictor = Predictor(str(trained_model / "model.keras"), "1", max_batch_size=48)  # chunks of 48: not a power of 2
    predictor._pads = pads  # the JAX path (padding to powers of two), exercised on this backend's forward pass
    alone = np.concatenate([predictor.predict(images[i : i + 1]) for i in range(len(images))])
    for size in (1, 3, 9, 48, 49, 70):
        together = predictor.predict(images[:size])
        assert together.shape == (size, 10)
        np.testing.assert_allclose(together, alone[:size], atol=1e-5)
