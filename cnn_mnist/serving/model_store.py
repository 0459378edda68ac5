"""Which models serve: versions and labels read from MODEL, each canary-checked, swapped without a dropped request.

MODEL may name a `.keras`/`.h5` file, a trainer output directory (holding `model.keras`), or a
directory of versions `1/`, `2/`, … (TensorFlow Serving's layout). In a versions directory every
symlink that is not a number is a label naming a version (`stable -> 2`, or an absolute path whose
last component is a version of that same directory). A label is read with one `os.readlink`: the
version entries may themselves be symlinks (into /nix/store), so resolving them fully would lose the
version. The default version is the one labelled `current`, else `stable`, else the highest number.
The labelled versions and the default one serve together.

Every model is scored on the canary set before it serves: below `min_accuracy` it is refused, and on a
reload also when it scores more than `max_regression` below the default model now serving. A refused
or broken version leaves what served before in place and carries its error in the status.
"""

import contextlib
import logging
import os
import threading
from dataclasses import dataclass, field, replace

from ..core.data import sha256_file
from .canary import CanarySet, score
from .heap import pin_mmap_threshold, release_memory
from .inference import ModelCheckError, Predictor

log = logging.getLogger(__name__)
MODEL_FILES = ("model.keras", "model.h5")
DEFAULT_LABELS = ("current", "stable")  # which label names the default version, in order of preference


class NotServed(Exception):
    """A request for a version or label that does not serve; `status` is TensorFlow Serving's HTTP status."""

    def __init__(self, message: str, status: int):
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class Layout:
    """What MODEL holds now: model files by version, labels, the default version, and what is wrong."""

    models: dict  # version -> model file
    broken: dict  # version -> ModelCheckError (a version directory without a model)
    labels: dict  # label -> version
    default: str
    label_errors: dict = field(default_factory=dict)  # label -> ModelCheckError (it names no version here)


@dataclass(frozen=True)
class Version:
    predictor: Predictor
    canary_accuracy: float


@dataclass(frozen=True)
class Serving:
    """One immutable snapshot of what serves: swapping it is one reference assignment."""

    versions: dict  # version -> Version
    labels: dict  # label -> version
    default: str

    @property
    def default_version(self) -> Version:
        return self.versions[self.default]


@dataclass(frozen=True)
class State:
    """Everything the store reports, one immutable snapshot: a reader takes all of it from one reference."""

    serving: Serving
    versions: tuple  # every version MODEL holds, served or not
    failures: dict  # version -> the ModelCheckError that kept it from serving
    last_error: str = ""
    loading: str | None = None  # the version being loaded, if any


def scan(location: str) -> Layout:
    """Read MODEL's layout; raise ModelCheckError when there is nothing to serve at all."""
    if os.path.isfile(location):
        if not location.endswith((".keras", ".h5")):
            raise ModelCheckError(f"{location}: a model file must end in .keras or .h5")
        version = _version_of(os.path.dirname(location))
        return Layout({version: location}, {}, {}, version)
    if not os.path.isdir(location):
        raise ModelCheckError(f"model not found: {location}", "NOT_FOUND")
    names = os.listdir(location)
    numbers = sorted((name for name in names if name.isdigit()), key=int)
    if not numbers:  # a trainer output directory: one model
        version = _version_of(location)
        return Layout({version: _model_file(location)}, {}, {}, version)
    models, broken = {}, {}
    for version in numbers:
        try:
            models[version] = _model_file(os.path.join(location, version))
        except ModelCheckError as error:
            broken[version] = error
    labels, label_errors = {}, {}
    for name in sorted(names):
        if not name.isdigit() and os.path.islink(os.path.join(location, name)):
            try:
                labels[name] = _label_target(location, name, numbers)
            except ModelCheckError as error:
                label_errors[name] = error
    default = next((labels[name] for name in DEFAULT_LABELS if name in labels), numbers[-1])
    return Layout(models, broken, labels, default, label_errors)


def _label_target(location, label, numbers):
    """The version a label names, read with one readlink (the version itself may be a link into a store)."""
    link = os.path.join(location, label)
    target = os.readlink(link).rstrip("/")
    version = os.path.basename(target)
    same_folder = not os.path.isabs(target) and os.path.dirname(target) in ("", ".")
    if os.path.isabs(target):
        try:
            same_folder = os.path.samefile(os.path.dirname(target), location)
        except OSError:
            same_folder = False
    if not same_folder or version not in numbers:
        raise ModelCheckError(f"label {label} -> {target} is not a version in {location}", "NOT_FOUND")
    return version


