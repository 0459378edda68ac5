"""The training curves: loss and accuracy per epoch, train vs test."""

import matplotlib

matplotlib.use("Agg")  # no display in builds and servers; set before pyplot is imported
import matplotlib.pyplot as plt  # noqa: E402


def write_training_curves(history: list, path: str) -> None:
    epochs = [row["epoch"] for row in history]
    figure, axes = plt.subplots(1, 2, figsize=(10, 4), constrained_layout=True)
    for axis, metric in zip(axes, ("loss", "accuracy"), strict=True):
        axis.plot(epochs, [row[metric] for row in history], marker="o", label="train")
        axis.plot(epochs, [row[f"test_{metric}"] for row in history], marker="o", label="test")
        axis.set(title=metric.capitalize(), xlabel="epoch", ylabel=metric)
        axis.grid(alpha=0.3)
        axis.legend()
    # No "Software" stamp: the PNG then depends only on the numbers, not on matplotlib's version string.
    figure.savefig(path, dpi=100, metadata={"Software": None})
    plt.close(figure)
