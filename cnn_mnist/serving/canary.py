"""The canary set: labelled MNIST test digits every model is scored on before it may serve.

The package ships the first 1,000 digits of the official MNIST test set (provenance in data/README.md);
`--canary PATH` replaces them with a Keras `mnist.npz` (its `x_test`/`y_test`) or an IDX directory (its
t10k files; the training files need not be there).
"""

import os
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..core.data import IDX_FILES, _find_idx_file, _read_idx, read_npz, validate_split
from ..core.errors import UsageError
from ..core.preprocessing import to_model_input

SHIPPED = Path(__file__).parent / "canary-data" / "mnist-t10k-first1000.npz"


@dataclass(frozen=True)
class CanarySet:
    images: np.ndarray  # (N, 28, 28, 1) float32, the model's input
    labels: np.ndarray  # (N,) int
    source: str


def load_canary(path=None) -> CanarySet:
    """Load and validate a canary set (the shipped one when `path` is None); raise UsageError if it is not MNIST."""
    path = str(path or SHIPPED)
    if os.path.isdir(path):
        images, labels = (_read_idx(_find_test_file(path, IDX_FILES[key])) for key in ("x_test", "y_test"))
    elif os.path.isfile(path):
        test_set = read_npz(
            path, ("x_test", "y_test"), "an MNIST canary set (a Keras mnist.npz with x_test and y_test)"
        )
        images, labels = test_set["x_test"], test_set["y_test"]
    else:
        raise UsageError(f"canary set not found: {path}")
    validate_split(images, labels, "test", path)
    return CanarySet(to_model_input(images), labels.astype(np.int64), path)


def _find_test_file(directory, stem):
    try:
        return _find_idx_file(directory, stem)
    except UsageError:
        raise UsageError(
            f"{directory}: not an MNIST canary set, no {stem}[.gz] in it "
            "(an IDX canary directory needs the two t10k files)"
        ) from None


def score(predictor, canary: CanarySet) -> tuple:
    """(accuracy, seconds) of `predictor` on the canary set, through its own compiled forward pass."""
    started = time.perf_counter()
    probabilities = predictor.predict(canary.images)
    accuracy = float(np.mean(probabilities.argmax(axis=1) == canary.labels))
    return accuracy, time.perf_counter() - started
