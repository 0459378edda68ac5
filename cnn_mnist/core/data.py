"""Loading MNIST from either of its two published layouts, validated before any training starts.

* a Keras ``mnist.npz`` (``x_train``, ``y_train``, ``x_test``, ``y_test``), and
* a directory holding the four official IDX files, gzipped or raw.

Extra training digits (``--extra-data``: a corrections export) come in the npz layout too, with
``x_test``/``y_test`` optional: a holdout of the same file, measured, never trained on.
"""

import dataclasses
import gzip
import hashlib
import os
import struct
import zipfile

import numpy as np

from .errors import UsageError

IMAGE_SHAPE = (28, 28)
NUM_CLASSES = 10
NPZ_KEYS = ("x_train", "y_train", "x_test", "y_test")
EXTRA_KEYS, HOLDOUT_KEYS = NPZ_KEYS[:2], NPZ_KEYS[2:]
IDX_FILES = {
    "x_train": "train-images-idx3-ubyte",
    "y_train": "train-labels-idx1-ubyte",
    "x_test": "t10k-images-idx3-ubyte",
    "y_test": "t10k-labels-idx1-ubyte",
}
_IDX_DTYPES = {0x08: np.uint8}  # MNIST uses unsigned bytes only


@dataclasses.dataclass(frozen=True)
class Dataset:
    x_train: np.ndarray  # (N, 28, 28) uint8, ink is bright
    y_train: np.ndarray  # (N,) uint8 in 0..9
    x_test: np.ndarray
    y_test: np.ndarray
    sha256: str  # of the .npz file, or of the IDX files' names and hashes


def load_dataset(path: str) -> Dataset:
    """Load and validate the dataset at `path`; raise UsageError naming what is wrong."""
    if os.path.isdir(path):
        arrays, digest = _load_idx_dir(path)
    elif os.path.isfile(path):
        arrays, digest = _load_npz(path)
    else:
        raise UsageError(f"dataset not found: {path}")
    _validate(arrays, path)
    return Dataset(**arrays, sha256=digest)


