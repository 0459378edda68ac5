"""Choosing the Keras backend, which must happen before Keras is first imported, and importing it quietly."""

import contextlib
import faulthandler
import importlib
import importlib.util
import os
import sys
import tempfile

from .errors import UsageError

BACKENDS = ("tensorflow", "jax", "torch")
DEFAULT_BACKEND = "tensorflow"


class BackendLoadError(Exception):
    """Keras or its backend failed to import or start; `output` is what they wrote to stderr meanwhile."""

    def __init__(self, error: BaseException, output: str):
        super().__init__(f"{type(error).__name__}: {error}")
        self.error, self.output = error, output


def check_backend(name: str) -> str:
    """Return `name` if it is a backend Keras 3 can run here, else raise a UsageError saying why.

    Only looks for the libraries (importlib.util.find_spec), so a bad choice costs no import.
    """
    if name == "theano":
        raise UsageError(
            "the Theano backend is gone: Keras removed it (Keras 3 runs on "
            + ", ".join(BACKENDS)
            + ") and Theano does not run on Python >= 3.10"
        )
    if name not in BACKENDS:
        raise UsageError(f"unknown backend {name!r}; choose one of {', '.join(BACKENDS)}")
    for module in ("keras", name):  # each backend's library has the backend's name
        if importlib.util.find_spec(module) is None:
            raise UsageError(f"the {name} backend is not installed (no {module}): pip install 'cnn-mnist[{name}]'")
    return name


def select_backend(name: str, quiet: bool = True) -> str:
    """Make `name` the backend of the Keras about to be imported.

    `quiet` keeps TensorFlow's C++ log to fatal errors (level 3): its ERROR lines are noise such as
    "NodeDef mentions attribute use_unbounded_threadpool" on every fit; real errors raise in Python.
    """
    check_backend(name)
    if "keras" in sys.modules and os.environ.get("KERAS_BACKEND", DEFAULT_BACKEND) != name:
        raise RuntimeError(f"Keras was imported before the backend could be set to {name!r}")
    os.environ["KERAS_BACKEND"] = name
    if quiet:
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    # Keras writes keras.json into KERAS_HOME on first import; keep it out of read-only homes (Nix, systemd).
    if not os.access(os.path.expanduser("~"), os.W_OK):
        os.environ.setdefault("KERAS_HOME", os.path.join(os.environ.get("TMPDIR", "/tmp"), "keras"))
    return name


def start_keras():
    """Import Keras and have its backend set up its device now: both print start-up lines on some machines."""
    keras = importlib.import_module("keras")
    keras.ops.convert_to_numpy(keras.ops.zeros(()))
    return keras


def quietly(start):
    """Return `start()`, run with file descriptor 2 sent to a temporary file.

    TensorFlow's C++ core and absl write start-up lines (oneDNN, "All log messages before
    absl::InitializeLog()", CUDA probes) straight to fd 2 before TF_CPP_MIN_LOG_LEVEL applies, and only
    on some CPUs: redirecting sys.stderr cannot catch them. If `start` fails, what was written is kept
    in the BackendLoadError, never dropped; a crash still reaches the real stderr (faulthandler).
    """
    with _stderr_captured() as captured:
        try:
            return start()
        except Exception as error:
            raise BackendLoadError(error, captured()) from error


@contextlib.contextmanager
def _stderr_captured():
    sys.stderr.flush()
    sink = _scratch_file()
    saved = os.dup(2)
    report_crashes = not faulthandler.is_enabled()  # else it already writes somewhere; leave it be
    with os.fdopen(os.dup(saved), "w") as real_stderr:
        if report_crashes:
            faulthandler.enable(file=real_stderr)
        os.dup2(sink.fileno(), 2)
        try:
            yield lambda: _read_all(sink)
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            sink.close()
            if report_crashes:
                faulthandler.disable()


def _scratch_file():
    """Where the captured lines wait: memory on Linux (no writable TMPDIR needed), else a temporary file."""
    if hasattr(os, "memfd_create"):
        return open(os.memfd_create("cnn-mnist-backend-stderr"), "w+b")
    return tempfile.TemporaryFile()


def _read_all(sink) -> str:
    sys.stderr.flush()
    sink.seek(0)
    return sink.read().decode(errors="replace")


def backend_version(name: str) -> str:
    """The version of the numeric library behind the backend (imported already by Keras)."""
    module = {"tensorflow": "tensorflow", "jax": "jax", "torch": "torch"}[name]
    return sys.modules[module].__version__ if module in sys.modules else __import__(module).__version__
