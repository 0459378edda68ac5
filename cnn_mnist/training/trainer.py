"""Training the ConvNet and writing its self-describing output directory.

Import this only after `backends.select_backend`: it imports Keras.
"""

import dataclasses
import os
import platform
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import keras
import numpy as np

from .. import __version__
from ..core.backends import backend_version
from ..core.data import Dataset, ExtraData, training_digits
from ..core.net import build_model
from ..core.preprocessing import to_model_input
from . import artifact, hdf5, plots
from .defaults import TRAINING
from .interrupts import StopSignals

# What pinned every version above: the Makefile writes the pip lock's name and sha256 into the venv
# (LOCK_FILE under sys.prefix); model.nix exports CNN_MNIST_LOCK with the nixpkgs it builds from.
LOCK_FILE = "cnn-mnist-lock.txt"
MODEL_FILE = "model.keras"
H5_MODEL_FILE = "model.h5"  # the legacy format, for what serves `$(nix-build -A model)/model.h5`
ACCURACY_PLACES = 4  # in accuracy.txt, which the gates (here and in model.nix) compare


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    epochs: int = TRAINING["epochs"]
    batch_size: int = TRAINING["batch_size"]
    learning_rate: float = TRAINING["learning_rate"]
    seed: int = TRAINING["seed"]
    tensorboard: bool = False


def make_deterministic(seed: int) -> None:
    """Seed every generator and ask the backend for deterministic kernels (CPU training is then bitwise repeatable)."""
    keras.utils.set_random_seed(seed)
    backend = keras.backend.backend()
    if backend == "tensorflow":
        import tensorflow as tf

        tf.config.experimental.enable_op_determinism()
    elif backend == "torch":
        import torch

        torch.use_deterministic_algorithms(True)


class EpochLog(keras.callbacks.Callback):
    """One line per epoch, for logs that are not a terminal (Nix builds, CI)."""

    def __init__(self, epochs: int, samples: int, log):
        super().__init__()
        self.epochs, self.samples, self.log = epochs, samples, log

    def on_epoch_begin(self, epoch, logs=None):
        self.started = self.trained = time.perf_counter()

    def on_train_batch_end(self, batch, logs=None):
        self.trained = time.perf_counter()  # the last batch's end marks where evaluation starts

    def on_epoch_end(self, epoch, logs=None):
        rate = self.samples / max(self.trained - self.started, 1e-9)
        self.log(
            f"epoch {epoch + 1}/{self.epochs}: loss {logs['loss']:.4f} accuracy {logs['accuracy']:.4f} "
            f"test_loss {logs['val_loss']:.4f} test_accuracy {logs['val_accuracy']:.4f} {rate:.0f} samples/s"
        )


class StopBetweenBatches(keras.callbacks.Callback):
    """Raises a stop that `StopSignals` recorded, at a batch boundary, where unwinding out of fit is safe."""

    def __init__(self, stops: StopSignals):
        super().__init__()
        self.stops = stops

    def on_train_batch_end(self, batch, logs=None):
        self.stops.raise_pending()

    def on_test_batch_end(self, batch, logs=None):
        self.stops.raise_pending()


class BelowMinimumAccuracy(Exception):
    """The trained model scored below the floor; nothing was written."""

    def __init__(self, accuracy: float, floor: float):
        super().__init__(f"test accuracy {accuracy:.4f} is below --min-accuracy {floor:g}")
        self.accuracy, self.floor = accuracy, floor