def _model_file(directory):
    for name in MODEL_FILES:
        if os.path.isfile(os.path.join(directory, name)):
            return os.path.join(directory, name)
    raise ModelCheckError(f"{directory}: no {' or '.join(MODEL_FILES)} in it", "NOT_FOUND")


def _version_of(directory):
    name = os.path.basename(os.path.abspath(directory))
    return name if name.isdigit() else "1"


class ModelStore:
    """Holds the `State` snapshot; `reload()` loads and checks what changed in the background, then swaps it."""

    def __init__(
        self,
        location: str,
        canary: CanarySet,
        *,
        min_accuracy: float,
        max_regression: float,
        max_batch_size: int = 64,
        on_swap=None,
    ):
        self.location, self.canary, self.max_batch_size = location, canary, max_batch_size
        self.min_accuracy, self.max_regression = min_accuracy, max_regression
        self.on_swap = on_swap or (lambda result, serving: None)
        self._reloading = threading.Lock()  # held by the one thread that writes `_state` after __init__
        self._requested = threading.Event()
        pin_mmap_threshold()  # before the first model: its buffers then never settle in the heap
        layout = scan(location)
        for error in layout.label_errors.values():
            raise error
        versions = {}
        for version in sorted(_wanted(layout), key=int):
            if version in layout.broken:
                raise layout.broken[version]
            versions[version] = self._load(layout.models[version], version, reference=None)
        self._state = State(Serving(versions, layout.labels, layout.default), _all(layout), dict(layout.broken))

    @property
    def serving(self) -> Serving:
        return self._state.serving

    @property
    def last_error(self) -> str:
        """Why the last reload refused something, or ""."""
        return self._state.last_error

    @property
    def predictor(self) -> Predictor:
        """The default version's predictor: what answers a request that names no version."""
        return self.serving.default_version.predictor

    def find(self, version=None, label=None) -> Version:
        """The served Version a request names (TensorFlow Serving's errors when it names none that serves)."""
        serving = self.serving
        if label is not None:
            if label not in serving.labels:
                raise NotServed(f"Unrecognized servable version label: {label}", 400)
            return serving.versions[serving.labels[label]]
        if version is None:
            return serving.default_version
        if str(version) not in serving.versions:
            raise NotServed(f"Servable not found for request: Specific(cnn-mnist, {version})", 404)
        return serving.versions[str(version)]

    def _load(self, path, version, reference):
        """Load, warm and canary-score one model; raise ModelCheckError if it may not serve."""
        predictor = Predictor(path, version, self.max_batch_size)
        accuracy, seconds = score(predictor, self.canary)
        log.info(
            "version %s scores %.4f on the canary set (%d digits, %.2f s)",
            version,
            accuracy,
            len(self.canary.labels),
            seconds,
        )
        if accuracy < self.min_accuracy:
            raise ModelCheckError(
                f"version {version} scores {accuracy:.4f} on the canary set, below the floor {self.min_accuracy:.4f}",
                "FAILED_PRECONDITION",
            )
        if reference is not None and accuracy < reference.canary_accuracy - self.max_regression:
            raise ModelCheckError(
                f"version {version} scores {accuracy:.4f} on the canary set, more than {self.max_regression:.4f} "
                f"below version {reference.predictor.info.version} now serving ({reference.canary_accuracy:.4f})",
                "FAILED_PRECONDITION",
            )
        return Version(predictor, accuracy)

    def reload(self) -> bool:
        """Re-read MODEL and serve what it names now, each new model checked first. Returns whether anything changed.

        A reload asked for while another runs is not lost: the running one goes round again when done.
        """
        self._requested.set()
        swapped = False
        while self._requested.is_set() and self._reloading.acquire(blocking=False):
            try:
                while self._requested.is_set():
                    self._requested.clear()
                    swapped = self._reload_once() or swapped
                release_memory()  # what a retired or refused model held
            finally:
                self._reloading.release()
        return swapped

    @contextlib.contextmanager
    def _loading(self, version):
        """Status says LOADING for `version` meanwhile (read-modify-write is safe: only the reload thread writes)."""
        self._state = replace(self._state, loading=version)
        try:
            yield
        finally:
            self._state = replace(self._state, loading=None)

    def _reload_once(self) -> bool:
        old = self.serving
        try:
            layout = scan(self.location)
        except (ModelCheckError, OSError) as error:
            return self._refused(str(error))
        present = _all(layout)
        failures = {v: error for v, error in self._state.failures.items() if v in present}  # kept until it loads
        failures.update(layout.broken)
        versions = {}
        for version in _wanted(layout) - set(layout.broken):
            current = old.versions.get(version)
            try:
                path = layout.models[version]
                # A second read of the file, and safe: the served hash is of the very bytes loaded (Predictor).
                if current and current.predictor.info.sha256 == sha256_file(path):
                    versions[version] = current
                else:
                    with self._loading(version):
                        versions[version] = self._load(path, version, reference=old.default_version)
                failures.pop(version, None)
            except ModelCheckError as error:
                failures[version] = error
            except OSError as error:  # the file went away while we read it
                failures[version] = ModelCheckError(str(error), "UNAVAILABLE")
        labels = {}
        for label, version in {**layout.labels, **dict.fromkeys(layout.label_errors)}.items():
            previous = old.labels.get(label)
            if version not in versions and previous in old.versions:  # TF Serving: a label names a version that serves
                versions.setdefault(previous, old.versions[previous])
                version = previous
            if version in versions:
                labels[label] = version
        default = layout.default
        if default not in versions:  # the old default keeps serving
            default = old.default
            versions.setdefault(default, old.default_version)
        new = Serving(versions, labels, default)
        wanted_failures = [error for version, error in failures.items() if version in _wanted(layout)]
        problems = [str(error) for error in (*layout.label_errors.values(), *wanted_failures)]
        for problem in problems:
            log.error("reload refused, still serving version %s: %s", default, problem)
        unchanged = _same(new, old)
        self._state = State(old if unchanged else new, present, failures, "; ".join(problems))  # the swap
        if unchanged:
            if problems:
                self.on_swap("refused", new)
            return False
        log.info(
            "now serving versions %s, default %s, labels %s (was %s, default %s)",
            ", ".join(sorted(versions, key=int)),
            default,
            labels or "none",
            ", ".join(sorted(old.versions, key=int)),
            old.default,
        )
        self.on_swap("swapped", new)
        return True

    def _refused(self, reason: str) -> bool:
        self._state = replace(self._state, last_error=reason)
        log.error("reload refused, still serving version %s: %s", self.serving.default, reason)
        self.on_swap("refused", self.serving)
        return False

    def status(self, only=None) -> list:
        """TensorFlow Serving's model_version_status: served versions AVAILABLE, a failed one END with its error.

        Exactly GetModelStatusResponse's fields: a strict protobuf JSON parser (Python's `json_format.Parse`)
        refuses any other, so the canary accuracies are in /readyz and /metrics instead.
        """
        state = self._state  # one read: a reload swaps it whole
        serving = state.serving
        states = {version: ("END", "OK", "") for version in state.versions}
        for version, error in state.failures.items():
            states[version] = ("END", error.code, str(error))
        for version in serving.versions:
            states[version] = ("AVAILABLE", "OK", "")
        if state.loading and state.loading not in serving.versions:
            states[state.loading] = ("LOADING", "OK", "")
        listed = []
        for version, (state, code, message) in sorted(states.items(), key=lambda item: -int(item[0])):
            if only is None or version == only:
                listed.append(
                    {"version": version, "state": state, "status": {"error_code": code, "error_message": message}}
                )
        return listed


def _all(layout: Layout) -> tuple:
    """Every version MODEL holds, broken ones too, in order."""
    return tuple(sorted({*layout.models, *layout.broken}, key=int))


def _wanted(layout: Layout) -> set:
    return {*layout.labels.values(), layout.default}


def _same(new: Serving, old: Serving) -> bool:
    if (new.default, new.labels, new.versions.keys()) != (old.default, old.labels, old.versions.keys()):
        return False
    return all(new.versions[version] is old.versions[version] for version in new.versions)
