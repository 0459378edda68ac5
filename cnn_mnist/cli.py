"""What the command-line tools share: one-line errors with exit status 2, and the backend import."""

import argparse
import importlib
import sys

from .backends import DEFAULT_BACKEND, select_backend
from .errors import UsageError

USAGE_ERROR = 2


class ArgumentParser(argparse.ArgumentParser):
    """argparse, but a bad option is one line on stderr (argparse prints the whole usage first)."""

    def error(self, message):
        fail(self.prog, message)


def fail(prog: str, message: str):
    print(f"{prog}: error: {message}", file=sys.stderr)
    sys.exit(USAGE_ERROR)


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


def import_keras(backend: str, prog: str):
    """Select `backend` and import Keras on it, turning a missing backend library into a usage error."""
    try:
        select_backend(backend or DEFAULT_BACKEND)
        return importlib.import_module("keras")
    except UsageError as error:
        fail(prog, str(error))
    except ImportError as error:
        fail(prog, f"the {backend} backend is not installed ({error}); pip install 'cnn-mnist[{backend}]'")
