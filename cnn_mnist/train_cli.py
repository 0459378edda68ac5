"""`cnn-mnist-train`: train the ConvNet on MNIST and write a reproducible model directory."""

import importlib.util
import os
import sys

from .backends import BACKENDS, DEFAULT_BACKEND, check_backend
from .cli import ArgumentParser, fail, import_keras, positive_float, positive_int
from .data import load_dataset
from .errors import UsageError


def parse_args(argv=None):
    parser = ArgumentParser(prog="cnn-mnist-train", description=__doc__)
    parser.add_argument("--dataset", required=True, help="a Keras mnist.npz, or a directory of the four IDX files")
    parser.add_argument("--output", default="out", help="directory to write (replaced atomically; default: out)")
    parser.add_argument("--epochs", type=positive_int, default=10)
    parser.add_argument("--batch-size", type=positive_int, default=128)
    parser.add_argument("--learning-rate", type=positive_float, default=1e-3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--backend",
        default=os.environ.get("KERAS_BACKEND", DEFAULT_BACKEND),
        help=f"one of {', '.join(BACKENDS)} (default: $KERAS_BACKEND or {DEFAULT_BACKEND})",
    )
    parser.add_argument("--train-samples", type=positive_int, help="train on the first N digits only (quick checks)")
    parser.add_argument("--test-samples", type=positive_int, help="evaluate on the first N test digits only")
    parser.add_argument("--tensorboard", action="store_true", help="write TensorBoard logs to OUTPUT/logs")
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    prog = "cnn-mnist-train"
    try:
        check_backend(args.backend)
        if args.tensorboard and importlib.util.find_spec("tensorboard") is None:
            raise UsageError("--tensorboard needs the tensorboard package: pip install 'cnn-mnist[tensorboard]'")
        dataset = load_dataset(args.dataset)
        from .artifact import check_writable_parent

        check_writable_parent(args.output)
    except (UsageError, PermissionError) as error:
        fail(prog, str(error))
    dataset = subset(dataset, args.train_samples, args.test_samples)

    import_keras(args.backend, prog)
    from .training import TrainConfig, train

    config = TrainConfig(args.epochs, args.batch_size, args.learning_rate, args.seed, args.tensorboard)
    try:
        train(dataset, args.output, config, log=lambda line: print(line, flush=True))
    except OSError as error:
        fail(prog, f"cannot write {args.output}: {error}")
    except KeyboardInterrupt:
        print(f"{prog}: interrupted; {args.output} left as it was", file=sys.stderr)
        return 130
    return 0


def subset(dataset, train_samples, test_samples):
    import dataclasses

    return dataclasses.replace(
        dataset,
        x_train=dataset.x_train[:train_samples],
        y_train=dataset.y_train[:train_samples],
        x_test=dataset.x_test[:test_samples],
        y_test=dataset.y_test[:test_samples],
    )


if __name__ == "__main__":
    sys.exit(main())
