"""`cnn-mnist-train` end to end: usage errors, a real training run, progress, reproducibility, other backends.

Ctrl-C during training is tested with the atomic output directory, in test_artifact.py.
"""

import hashlib
import importlib.metadata
import json
import os
import pathlib
import re
import shutil
import subprocess
import sys

import numpy as np
import pytest
from backend_hook import CHATTER, hook_env
from conftest import DATASET, ROOT, run_trainer, tree
from helpers import tiny_arrays, write_corrupt_file, write_idx_dir

from cnn_mnist.core.data import load_dataset, sha256_file

TINY = ("--epochs", 1, "--train-samples", 512, "--test-samples", 256)
OUTPUT_FILES = ["accuracy.txt", "metrics.json", "model.h5", "model.keras", "training-curves.png"]


def hashes(path):
    """{relative path: sha256} of every file and directory (None) under `path`."""
    return {name: None if data is None else hashlib.sha256(data).hexdigest() for name, data in tree(path).items()}


def assert_one_line_usage_error(result):
    assert result.returncode == 2, result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("cnn-mnist-train: error: "), result.stderr
    assert result.stdout == ""
    return lines[0]


def npz(change=None, drop=()):
    def make(tmp_path):
        arrays = {**tiny_arrays(), **(change or {})}
        for key in drop:
            del arrays[key]
        np.savez(tmp_path / "data.npz", **arrays)
        return ["--dataset", tmp_path / "data.npz"]

    return make


def corrupt(name):
    return lambda tmp_path: ["--dataset", write_corrupt_file(tmp_path / name)]


def idx_dir(change=None, remove=None):
    def make(tmp_path):
        directory = write_idx_dir(str(tmp_path / "idx"), {**tiny_arrays(), **(change or {})})
        if remove:
            os.remove(os.path.join(directory, remove))
        return ["--dataset", directory]

    return make


def valid(*options):
    return lambda tmp_path: [*npz()(tmp_path), *options]


BAD_INPUTS = {
    "missing-file": (lambda tmp_path: ["--dataset", tmp_path / "nope.npz"], "dataset not found"),
    "random-bytes": (corrupt("random-bytes.npz"), "not a readable .npz"),
    "truncated-npz": (corrupt("truncated.npz"), "not a readable .npz"),
    "npy-not-npz": (corrupt("array.npy"), "not an .npz archive"),
    "missing-key": (npz(drop=["y_test"]), "missing y_test"),
    "flat-images": (npz({"x_train": np.zeros((8, 784), np.uint8)}), r"must have shape \(N, 28, 28\)"),
    "float-images": (npz({"x_train": np.zeros((8, 28, 28), np.float32)}), "must be uint8"),
    "float-labels": (npz({"y_test": np.zeros(4, np.float64)}), "must be integer labels"),
    "label-10": (npz({"y_train": np.full(8, 10, np.uint8)}), r"lie in 0\.\.9"),
    "mismatched-lengths": (npz({"y_train": np.zeros(9, np.uint8)}), "x_train holds 8 images"),
    "idx-missing-file": (idx_dir(remove="t10k-labels-idx1-ubyte.gz"), "no t10k-labels-idx1-ubyte"),
    "idx-label-10": (idx_dir({"y_test": np.full(4, 10, np.uint8)}), r"lie in 0\.\.9"),
    "unknown-backend": (valid("--backend", "mxnet"), "unknown backend 'mxnet'; choose one of tensorflow, jax, torch"),
    "epochs-0": (valid("--epochs", 0), "argument --epochs: must be a positive integer"),
    "epochs-text": (valid("--epochs", "ten"), "argument --epochs"),
    "learning-rate-negative": (valid("--learning-rate", -1), "argument --learning-rate: must be a positive number"),
    "learning-rate-nan": (valid("--learning-rate", "nan"), "argument --learning-rate"),
    "batch-size-0": (valid("--batch-size", 0), "argument --batch-size"),
    "train-samples-0": (valid("--train-samples", 0), "argument --train-samples"),
    "no-dataset": (lambda tmp_path: [], "the following arguments are required: --dataset"),
    "min-accuracy-1.5": (valid("--min-accuracy", 1.5), "argument --min-accuracy: must be a number between 0 and 1"),
    "min-accuracy-negative": (valid("--min-accuracy", -0.1), "argument --min-accuracy"),
    "min-accuracy-nan": (valid("--min-accuracy", "nan"), "argument --min-accuracy"),
}


