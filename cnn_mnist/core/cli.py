"""What the command-line tools share: one-line errors with exit status 2, and the backend import."""

import argparse
import math
import sys

from .backends import DEFAULT_BACKEND, BackendLoadError, quietly, select_backend, start_keras
from .errors import UsageError

USAGE_ERROR = 2
MAX_PRINTED_LINES = 20  # of a failed import's output, in its one-line error


class ArgumentParser(argparse.ArgumentParser):
    """argparse, but a bad option is one line on stderr (argparse prints the whole usage first)."""

    def error(self, message):
        fail(self.prog, message)


def fail(prog: str, message: str, status: int = USAGE_ERROR):
    print(f"{prog}: error: {message}", file=sys.stderr)
    sys.exit(status)


def positive_int(text: str) -> int:
    value = int(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be a positive integer, not {text}")
    return value


def positive_float(text: str) -> float:
    value = float(text)
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"must be a positive number, not {text}")
    return value


def fraction(text: str) -> float:
    """A number in [0, 1], such as an accuracy."""
    value = float(text)
    if math.isnan(value) or not 0 <= value <= 1:
        raise argparse.ArgumentTypeError(f"must be a number between 0 and 1, not {text}")
    return value


def add_verbose_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--verbose",
        action="store_true",
        help="show the backend's own start-up messages (oneDNN, absl, CUDA probes) on stderr",
    )


def import_keras(backend: str, prog: str, verbose: bool = False):
    """Select `backend` and import Keras on it; a failure is one line, with what the import printed.

    Unless `verbose`, the backend's start-up chatter is kept off stderr (see `backends.quietly`).
    """
    try:
        select_backend(backend or DEFAULT_BACKEND, quiet=not verbose)
        return start_keras() if verbose else quietly(start_keras)
    except UsageError as error:
        fail(prog, str(error))
    except BackendLoadError as error:
        printed = [line.strip() for line in error.output.splitlines() if line.strip()][-MAX_PRINTED_LINES:]
        message = f"the {backend} backend failed to load ({error})"
        fail(prog, message + (f"; it printed: {' | '.join(printed)}" if printed else ""))
    except Exception as error:  # with --verbose, whatever the import printed is on stderr already
        fail(prog, f"the {backend} backend failed to load ({type(error).__name__}: {error})")
