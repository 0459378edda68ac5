"""The export: accepted corrections as a Keras `mnist.npz`, byte for byte the same for the same corrections.

A Nix build pins the file by hash, so its bytes must not move with the time of the export, the platform or
a numpy upgrade.  np.savez's bytes are numpy's own business: numpy 2.4 writes zip64 entries through
ZipFile.open (dated 1980, "made by" the platform it runs on), older versions stamped each entry with the
time it was written.  So this writes the same layout itself: the arrays in `.npy` format (np.lib.format),
stored uncompressed (deflate's bytes can change with the zlib version; stored bytes cannot), every entry
dated 1980-01-01 with fixed attributes, in a fixed order.
"""

import hashlib
import io
import os
import tempfile
import zipfile

import numpy as np

from .store import Correction, image_key

ZIP_EPOCH = (1980, 1, 1, 0, 0, 0)  # the earliest date a zip entry can hold
UNIX = 3  # zip's "made by" system: fixed, where zipfile would write the platform's
FILE_MODE = 0o644


def holdout_score(image: np.ndarray) -> float:
    """A number in [0, 1) fixed by the image alone: the first 64 bits of its sha256."""
    return int(image_key(image)[:16], 16) / 2**64


def split(corrections: list[Correction], holdout: float | None) -> dict[str, np.ndarray]:
    """x_train/y_train, and x_test/y_test with the images scoring under `holdout` when one is given.

    The split goes by the image, so one image's corrections all land on the same side.
    """
    held = {c.id for c in corrections if holdout is not None and holdout_score(c.image) < holdout}
    sides = {"train": [c for c in corrections if c.id not in held]}
    if holdout is not None:
        sides["test"] = [c for c in corrections if c.id in held]
    arrays = {}
    for side, chosen in sides.items():
        arrays[f"x_{side}"] = np.array([c.image for c in chosen], dtype=np.uint8).reshape(len(chosen), 28, 28)
        arrays[f"y_{side}"] = np.array([c.label for c in chosen], dtype=np.uint8)
    return arrays


def npz_bytes(arrays: dict[str, np.ndarray]) -> bytes:
    """What np.load reads as these arrays, the same bytes for the same arrays at any time on any machine."""
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w", compression=zipfile.ZIP_STORED) as zipped:
        for name, array in arrays.items():
            entry = zipfile.ZipInfo(f"{name}.npy", date_time=ZIP_EPOCH)
            entry.create_system = UNIX
            entry.external_attr = FILE_MODE << 16
            data = io.BytesIO()
            np.lib.format.write_array(data, np.ascontiguousarray(array), allow_pickle=False)
            zipped.writestr(entry, data.getvalue())
    return archive.getvalue()


def write_export(path: str, arrays: dict[str, np.ndarray]) -> str:
    """Write the file whole or not at all (a temporary file renamed over `path`); returns its sha256."""
    content = npz_bytes(arrays)
    directory = os.path.dirname(os.path.abspath(path))
    descriptor, partial = tempfile.mkstemp(prefix=".export-", suffix=".npz", dir=directory)
    try:
        with os.fdopen(descriptor, "wb") as stream:
            stream.write(content)
            stream.flush()
            os.fsync(stream.fileno())
        os.chmod(partial, FILE_MODE)
        os.replace(partial, path)
    finally:
        if os.path.exists(partial):
            os.unlink(partial)
    return hashlib.sha256(content).hexdigest()