@pytest.mark.parametrize("make_args, message", BAD_INPUTS.values(), ids=BAD_INPUTS.keys())
def test_bad_input_is_one_line_exit_2_and_writes_nothing(tmp_path, make_args, message):
    """Found before any backend is imported: an import would exit 97 here (and would cost seconds)."""
    args = make_args(tmp_path)
    forbid_import = hook_env(tmp_path, "forbid")
    existing = tmp_path / "existing"
    existing.mkdir()
    (existing / "model.keras").write_bytes(b"the model from last week")
    before = hashes(tmp_path)
    for output in (tmp_path / "new" / "out", existing):
        line = assert_one_line_usage_error(run_trainer(*args, "--output", output, env=forbid_import))
        assert re.search(message, line), line
    assert hashes(tmp_path) == before  # nothing created (no new/, no .out.* sibling), existing output untouched


def test_theano_is_explained(tmp_path):
    result = run_trainer("--dataset", DATASET, "--backend", "theano", "--output", tmp_path / "out")
    line = assert_one_line_usage_error(result)
    assert "Theano" in line and "Keras removed it" in line and "does not run on Python" in line
    assert all(name in line for name in ("tensorflow", "jax", "torch"))
    assert os.listdir(tmp_path) == []


def test_output_under_a_regular_file(tmp_path):
    (tmp_path / "file").write_text("not a directory")
    for output in (tmp_path / "file" / "out", tmp_path / "file"):
        line = assert_one_line_usage_error(run_trainer("--dataset", DATASET, *TINY, "--output", output))
        assert "cannot write the output directory" in line
    assert hashes(tmp_path) == {"file": sha256_file(tmp_path / "file")}


# /proc passes a permission-bits check for root: only making a directory there tells. Before any backend import.
@pytest.mark.parametrize(
    "output", ["/proc/version/out", f"/proc/cnn-mnist-test-{os.getpid()}"], ids=["under-proc-file", "in-proc"]
)
def test_output_under_proc(output, tmp_path):
    result = run_trainer("--dataset", DATASET, *TINY, "--output", output, env=hook_env(tmp_path, "forbid"))
    line = assert_one_line_usage_error(result)
    assert output in line and not os.path.exists(output)


def test_a_broken_backend_is_one_line_with_what_it_printed(tmp_path):
    result = run_trainer("--dataset", DATASET, *TINY, "--output", tmp_path / "out", env=hook_env(tmp_path, "broken"))
    line = assert_one_line_usage_error(result)
    assert "the tensorflow backend failed to load (ImportError: libfake.so: cannot open shared object" in line
    assert f"it printed: {CHATTER} | a Python warning from the backend" in line  # never swallowed
    assert not (tmp_path / "out").exists()


@pytest.mark.slow
def test_backend_chatter_stays_off_stderr_unless_verbose(tmp_path):
    """The progress lines still show either way. (Real chatter depends on the CPU; the hook's never does.)"""
    for verbose in ([], ["--verbose"]):
        output = tmp_path / f"out{len(verbose)}"
        result = run_trainer(
            "--dataset", DATASET, *TINY, *verbose, "--output", output, env=hook_env(tmp_path, "chatter")
        )
        assert result.returncode == 0, result.stderr
        assert (CHATTER in result.stderr) == bool(verbose), result.stderr
        assert ("a Python warning from the backend" in result.stderr) == bool(verbose), result.stderr
        assert re.search(r"^epoch 1/1: loss [\d.]+ accuracy", result.stdout, re.MULTILINE), result.stdout
        assert (output / "model.keras").is_file()


# ---- the accuracy gate --------------------------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("existing", [False, True], ids=["absent-output", "existing-output"])
def test_below_min_accuracy_is_exit_3_and_writes_nothing(tmp_path, existing):
    output = tmp_path / "work" / "out"
    if existing:
        output.mkdir(parents=True)
        (output / "model.keras").write_bytes(b"the model that serves today")
        (output / "accuracy.txt").write_text("0.9912\n")
    before = hashes(tmp_path)
    # one epoch on 512 digits scores far below 0.99
    result = run_trainer("--dataset", DATASET, *TINY, "--min-accuracy", 0.99, "--output", output)
    assert result.returncode == 3, result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    refusal = rf"test accuracy (0\.\d{{4}}) is below --min-accuracy 0.99; {re.escape(str(output))} left as it was"
    match = re.fullmatch(f"cnn-mnist-train: error: {refusal}", lines[0])
    assert match and float(match.group(1)) < 0.99, lines[0]
    epoch = re.search(r"^epoch 1/1: .* test_accuracy (\S+)", result.stdout, re.MULTILINE)
    assert epoch and epoch.group(1) == match.group(1)  # the number it refused is the run's test accuracy
    assert hashes(tmp_path) == before  # absent stays absent (work/ too), the old model byte for byte, no staging


