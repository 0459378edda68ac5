"""Choosing the Keras backend, which must happen before Keras is first imported."""

import os
import sys

from .errors import UsageError

BACKENDS = ("tensorflow", "jax", "torch")
DEFAULT_BACKEND = "tensorflow"


def check_backend(name: str) -> str:
    """Return `name` if it is a backend Keras 3 can run here, else raise a UsageError saying why."""
    if name == "theano":
        raise UsageError(
            "the Theano backend is gone: Keras removed it (Keras 3 runs on "
            + ", ".join(BACKENDS)
            + ") and Theano does not run on Python >= 3.10"
        )
    if name not in BACKENDS:
        raise UsageError(f"unknown backend {name!r}; choose one of {', '.join(BACKENDS)}")
    return name


def select_backend(name: str) -> str:
    """Make `name` the backend of the Keras about to be imported, and quiet its start-up noise."""
    check_backend(name)
    if "keras" in sys.modules and os.environ.get("KERAS_BACKEND", DEFAULT_BACKEND) != name:
        raise RuntimeError(f"Keras was imported before the backend could be set to {name!r}")
    os.environ["KERAS_BACKEND"] = name
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    # Keras writes keras.json into KERAS_HOME on first import; keep it out of read-only homes (Nix, systemd).
    if not os.access(os.path.expanduser("~"), os.W_OK):
        os.environ.setdefault("KERAS_HOME", os.path.join(os.environ.get("TMPDIR", "/tmp"), "keras"))
    return name


def backend_version(name: str) -> str:
    """The version of the numeric library behind the backend (imported already by Keras)."""
    module = {"tensorflow": "tensorflow", "jax": "jax", "torch": "torch"}[name]
    return sys.modules[module].__version__ if module in sys.modules else __import__(module).__version__
