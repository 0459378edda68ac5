"""cnn-mnist with a forward pass that costs nothing: the ceiling the app itself allows.

Run by `bench/serve.py --free-forward`.

Everything but the model's arithmetic runs as in production: parsing, validation, preprocessing,
batching, metrics and the answer. Each digit gets the same probabilities (a tenth each), so the
server runs with `--min-accuracy 0`, and its answers are not checked for accuracy.

    python bench/free_forward_server.py --model MODEL --min-accuracy 0 [cnn-mnist flags]
"""

import runpy
import sys

import numpy as np

sys.path.insert(0, __file__.rsplit("/bench/", 1)[0])
from cnn_mnist import inference  # noqa: E402


def constant_forward(self, batch):
    return np.full((len(batch), 10), 0.1, np.float32)


if __name__ == "__main__":
    inference.Predictor.predict = constant_forward
    sys.argv[0] = "cnn-mnist"
    runpy.run_module("cnn_mnist.serving.cli", run_name="__main__")
