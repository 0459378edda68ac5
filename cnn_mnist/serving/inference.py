"""Fast inference: the model's forward pass compiled once per backend, never `model.predict()`.

`model.predict()` builds a tf.data pipeline per call (≈60 ms for one image here); a compiled function
called on a ready NumPy batch costs well under a millisecond of overhead. JAX compiles per input shape,
so under JAX batches are padded to a power of two (a handful of shapes, all compiled at warm-up);
TensorFlow and torch take any batch size as it is, since padding 9 images to 16 costs a third more
CPU for nothing (bench figures in the README).
"""

import hashlib
import os
import tempfile
import zipfile
import zlib
from dataclasses import dataclass

import keras
import numpy as np

from ..core.data import NUM_CLASSES
from ..core.net import INPUT_SHAPE
from . import NAME


class ModelCheckError(Exception):
    """A model file that cannot be served: unreadable, wrong shapes, a failing self-test or canary check.

    `code` is the canonical error code TensorFlow Serving would report in the version's status.
    """

    def __init__(self, message: str, code: str = "INVALID_ARGUMENT"):
        super().__init__(message)
        self.code = code


@dataclass(frozen=True)
class ModelInfo:
    name: str
    version: str
    sha256: str
    path: str

    def as_json(self) -> dict:
        return {"name": self.name, "version": self.version, "sha256": self.sha256}


class Predictor:
    """A loaded, checked and warmed model: `predict(batch)` maps (N, 28, 28, 1) float32 to (N, 10)."""

    def __init__(self, path: str, version: str, max_batch_size: int = 64):
        self.max_batch_size = max_batch_size
        real_path = os.path.realpath(path)
        # Hashed and loaded from one read: opened once each, a file replaced in between would serve the old
        # weights under the new hash, and every later reload would skip it as unchanged. keras.saving.load_model
        # takes only a path (it tells .keras from .h5 by the name's ending), so it loads a private copy.
        with tempfile.TemporaryDirectory(prefix="cnn-mnist-model-") as private:
            copy, sha256 = _copy(path, private)
            _check_readable(copy, path)
            try:
                self.model = keras.saving.load_model(copy, compile=False)
            except Exception as error:  # Keras raises anything from OSError to ValueError for a bad file
                raise ModelCheckError(f"cannot load {path}: {error}") from error
        self._check_shapes(path)
        self.info = ModelInfo(NAME, version, sha256, real_path)
        self._forward = _compile(self.model)
        self._pads = keras.backend.backend() == "jax"  # the one backend that compiles per batch size
        self._warm_up()

    def predict(self, batch: np.ndarray) -> np.ndarray:
        outputs = []
        for start in range(0, len(batch), self.max_batch_size):
            chunk = batch[start : start + self.max_batch_size]
            size = len(chunk)
            if self._pads and size != _bucket(size):
                chunk = np.concatenate([chunk, np.zeros((_bucket(size) - size, *INPUT_SHAPE), np.float32)])
            outputs.append(np.asarray(self._forward(chunk))[:size])
        return outputs[0] if len(outputs) == 1 else np.concatenate(outputs)

    def _check_shapes(self, path):
        inputs, outputs = tuple(self.model.input_shape), tuple(self.model.output_shape)
        if inputs[1:] != INPUT_SHAPE or outputs[1:] != (NUM_CLASSES,):
            raise ModelCheckError(
                f"{path}: takes {inputs} and gives {outputs}; "
                "an MNIST model takes (None, 28, 28, 1) and gives (None, 10)"
            )

    def _warm_up(self):
        """Compile every bucket now, and check the model answers like a classifier (the self-test)."""
        size = 1
        while size <= self.max_batch_size:
            probabilities = self.predict(np.zeros((size, *INPUT_SHAPE), np.float32))
            size *= 2
        if not (np.all(np.isfinite(probabilities)) and np.allclose(probabilities.sum(axis=1), 1, atol=1e-3)):
            raise ModelCheckError("self-test failed: the model's outputs are not probabilities")


def _copy(path, directory):
    """Copy the model file into `directory`, reading it once: → (the copy, the sha256 of exactly the bytes copied)."""
    copy, digest = os.path.join(directory, "model" + os.path.splitext(path)[1]), hashlib.sha256()
    try:
        with open(path, "rb") as source, open(copy, "wb") as target:
            for block in iter(lambda: source.read(1 << 20), b""):
                digest.update(block)
                target.write(block)
    except (FileNotFoundError, IsADirectoryError):
        raise ModelCheckError(f"model file not found: {path}", "NOT_FOUND") from None
    except OSError as error:  # unreadable, or no room for the copy: the error says which
        raise ModelCheckError(f"cannot copy {path} to load it: {error}", "UNAVAILABLE") from None
    return copy, digest.hexdigest()


def _check_readable(copy, path):
    """Keras calls any `.keras` it cannot open "File not found"; say what is really wrong with the file."""
    if not path.endswith(".keras"):
        return
    size = os.path.getsize(copy)
    try:
        with zipfile.ZipFile(copy) as archive:
            damaged = archive.testzip()  # reads every entry and checks its CRC
    except (zipfile.BadZipFile, zlib.error, EOFError) as error:
        raise ModelCheckError(
            f"{path}: corrupt or truncated .keras archive ({size} bytes; {error})", "DATA_LOSS"
        ) from None
    if damaged:
        raise ModelCheckError(f"{path}: corrupt .keras archive, entry {damaged} fails its CRC check", "DATA_LOSS")


def _bucket(size: int) -> int:
    return 1 << (size - 1).bit_length()


def _compile(model):
    """The forward pass as a compiled function of one NumPy batch, for the current Keras backend."""
    backend = keras.backend.backend()
    if backend == "tensorflow":
        import tensorflow as tf

        spec = tf.TensorSpec((None, *INPUT_SHAPE), tf.float32)
        return tf.function(lambda x: model(x, training=False), input_signature=[spec], autograph=False)
    if backend == "jax":
        import jax

        trainable = [v.value for v in model.trainable_variables]
        non_trainable = [v.value for v in model.non_trainable_variables]
        compiled = jax.jit(lambda tv, ntv, x: model.stateless_call(tv, ntv, x, training=False)[0])
        return lambda x: compiled(trainable, non_trainable, x)
    if backend == "torch":
        import torch

        def forward(x):
            with torch.inference_mode():
                return model(torch.from_numpy(x), training=False).cpu().numpy()

        return forward
    raise ModelCheckError(f"no fast path for the {backend} backend")
