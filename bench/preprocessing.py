"""How MNIST-like `mnist_like` makes a canvas drawing: its output on re-rendered test digits vs the dataset.

Each of COUNT official test digits is re-rendered as a browser canvas would export it (tests/canvas_drawings.py:
upscaled, pen width changed, off-centre, transparent or white background, dark ink) and brought back
to 28x28 by `mnist_like`. The table compares the statistics of those images with the dataset's own
digits; with --model, also the model's accuracy on both.

    python bench/preprocessing.py --model out/model.keras
"""

import argparse
import os
import sys

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tests"))

from canvas_drawings import PEN_LEVELS, canvas_drawing  # noqa: E402  (tests/ is on the path from here on)


def statistics(images: np.ndarray) -> dict:
    """Per-image figures averaged over the set: centre of mass, ink mass, ink area, bounding box."""
    weights = images.astype(np.float64)
    rows, cols = np.indices(images.shape[1:])
    mass = weights.sum(axis=(1, 2))
    centre_y = (weights * rows).sum(axis=(1, 2)) / mass
    centre_x = (weights * cols).sum(axis=(1, 2)) / mass
    inked = images > 0
    height = np.array([np.ptp(np.flatnonzero(image.any(axis=1))) + 1 for image in inked])
    width = np.array([np.ptp(np.flatnonzero(image.any(axis=0))) + 1 for image in inked])
    return {
        "centre of mass, row (mean)": centre_y.mean(),
        "centre of mass, row (std)": centre_y.std(),
        "centre of mass, column (mean)": centre_x.mean(),
        "centre of mass, column (std)": centre_x.std(),
        "ink mass (sum / 255)": mass.mean() / 255,
        "pixels > 0": inked.sum(axis=(1, 2)).mean(),
        "pixels > 127": (images > 127).sum(axis=(1, 2)).mean(),
        "pixels >= 250": (images >= 250).sum(axis=(1, 2)).mean(),
        "longer side of the ink's box": np.maximum(height, width).mean(),
    }


def accuracy(predictor, images: np.ndarray, labels: np.ndarray) -> float:
    from cnn_mnist.core.preprocessing import to_model_input

    return float((predictor.predict(to_model_input(images)).argmax(axis=1) == labels).mean())


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default=os.path.join(ROOT, "data", "mnist-small.npz"))
    parser.add_argument("--model", help="a model.keras to measure the accuracy of")
    parser.add_argument("--count", type=int, default=2000, help="test digits to re-render")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--pen",
        type=float,
        nargs=2,
        default=PEN_LEVELS,
        metavar=("THICK", "THIN"),
        help="range of the pen's outline level (0.5 draws about the digits' own stroke width)",
    )
    args = parser.parse_args()

    from cnn_mnist.core.preprocessing import mnist_like

    with np.load(args.dataset) as data:
        digits, labels = data["x_test"], data["y_test"]
    rng = np.random.default_rng(args.seed)
    chosen = rng.choice(len(digits), args.count, replace=False)
    redrawn = np.stack([mnist_like(canvas_drawing(digits[i], rng, args.pen)) for i in chosen])

    dataset, ours = statistics(digits), statistics(redrawn)
    print(f"{'':32} {'MNIST test set':>15} {'mnist_like':>11}")
    for name in dataset:
        print(f"{name:32} {dataset[name]:15.3f} {ours[name]:11.3f}")
    if args.model:
        from cnn_mnist.serving.inference import Predictor

        predictor = Predictor(args.model, "bench")
        print(
            f"{'accuracy (same digits)':32} {accuracy(predictor, digits[chosen], labels[chosen]):15.4f}"
            f" {accuracy(predictor, redrawn, labels[chosen]):11.4f}"
        )


if __name__ == "__main__":
    main()
