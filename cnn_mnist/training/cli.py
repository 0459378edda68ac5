"""`cnn-mnist-train`: train the ConvNet on MNIST and write a reproducible model directory."""

import dataclasses
import functools
import importlib.util
import os
import sys

from ..core.backends import BACKENDS, DEFAULT_BACKEND, check_backend
from ..core.cli import ArgumentParser, add_verbose_option, fail, fraction, import_keras, positive_float, positive_int
from ..core.data import check_unseen, load_dataset, load_extra_data
from ..core.errors import UsageError
from .artifact import check_writable_parent
from .defaults import TRAINING
from .interrupts import Interrupted, StopSignals

PROG = "cnn-mnist-train"
BELOW_MIN_ACCURACY = 3  # not 2: the input was fine, the model is not good enough


def parse_args(argv=None):
    parser = ArgumentParser(prog=PROG, description=__doc__)
    parser.add_argument("--dataset", required=True, help="a Keras mnist.npz, or a directory of the four IDX files")
    parser.add_argument("--output", default="out", help="directory to write (replaced atomically; default: out)")
    parser.add_argument("--epochs", type=positive_int, default=TRAINING["epochs"])
    parser.add_argument("--batch-size", type=positive_int, default=TRAINING["batch_size"])
    parser.add_argument("--learning-rate", type=positive_float, default=TRAINING["learning_rate"])
    parser.add_argument("--seed", type=int, default=TRAINING["seed"])
    parser.add_argument(
        "--backend",
        default=os.environ.get("KERAS_BACKEND", DEFAULT_BACKEND),
        help=f"one of {', '.join(BACKENDS)} (default: $KERAS_BACKEND or {DEFAULT_BACKEND})",
    )
    parser.add_argument("--train-samples", type=positive_int, help="train on the first N digits only (quick checks)")
    parser.add_argument("--test-samples", type=positive_int, help="evaluate on the first N test digits only")
    parser.add_argument(
        "--extra-data",
        action="append",
        default=[],
        metavar="FILE",
        help="also train on these digits (a corrections export: x_train, y_train; its x_test/y_test are a holdout, "
        "measured, never trained on); repeatable",
    )
    parser.add_argument("--tensorboard", action="store_true", help="write TensorBoard logs to OUTPUT/logs")
    parser.add_argument(
        "--min-accuracy",
        type=fraction,
        default=0.0,
        help=f"fail with exit status {BELOW_MIN_ACCURACY}, writing nothing, if the test accuracy is below this",
    )
    add_verbose_option(parser)
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    try:
        dataset, extra_data = check_usage(args)
    except (UsageError, PermissionError) as error:
        fail(PROG, str(error))
    stops = StopSignals()
    stops.install()
    before = _identity(args.output)
    try:
        import_keras(args.backend, PROG, args.verbose)
        return run(args, dataset, extra_data, stops)
    except Interrupted as stop:
        state = "left as it was" if _identity(args.output) == before else "already replaced by the new model"
        print(f"{PROG}: interrupted by {stop.signum.name}; {args.output} {state}", file=sys.stderr)
        return stop.exit_status


def check_usage(args):
    """Every check that needs no backend, so that a usage error is instant and one line."""
    check_backend(args.backend)
    if args.tensorboard and importlib.util.find_spec("tensorboard") is None:
        raise UsageError("--tensorboard needs the tensorboard package: pip install 'cnn-mnist[tensorboard]'")
    dataset = load_dataset(args.dataset)
    extra_data = [load_extra_data(path) for path in args.extra_data]
    for path, extra in zip(args.extra_data, extra_data, strict=True):
        check_unseen(extra, dataset.x_test, path)
    check_writable_parent(args.output)
    return subset(dataset, args.train_samples, args.test_samples), extra_data


def run(args, dataset, extra_data, stops: StopSignals) -> int:
    from .trainer import BelowMinimumAccuracy, TrainConfig, train

    config = TrainConfig(args.epochs, args.batch_size, args.learning_rate, args.seed, args.tensorboard)
    try:
        log = functools.partial(print, flush=True)
        train(dataset, args.output, config, log=log, min_accuracy=args.min_accuracy, stops=stops, extra_data=extra_data)
    except BelowMinimumAccuracy as error:
        fail(PROG, f"{error}; {args.output} left as it was", status=BELOW_MIN_ACCURACY)
    except OSError as error:
        fail(PROG, f"cannot write {args.output}: {error}")
    return 0


def subset(dataset, train_samples, test_samples):
    return dataclasses.replace(
        dataset,
        x_train=dataset.x_train[:train_samples],
        y_train=dataset.y_train[:train_samples],
        x_test=dataset.x_test[:test_samples],
        y_test=dataset.y_test[:test_samples],
    )


def _identity(path):
    """Which directory is at `path` now (None if none): tells whether an interrupted run replaced it."""
    try:
        stat = os.stat(path)
    except OSError:
        return None
    return stat.st_dev, stat.st_ino


if __name__ == "__main__":
    sys.exit(main())
