"""Which model serves: resolving MODEL to a version, and swapping versions without dropping a request.

MODEL may name a `.keras`/`.h5` file, a trainer output directory (holding `model.keras`), or a
directory of versions `1/`, `2/`, … in which a `current` symlink, when present, names the version to
serve, and otherwise the highest number serves. The path is resolved anew on every reload, so a
symlink that a deployment repoints (NixOS' /etc, a `current` link) is followed.
"""

import logging
import os
import threading
from dataclasses import dataclass

from .data import sha256_file
from .inference import ModelCheckError, Predictor

log = logging.getLogger(__name__)
MODEL_FILES = ("model.keras", "model.h5")


@dataclass(frozen=True)
class Resolved:
    path: str  # the model file
    version: str
    versions: tuple  # every version found beside it (itself at least)


def resolve(location: str) -> Resolved:
    """Find the model file and version that `location` names; raise ModelCheckError when there is none."""
    if os.path.isfile(location):
        if not location.endswith((".keras", ".h5")):
            raise ModelCheckError(f"{location}: a model file must end in .keras or .h5")
        version = _version_of(os.path.dirname(location))
        return Resolved(location, version, (version,))
    if not os.path.isdir(location):
        raise ModelCheckError(f"model not found: {location}")
    versions = sorted((name for name in os.listdir(location) if name.isdigit()), key=int)
    if not versions:
        version = _version_of(location)
        return Resolved(_model_file(location), version, (version,))
    current = os.path.join(location, "current")
    chosen = os.path.basename(os.path.realpath(current)) if os.path.islink(current) else versions[-1]
    if chosen not in versions:
        raise ModelCheckError(f"{current} points at {chosen!r}, which is not a version in {location}")
    return Resolved(_model_file(os.path.join(location, chosen)), chosen, tuple(versions))


def _model_file(directory):
    for name in MODEL_FILES:
        if os.path.isfile(os.path.join(directory, name)):
            return os.path.join(directory, name)
    raise ModelCheckError(f"{directory}: no {' or '.join(MODEL_FILES)} in it")


def _version_of(directory):
    name = os.path.basename(os.path.realpath(directory))
    return name if name.isdigit() else "1"


class ModelStore:
    """Holds the serving Predictor; `reload()` checks a new one in the background and swaps it in atomically."""

    def __init__(self, location: str, max_batch_size: int = 64, on_swap=None):
        self.location, self.max_batch_size = location, max_batch_size
        self.on_swap = on_swap or (lambda result, info: None)
        self._reloading = threading.Lock()
        self._requested = threading.Event()
        resolved = resolve(location)
        self.predictor = Predictor(resolved.path, resolved.version, max_batch_size)
        self.versions = resolved.versions
        self.loading = None  # the version being loaded, if any
        self.last_error = ""

    def reload(self) -> bool:
        """Load and check what MODEL names now; swap it in if it passes. Returns whether a new model serves.

        A reload asked for while another runs is not lost: the running one goes round again when done.
        """
        self._requested.set()
        swapped = False
        while self._requested.is_set() and self._reloading.acquire(blocking=False):
            try:
                while self._requested.is_set():
                    self._requested.clear()
                    swapped = self._reload_once() or swapped
            finally:
                self._reloading.release()
        return swapped

    def _reload_once(self) -> bool:
        try:
            resolved = resolve(self.location)
            self.loading = resolved.version
            serving = self.predictor.info
            if (resolved.version, sha256_file(resolved.path)) == (serving.version, serving.sha256):
                log.info("reload: version %s (%s) is already serving", resolved.version, resolved.path)
                self.versions = resolved.versions
                return False
            candidate = Predictor(resolved.path, resolved.version, self.max_batch_size)
            # One reference assignment is the swap: a batch already running keeps the predictor it took.
            self.predictor, self.versions, self.last_error = candidate, resolved.versions, ""
            log.info("now serving version %s (%s), was %s", candidate.info.version, candidate.info.path, serving.version)
            self.on_swap("swapped", candidate.info)
            return True
        except (ModelCheckError, OSError) as error:  # OSError: the file went away while we read it
            self.last_error = str(error)
            log.error("reload refused, still serving version %s: %s", self.predictor.info.version, error)
            self.on_swap("refused", self.predictor.info)
            return False
        finally:
            self.loading = None

    def reload_in_background(self) -> threading.Thread:
        thread = threading.Thread(target=self.reload, name="model-reload", daemon=True)
        thread.start()
        return thread

    def status(self) -> list:
        """TensorFlow Serving's model_version_status: the serving version AVAILABLE, the others not loaded."""
        serving = self.predictor.info.version
        states = {version: "END" for version in self.versions}
        states[serving] = "AVAILABLE"
        if self.loading and self.loading != serving:
            states[self.loading] = "LOADING"
        return [
            {
                "version": version,
                "state": state,
                "status": {"error_code": "OK", "error_message": self.last_error if state == "AVAILABLE" else ""},
            }
            for version, state in sorted(states.items(), key=lambda item: -int(item[0]))
        ]