@pytest.mark.slow
def test_at_or_above_min_accuracy_writes_the_model(tiny_model, tmp_path):
    accuracy = (tiny_model / "accuracy.txt").read_text().strip()
    result = run_trainer(
        "--dataset", DATASET, *TINY, "--backend", "tensorflow", "--min-accuracy", accuracy, "--output", tmp_path / "out"
    )
    assert result.returncode == 0, result.stderr  # the floor is compared as accuracy.txt states it
    assert hashes(tmp_path / "out") == hashes(tiny_model)


def test_train_py_trains_from_the_checkout_it_lies_in(tmp_path):
    """train/train.py runs the cnn_mnist beside it, even where another one is installed."""
    checkout = tmp_path / "checkout"
    shutil.copytree(ROOT / "cnn_mnist", checkout / "cnn_mnist", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copytree(ROOT / "train", checkout / "train", ignore=shutil.ignore_patterns("__pycache__"))
    cli = checkout / "cnn_mnist" / "training" / "cli.py"
    cli.write_text(cli.read_text().replace('"""`cnn-mnist-train`:', '"""This checkout\'s `cnn-mnist-train`:', 1))
    result = subprocess.run(
        [sys.executable, "train/train.py", "--help"], capture_output=True, text=True, cwd=checkout, timeout=120
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("usage: cnn-mnist-train")
    assert "This checkout's `cnn-mnist-train`:" in result.stdout
    assert all(option in result.stdout for option in ("--dataset", "--output", "--epochs", "--backend", "--seed"))


# ---- real training ------------------------------------------------------------------------------------------


@pytest.mark.slow
def test_trained_model_is_accurate_and_self_describing(trained_model):
    assert sorted(os.listdir(trained_model)) == OUTPUT_FILES
    metrics = json.loads((trained_model / "metrics.json").read_text())
    accuracy = (trained_model / "accuracy.txt").read_text()
    assert float(accuracy) >= 0.95
    assert accuracy == f"{metrics['test']['accuracy']:.4f}\n"

    history = metrics["history"]
    assert [row["epoch"] for row in history] == [1, 2, 3]
    for row in history:
        assert {"loss", "accuracy", "test_loss", "test_accuracy"} <= set(row)
        assert 0 <= row["accuracy"] <= 1 and 0 <= row["test_accuracy"] <= 1 and row["loss"] > 0
    assert history[-1]["test_accuracy"] == metrics["test"]["accuracy"]
    assert history[-1]["test_loss"] == metrics["test"]["loss"]
    assert history[-1]["loss"] < history[0]["loss"]

    backend = os.environ.get("KERAS_BACKEND", "tensorflow")
    parameters = metrics["parameters"]
    assert parameters["backend"] == backend
    assert (parameters["epochs"], parameters["batch_size"], parameters["seed"]) == (3, 128, 0)
    assert parameters["learning_rate"] == pytest.approx(1e-3)
    assert metrics["versions"]["keras"] == importlib.metadata.version("keras")
    assert backend in metrics["versions"] and "numpy" in metrics["versions"]
    # the lock that pinned those versions, as the Makefile recorded it in the venv (None: installed by hand)
    lock_file = pathlib.Path(sys.prefix) / "cnn-mnist-lock.txt"
    assert metrics["versions"]["lock"] == (lock_file.read_text().strip() if lock_file.exists() else None)
    assert metrics["dataset"] == {
        "sha256": hashlib.sha256(DATASET.read_bytes()).hexdigest(),
        "train_samples": 10000,
        "test_samples": 10000,
    }
    assert (trained_model / "training-curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.slow
def test_progress_lines_idx_dataset_and_replacing_output(tmp_path):
    """Not a TTY: one line per epoch. Also: an IDX directory end to end, and success replaces the old output."""
    with np.load(DATASET) as archive:
        arrays = {key: archive[key][:512] if "train" in key else archive[key][:256] for key in archive.files}
    dataset = write_idx_dir(str(tmp_path / "idx"), arrays, gz=False, dotted=True)
    output = tmp_path / "work" / "out"
    output.mkdir(parents=True)
    (output / "stale.txt").write_text("from an older run")

    result = run_trainer("--dataset", dataset, "--epochs", 2, "--output", output)
    assert result.returncode == 0, result.stderr
    epoch_lines = [line for line in result.stdout.splitlines() if line.startswith("epoch ")]
    assert len(epoch_lines) == 2, result.stdout
    for number, line in enumerate(epoch_lines, 1):
        assert re.fullmatch(rf"epoch {number}/2: loss [\d.]+ accuracy [\d.]+ .* \d+ samples/s", line), line
    assert result.stdout.splitlines()[-1].startswith("test accuracy ")

    assert sorted(os.listdir(output)) == OUTPUT_FILES  # the stale file went with the old output
    assert os.listdir(output.parent) == ["out"]
    metrics = json.loads((output / "metrics.json").read_text())
    assert metrics["dataset"] == {"sha256": load_dataset(dataset).sha256, "train_samples": 512, "test_samples": 256}


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    output = tmp_path_factory.mktemp("tiny") / "out"
    result = run_trainer("--dataset", DATASET, *TINY, "--backend", "tensorflow", "--output", output)
    assert result.returncode == 0, result.stderr
    return output


@pytest.mark.slow
def test_training_is_reproducible(tiny_model, tmp_path):
    """Every file byte for byte, model.h5 included (its HDF5 objects carry no times: cnn_mnist/training/hdf5.py)."""
    result = run_trainer("--dataset", DATASET, *TINY, "--backend", "tensorflow", "--output", tmp_path / "again")
    assert result.returncode == 0, result.stderr
    first, second = hashes(tiny_model), hashes(tmp_path / "again")
    assert sorted(first) == OUTPUT_FILES
    assert first == second


@pytest.mark.slow
def test_another_seed_gives_another_model(tiny_model, tmp_path):
    """The reproducibility test above can fail: the seed does reach the weights."""
    result = run_trainer(
        "--dataset", DATASET, *TINY, "--backend", "tensorflow", "--seed", 1, "--output", tmp_path / "seed1"
    )
    assert result.returncode == 0, result.stderr
    for name in ("model.keras", "model.h5"):
        assert sha256_file(tmp_path / "seed1" / name) != sha256_file(tiny_model / name)
    assert json.loads((tmp_path / "seed1" / "metrics.json").read_text())["parameters"]["seed"] == 1


@pytest.mark.slow
def test_metrics_name_the_lock_nix_passes(tmp_path):
    """model.nix exports CNN_MNIST_LOCK (the nixpkgs it builds from); metrics.json records it."""
    result = run_trainer(
        "--dataset",
        DATASET,
        *TINY,
        "--output",
        tmp_path / "out",
        env={"CNN_MNIST_LOCK": "nixpkgs 26.05.20260926.5e2305d"},
    )
    assert result.returncode == 0, result.stderr
    metrics = json.loads((tmp_path / "out" / "metrics.json").read_text())
    assert metrics["versions"]["lock"] == "nixpkgs 26.05.20260926.5e2305d"


# ---- the model under other backends -------------------------------------------------------------------------

PREDICT = """
import sys, keras, numpy as np
from cnn_mnist.core.preprocessing import to_model_input
model = keras.saving.load_model(sys.argv[1])
with np.load(sys.argv[2]) as data:
    np.save(sys.argv[3], model.predict(to_model_input(data["x_test"][:32]), verbose=0))
print(keras.backend.backend())
"""


def predict(model, backend, tmp_path):
    target = tmp_path / f"{backend}.npy"
    result = subprocess.run(
        [sys.executable, "-c", PREDICT, str(model), str(DATASET), str(target)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=300,
        env={**os.environ, "KERAS_BACKEND": backend, "TF_CPP_MIN_LOG_LEVEL": "2"},
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split()[-1] == backend
    return np.load(target)


@pytest.fixture(scope="module")
def tensorflow_predictions(trained_model, tmp_path_factory):
    if json.loads((trained_model / "metrics.json").read_text())["parameters"]["backend"] != "tensorflow":
        pytest.skip("trained_model was not trained with tensorflow (KERAS_BACKEND is set)")
    return predict(trained_model / "model.keras", "tensorflow", tmp_path_factory.mktemp("predictions"))


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["jax", "torch"])
def test_tensorflow_model_loads_under_other_backends(trained_model, tensorflow_predictions, backend, tmp_path):
    with np.load(DATASET) as data:
        labels = data["y_test"][:32]
    assert tensorflow_predictions.shape == (32, 10)
    assert (tensorflow_predictions.argmax(axis=1) == labels).mean() >= 0.9  # real predictions, not a constant
    predictions = predict(trained_model / "model.keras", backend, tmp_path)
    assert predictions.shape == (32, 10)
    assert np.allclose(predictions, tensorflow_predictions, atol=1e-4)


@pytest.mark.slow
def test_tensorboard_logs_only_when_asked(tmp_path):
    with_logs, without = tmp_path / "with", tmp_path / "without"
    for output, extra in ((with_logs, ["--tensorboard"]), (without, [])):
        result = run_trainer("--dataset", DATASET, *TINY, "--output", output, *extra)
        assert result.returncode == 0, result.stderr
    events = [name for _, _, files in os.walk(with_logs / "logs") for name in files]
    assert any(name.startswith("events.out.tfevents") for name in events), events
    assert sorted(os.listdir(without)) == OUTPUT_FILES
