"""The dataset loader (both MNIST layouts, validation) and the pixel → model-input conversion.

(`mnist_like` is tested in test_preprocessing.py.)
"""

import os

import numpy as np
import pytest
from conftest import DATASET
from helpers import tiny_arrays, write_corrupt_file, write_idx_dir

from cnn_mnist.core.data import IDX_FILES, load_dataset, sha256_file
from cnn_mnist.core.errors import UsageError
from cnn_mnist.core.preprocessing import to_model_input

KEYS = ("x_train", "y_train", "x_test", "y_test")


@pytest.fixture(scope="module")
def real_arrays():
    """The first digits of the bundled data (the real thing, small enough to gzip quickly)."""
    with np.load(DATASET) as archive:
        return {
            "x_train": archive["x_train"][:1000],
            "y_train": archive["y_train"][:1000],
            "x_test": archive["x_test"][:500],
            "y_test": archive["y_test"][:500],
        }


# ---- the two layouts ----------------------------------------------------------------------------------------


def test_bundled_npz_loads_as_documented():
    dataset = load_dataset(str(DATASET))
    assert dataset.x_train.shape == (10000, 28, 28) and dataset.x_test.shape == (10000, 28, 28)
    assert dataset.x_train.dtype == np.uint8 and dataset.y_train.shape == (10000,)
    assert set(np.unique(dataset.y_test)) == set(range(10))
    assert dataset.sha256 == sha256_file(str(DATASET))


@pytest.mark.parametrize(
    "gz, dotted", [(True, False), (False, False), (False, True), (True, True)], ids=["gz", "raw", "dotted", "dotted-gz"]
)
def test_idx_directory_and_npz_give_identical_arrays(tmp_path, real_arrays, gz, dotted):
    npz = tmp_path / "mnist.npz"
    np.savez(npz, **real_arrays)
    from_npz = load_dataset(str(npz))
    from_idx = load_dataset(write_idx_dir(str(tmp_path / "idx"), real_arrays, gz=gz, dotted=dotted))
    for key in KEYS:
        a, b = getattr(from_npz, key), getattr(from_idx, key)
        assert a.dtype == b.dtype == np.uint8, key
        assert a.shape == b.shape and np.array_equal(a, b), key
    assert len(from_idx.sha256) == 64


def test_idx_digest_depends_on_contents(tmp_path, real_arrays):
    first = load_dataset(write_idx_dir(str(tmp_path / "a"), real_arrays, gz=False))
    changed = dict(real_arrays, y_test=(real_arrays["y_test"] + 1) % 10)
    second = load_dataset(write_idx_dir(str(tmp_path / "b"), changed, gz=False))
    again = load_dataset(write_idx_dir(str(tmp_path / "c"), real_arrays, gz=False))
    assert first.sha256 == again.sha256 != second.sha256


# ---- validation ---------------------------------------------------------------------------------------------

BAD_ARRAYS = {
    "float-images": ({"x_train": np.zeros((8, 28, 28), np.float32)}, "x_train must be uint8"),
    "int-images": ({"x_test": np.zeros((4, 28, 28), np.int64)}, "x_test must be uint8"),
    "flat-images": ({"x_train": np.zeros((8, 784), np.uint8)}, r"x_train must have shape \(N, 28, 28\)"),
    "wrong-side": ({"x_test": np.zeros((4, 28, 27), np.uint8)}, r"x_test must have shape \(N, 28, 28\)"),
    "channel-axis": ({"x_train": np.zeros((8, 28, 28, 1), np.uint8)}, r"x_train must have shape \(N, 28, 28\)"),
    "no-images": (
        {"x_test": np.zeros((0, 28, 28), np.uint8), "y_test": np.zeros(0, np.uint8)},
        r"x_test must have shape \(N, 28, 28\)",
    ),
    "float-labels": ({"y_train": np.zeros(8, np.float32)}, "y_train must be integer labels"),
    "label-10": ({"y_train": np.array([0, 1, 2, 3, 4, 5, 6, 10], np.uint8)}, r"y_train labels must lie in 0\.\.9"),
    "negative-label": ({"y_test": np.array([0, -1, 2, 3], np.int64)}, r"y_test labels must lie in 0\.\.9"),
    "short-labels": ({"y_train": np.zeros(7, np.uint8)}, "y_train has shape .* but x_train holds 8 images"),
    "long-labels": ({"y_test": np.zeros(5, np.uint8)}, "y_test has shape .* but x_test holds 4 images"),
    "column-labels": ({"y_train": np.zeros((8, 1), np.uint8)}, "y_train has shape"),
}