def train(
    dataset: Dataset,
    output: str,
    config: TrainConfig,
    log=print,
    min_accuracy: float = 0.0,
    stops: StopSignals | None = None,
    extra_data: Sequence[ExtraData] = (),
) -> dict:
    """Train on `dataset` and atomically write `output`; returns the metrics written to metrics.json.

    `extra_data` joins the training digits only, after `dataset`'s: the test set, which is also what
    Keras validates on each epoch and what the gate reads, stays the dataset's own. Each holdout is
    scored once, after training.

    With `stops` (installed), SIGINT and SIGTERM stop the training between two batches, never inside one.
    Below `min_accuracy` (compared as accuracy.txt states it, to 4 places, as the Nix gate reads it)
    it raises BelowMinimumAccuracy before `output` is touched.
    """
    make_deterministic(config.seed)
    images, labels = training_digits(dataset, extra_data)
    x_train, y_train = to_model_input(images), labels.astype(np.int32)
    x_test, y_test = to_model_input(dataset.x_test), dataset.y_test.astype(np.int32)
    model = build_model(config.learning_rate)
    interactive = sys.stdout.isatty()
    stops = stops or StopSignals()  # not installed: never has a stop pending

    with artifact.atomic_directory(output, log) as staging:
        callbacks = [StopBetweenBatches(stops)]
        if not interactive:
            callbacks.append(EpochLog(config.epochs, len(x_train), log))
        if config.tensorboard:
            callbacks.append(keras.callbacks.TensorBoard(log_dir=os.path.join(staging, "logs")))
        started = time.perf_counter()
        with stops.deferred():
            history = model.fit(
                x_train,
                y_train,
                batch_size=config.batch_size,
                epochs=config.epochs,
                validation_data=(x_test, y_test),
                callbacks=callbacks,
                verbose=1 if interactive else 0,
            ).history
            extras = [
                describe_extra(extra, holdout_accuracy(model, extra, config.batch_size, stops)) for extra in extra_data
            ]
        seconds = time.perf_counter() - started
        accuracy = history["val_accuracy"][-1]
        if round(accuracy, ACCURACY_PLACES) < min_accuracy:
            raise BelowMinimumAccuracy(accuracy, min_accuracy)

        model_path = os.path.join(staging, MODEL_FILE)
        model.save(model_path)
        artifact.normalize_keras_zip(model_path)
        hdf5.save_model_h5(model, os.path.join(staging, H5_MODEL_FILE))
        metrics = describe_run(dataset, config, model, history)
        metrics["extra_data"] = extras
        artifact.write_json(os.path.join(staging, "metrics.json"), metrics)
        with open(os.path.join(staging, "accuracy.txt"), "w") as stream:
            stream.write(f"{metrics['test']['accuracy']:.{ACCURACY_PLACES}f}\n")
        plots.write_training_curves(metrics["history"], os.path.join(staging, "training-curves.png"))

    log(
        f"test accuracy {metrics['test']['accuracy']:.4f}, loss {metrics['test']['loss']:.4f}; "
        f"{config.epochs} epochs in {seconds:.1f} s; wrote {output}"
    )
    for extra in metrics["extra_data"]:
        holdout = extra["holdout_accuracy"]
        log(
            f"extra data {extra['sha256'][:12]}: {extra['train_samples']} digits trained on, "
            + ("no holdout" if holdout is None else f"holdout accuracy {holdout:.4f} ({extra['holdout_samples']})")
        )
    return metrics


def describe_run(dataset: Dataset, config: TrainConfig, model, history: dict) -> dict:
    """Everything needed to tell two models apart, and nothing that changes between identical builds."""
    backend = keras.backend.backend()
    epochs = [
        {
            "epoch": index + 1,
            "loss": history["loss"][index],
            "accuracy": history["accuracy"][index],
            "test_loss": history["val_loss"][index],
            "test_accuracy": history["val_accuracy"][index],
        }
        for index in range(len(history["loss"]))
    ]
    return {
        "test": {"accuracy": epochs[-1]["test_accuracy"], "loss": epochs[-1]["test_loss"]},
        "history": epochs,
        "parameters": {**dataclasses.asdict(config), "backend": backend},
        "versions": {
            "cnn_mnist": __version__,
            "keras": keras.__version__,
            backend: backend_version(backend),
            "numpy": np.__version__,
            "python": platform.python_version(),
            "lock": installed_from(),
        },
        "dataset": {
            "sha256": dataset.sha256,
            "train_samples": int(len(dataset.x_train)),
            "test_samples": int(len(dataset.x_test)),
        },
        "model": {"name": model.name, "parameters": int(model.count_params())},
    }


def holdout_accuracy(model, extra: ExtraData, batch_size: int, stops: StopSignals) -> float | None:
    """The model's accuracy on the file's held-out digits (None: it holds none)."""
    if extra.x_holdout is None or len(extra.x_holdout) == 0:
        return None
    scores = model.evaluate(
        to_model_input(extra.x_holdout),
        extra.y_holdout.astype(np.int32),
        batch_size=batch_size,
        callbacks=[StopBetweenBatches(stops)],
        verbose=0,
        return_dict=True,
    )
    return scores["accuracy"]


def describe_extra(extra: ExtraData, holdout_accuracy: float | None) -> dict:
    """What an --extra-data file was (its sha256, not its path, which differs between machines) and did."""
    return {
        "sha256": extra.sha256,
        "train_samples": int(len(extra.x_train)),
        "holdout_samples": 0 if extra.x_holdout is None else int(len(extra.x_holdout)),
        "holdout_accuracy": holdout_accuracy,
    }


def installed_from() -> str | None:
    """The lock this environment was installed from, if it says so (None: installed by hand)."""
    if "CNN_MNIST_LOCK" in os.environ:
        return os.environ["CNN_MNIST_LOCK"]
    try:
        return (Path(sys.prefix) / LOCK_FILE).read_text().strip()
    except FileNotFoundError:
        return None