@dataclasses.dataclass(frozen=True)
class ExtraData:
    """Digits added to the training set only; `x_holdout`/`y_holdout` (or None) are only ever evaluated."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_holdout: np.ndarray | None
    y_holdout: np.ndarray | None
    sha256: str  # of the file: what metrics.json records, and what Nix pins


def load_extra_data(path: str) -> ExtraData:
    """Load and validate one --extra-data file; raise UsageError naming what is wrong.

    Either split may be empty (an export of few corrections can hold all of them out, or none).
    """
    if not os.path.isfile(path):
        raise UsageError(f"extra data not found: {path}")
    layout = "a Keras mnist.npz export of extra training digits (x_train, y_train; x_test, y_test optional)"
    arrays = read_npz(path, EXTRA_KEYS, layout, optional=HOLDOUT_KEYS)
    validate_split(arrays["x_train"], arrays["y_train"], "train", path, allow_empty=True)
    present = [key for key in HOLDOUT_KEYS if key in arrays]
    if len(present) == 1:
        missing = next(key for key in HOLDOUT_KEYS if key not in arrays)
        raise UsageError(f"{path}: has {present[0]} but not {missing} (a holdout needs both)")
    if present:
        validate_split(arrays["x_test"], arrays["y_test"], "test", path, allow_empty=True)
    return ExtraData(
        arrays["x_train"], arrays["y_train"], arrays.get("x_test"), arrays.get("y_test"), sha256_file(path)
    )


def check_unseen(extra: ExtraData, test_images: np.ndarray, path: str) -> None:
    """Refuse extra training digits that are official test digits, byte for byte.

    Training on them would raise the test accuracy the gate reads without the model getting any better:
    the test set must stay unseen, whatever a user sends.
    """
    test_digits = {image.tobytes() for image in test_images}
    seen = [index for index, image in enumerate(extra.x_train) if image.tobytes() in test_digits]
    if seen:
        raise UsageError(
            f"{path}: {len(seen)} of its training digits are digits of the test set (the first at index {seen[0]}); "
            "the test set must stay out of training"
        )


def training_digits(dataset: Dataset, extra_data) -> tuple[np.ndarray, np.ndarray]:
    """The digits to train on: the dataset's training split, then each extra file's (never a holdout)."""
    images = np.concatenate([dataset.x_train, *(extra.x_train for extra in extra_data)])
    labels = np.concatenate([dataset.y_train, *(extra.y_train for extra in extra_data)])
    return images, labels


def sha256_file(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as stream:
        for block in iter(lambda: stream.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _load_npz(path):
    return read_npz(path, NPZ_KEYS, "a Keras mnist.npz"), sha256_file(path)


def read_npz(path, keys, layout: str, optional=()) -> dict:
    """The arrays `keys` (and those of `optional` it holds) of the .npz at `path`; a UsageError naming
    `layout` when the file is not that."""
    try:
        archive = np.load(path, allow_pickle=False)
        if not isinstance(archive, np.lib.npyio.NpzFile):
            raise UsageError(f"{path}: a single .npy array, not an .npz archive of {', '.join(keys)}")
        with archive:
            missing = [key for key in keys if key not in archive.files]
            if missing:
                raise UsageError(f"{path}: not {layout}, missing {', '.join(missing)}")
            return {key: archive[key] for key in (*keys, *optional) if key in archive.files}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as error:
        raise UsageError(f"{path}: not a readable .npz file ({error})") from None


def _load_idx_dir(path):
    arrays, lines = {}, []
    for key, stem in IDX_FILES.items():
        found = _find_idx_file(path, stem)
        arrays[key] = _read_idx(found)
        lines.append(f"{os.path.basename(found)} {sha256_file(found)}\n")
    return arrays, hashlib.sha256("".join(lines).encode()).hexdigest()


def _find_idx_file(directory, stem):
    # The files circulate as "train-images-idx3-ubyte" and as "train-images.idx3-ubyte", gzipped or not.
    dotted = stem.replace("-idx", ".idx")
    for name in (stem, stem + ".gz", dotted, dotted + ".gz"):
        candidate = os.path.join(directory, name)
        if os.path.isfile(candidate):
            return candidate
    raise UsageError(f"{directory}: no {stem}[.gz] (a dataset directory needs the four MNIST IDX files)")


def _read_idx(path):
    try:
        opener = gzip.open if path.endswith(".gz") else open
        with opener(path, "rb") as stream:
            data = stream.read()
    except (OSError, EOFError) as error:
        raise UsageError(f"{path}: unreadable ({error})") from None
    if len(data) < 4 or data[:2] != b"\0\0" or data[2] not in _IDX_DTYPES:
        raise UsageError(f"{path}: not an IDX file of unsigned bytes")
    ndim = data[3]
    header = 4 + 4 * ndim
    if len(data) < header:
        raise UsageError(f"{path}: truncated IDX header")
    shape = struct.unpack(f">{ndim}I", data[4:header])
    if len(data) - header != int(np.prod(shape)):
        raise UsageError(f"{path}: IDX size does not match its header shape {shape}")
    return np.frombuffer(data, dtype=np.uint8, offset=header).reshape(shape)


def _validate(arrays, path):
    for part in ("train", "test"):
        validate_split(arrays[f"x_{part}"], arrays[f"y_{part}"], part, path)


def validate_split(images, labels, part: str, path, allow_empty: bool = False) -> None:
    """One split: images (N, 28, 28) uint8 and N integer labels in 0..9, or a UsageError naming what is wrong."""
    if images.dtype != np.uint8:
        raise UsageError(f"{path}: x_{part} must be uint8 pixels, not {images.dtype}")
    if images.ndim != 3 or images.shape[1:] != IMAGE_SHAPE or (images.shape[0] == 0 and not allow_empty):
        raise UsageError(f"{path}: x_{part} must have shape (N, 28, 28), not {images.shape}")
    if not np.issubdtype(labels.dtype, np.integer):
        raise UsageError(f"{path}: y_{part} must be integer labels, not {labels.dtype}")
    if labels.shape != (images.shape[0],):
        raise UsageError(f"{path}: y_{part} has shape {labels.shape} but x_{part} holds {images.shape[0]} images")
    if labels.size and (labels.min() < 0 or labels.max() >= NUM_CLASSES):
        raise UsageError(f"{path}: y_{part} labels must lie in 0..9, found {labels.min()}..{labels.max()}")