@pytest.mark.parametrize("change, message", BAD_ARRAYS.values(), ids=BAD_ARRAYS.keys())
def test_npz_validation(tmp_path, change, message):
    path = tmp_path / "bad.npz"
    np.savez(path, **{**tiny_arrays(), **change})
    with pytest.raises(UsageError, match=message) as raised:
        load_dataset(str(path))
    assert str(path) in str(raised.value)


@pytest.mark.parametrize("change, message", [BAD_ARRAYS[k] for k in ("label-10", "short-labels", "flat-images")])
def test_idx_validation(tmp_path, change, message):
    with pytest.raises(UsageError, match=message):
        load_dataset(write_idx_dir(str(tmp_path / "idx"), {**tiny_arrays(), **change}, gz=False))


def test_npz_missing_keys(tmp_path):
    arrays = tiny_arrays()
    del arrays["y_test"], arrays["x_test"]
    np.savez(tmp_path / "partial.npz", **arrays)
    with pytest.raises(UsageError, match="missing x_test, y_test"):
        load_dataset(str(tmp_path / "partial.npz"))


def test_npz_valid_variants_accepted(tmp_path):
    """Other integer label dtypes (int64 from a quick np.array) and the compressed format are fine."""
    arrays = {**tiny_arrays(), "y_train": np.arange(8, dtype=np.int64) % 10}
    np.savez_compressed(tmp_path / "ok.npz", **arrays)
    dataset = load_dataset(str(tmp_path / "ok.npz"))
    assert np.array_equal(dataset.y_train, arrays["y_train"])


@pytest.mark.parametrize("name", ["random-bytes.npz", "truncated.npz", "empty.npz", "text.npz"])
def test_unreadable_files(tmp_path, name):
    with pytest.raises(UsageError, match="not a readable .npz file"):
        load_dataset(str(write_corrupt_file(tmp_path / name)))


def test_npy_is_not_an_npz(tmp_path):
    with pytest.raises(UsageError, match="a single .npy array, not an .npz archive"):
        load_dataset(str(write_corrupt_file(tmp_path / "array.npy")))


def test_missing_path(tmp_path):
    with pytest.raises(UsageError, match="dataset not found"):
        load_dataset(str(tmp_path / "nope.npz"))


def test_idx_directory_errors(tmp_path):
    directory = write_idx_dir(str(tmp_path / "idx"), tiny_arrays(), gz=False)
    labels = os.path.join(directory, IDX_FILES["y_test"])
    data = open(labels, "rb").read()

    open(labels, "wb").write(data[:-1])  # one label short of its header's count
    with pytest.raises(UsageError, match="does not match its header"):
        load_dataset(directory)
    open(labels, "wb").write(b"\0\0\x0d\x01" + data[4:])  # 0x0D: float32, not MNIST's unsigned bytes
    with pytest.raises(UsageError, match="not an IDX file of unsigned bytes"):
        load_dataset(directory)
    open(labels, "wb").write(b"\0\0\x08\x03\0\0")  # promises 3 dimensions, holds half of one
    with pytest.raises(UsageError, match="truncated IDX header"):
        load_dataset(directory)
    open(labels + ".gz", "wb").write(data)  # named .gz but not gzip
    os.remove(labels)
    with pytest.raises(UsageError, match="unreadable"):
        load_dataset(directory)
    os.remove(labels + ".gz")
    with pytest.raises(UsageError, match="no t10k-labels-idx1-ubyte"):
        load_dataset(directory)


# ---- preprocessing ------------------------------------------------------------------------------------------


def test_to_model_input_scales_uint8():
    pixels = np.array([[[0, 51, 255] + [0] * 25] * 28] * 2, dtype=np.uint8)
    result = to_model_input(pixels)
    assert result.dtype == np.float32 and result.shape == (2, 28, 28, 1)
    assert result[0, 0, :3, 0].tolist() == [0.0, np.float32(51) / np.float32(255), 1.0]
    assert np.array_equal(to_model_input(pixels[..., np.newaxis]), result)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_to_model_input_passes_floats_through(dtype):
    pixels = np.random.default_rng(0).random((3, 28, 28, 1)).astype(dtype)
    result = to_model_input(pixels)
    assert result.dtype == np.float32 and result.shape == (3, 28, 28, 1)
    assert np.allclose(result, pixels, atol=1e-7)  # not divided by 255 a second time
    assert np.array_equal(to_model_input(pixels[..., 0]), result)


@pytest.mark.parametrize("shape", [(28, 28), (2, 28, 27), (2, 784), (2, 28, 28, 3), (1, 2, 28, 28, 1)])
def test_to_model_input_rejects_other_shapes(shape):
    with pytest.raises(ValueError, match="28, 28"):
        to_model_input(np.zeros(shape, np.uint8))
