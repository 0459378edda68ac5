"""Cheap model variants for the version and canary tests: the trained model with its output layer edited.

No training: the last Dense layer's columns are permuted or a bias is nudged, so each variant costs one
load and one save. `wrong_everywhere` answers digit+1 for every digit (canary accuracy ≈ 0);
`confuses_zero_and_one` swaps two classes (≈ 21 points worse: 211 of the 1,000 canary digits are 0s
and 1s); `nudged` shifts one logit a little (the same quality, another file and other probabilities).
"""

import keras
import numpy as np


def save_variant(source, target, change) -> None:
    """Save `source` with `change(kernel, bias)` applied in place to its output layer, as `target`."""
    model = keras.saving.load_model(source, compile=False)
    weights = model.get_weights()
    change(weights[-2], weights[-1])
    model.set_weights(weights)
    target.parent.mkdir(parents=True, exist_ok=True)
    model.save(target)


def wrong_everywhere(kernel, bias):
    kernel[:] = np.roll(kernel, 1, axis=1)
    bias[:] = np.roll(bias, 1)


def confuses_zero_and_one(kernel, bias):
    kernel[:, [0, 1]] = kernel[:, [1, 0]]
    bias[[0, 1]] = bias[[1, 0]]


def nudged(kernel, bias):
    bias[0] += 0.25
