"""`cnn-mnist-train --extra-data FILE`: corrections join the training digits only (issue 18 §7).

The files are exports in Keras' mnist.npz layout (`x_train`, `y_train`; `x_test`, `y_test` a holdout).
Bad files are refused before the backend is imported; the test set is never trained on, whatever
a file holds.
"""

import hashlib
import json
import re
import subprocess
import sys

import numpy as np
import pytest
from backend_hook import hook_env
from conftest import DATASET, ROOT, run_trainer
from helpers import tiny_arrays, write_corrupt_file

from cnn_mnist.core.data import load_dataset, load_extra_data, training_digits
from cnn_mnist.core.errors import UsageError
from cnn_mnist.training.cli import parse_args

TINY = ("--epochs", 1, "--train-samples", 1000, "--test-samples", 500)


@pytest.fixture(scope="module")
def bundled():
    with np.load(DATASET) as data:
        return {key: data[key] for key in data.files}


def export(path, bundled, start=1000, count=300, holdout=100):
    """Real training digits the tiny runs leave out (never test digits), as a corrections export holds them."""
    end = start + count
    arrays = {"x_train": bundled["x_train"][start:end], "y_train": bundled["y_train"][start:end]}
    if holdout:
        arrays.update(x_test=bundled["x_train"][end : end + holdout], y_test=bundled["y_train"][end : end + holdout])
    np.savez(path, **arrays)
    return path


# ---- reading a file -----------------------------------------------------------------------------------------


def test_an_export_with_a_holdout_loads_as_written(tmp_path, bundled):
    path = export(tmp_path / "corrections.npz", bundled)
    extra = load_extra_data(str(path))
    assert np.array_equal(extra.x_train, bundled["x_train"][1000:1300])
    assert np.array_equal(extra.y_holdout, bundled["y_train"][1300:1400])
    assert extra.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()


def test_an_export_without_a_holdout_or_with_empty_splits_loads(tmp_path, bundled):
    extra = load_extra_data(str(export(tmp_path / "plain.npz", bundled, holdout=0)))
    assert extra.x_holdout is None and extra.y_holdout is None and len(extra.x_train) == 300
    empty = tmp_path / "empty.npz"
    nothing = {"x": np.zeros((0, 28, 28), np.uint8), "y": np.zeros(0, np.uint8)}
    np.savez(empty, x_train=nothing["x"], y_train=nothing["y"], x_test=nothing["x"], y_test=nothing["y"])
    extra = load_extra_data(str(empty))
    assert extra.x_train.shape == (0, 28, 28) and extra.x_holdout.shape == (0, 28, 28)


def test_the_training_digits_are_the_datasets_then_each_files_and_never_a_holdout(tmp_path, bundled):
    dataset = load_dataset(str(DATASET))
    first = load_extra_data(str(export(tmp_path / "a.npz", bundled, start=1000, count=30, holdout=10)))
    second = load_extra_data(str(export(tmp_path / "b.npz", bundled, start=2000, count=20, holdout=10)))
    images, labels = training_digits(dataset, [first, second])
    assert images.shape == (10050, 28, 28) and labels.shape == (10050,)
    assert np.array_equal(images[:10000], dataset.x_train)
    assert np.array_equal(images[10000:10030], first.x_train) and np.array_equal(images[10030:], second.x_train)
    assert np.array_equal(labels[10000:], np.concatenate([first.y_train, second.y_train]))
    assert np.array_equal(training_digits(dataset, [])[0], dataset.x_train)


def test_extra_data_is_repeatable_and_off_by_default():
    assert parse_args(["--dataset", "d.npz"]).extra_data == []
    assert parse_args(["--dataset", "d.npz", "--extra-data", "a.npz", "--extra-data", "b.npz"]).extra_data == [
        "a.npz",
        "b.npz",
    ]


def test_a_file_read_directly_names_its_problem(tmp_path):
    np.savez(tmp_path / "half.npz", **{k: v for k, v in tiny_arrays().items() if k != "y_test"})
    with pytest.raises(UsageError, match="has x_test but not y_test"):
        load_extra_data(str(tmp_path / "half.npz"))


# ---- bad files: one line, exit 2, before the backend -------------------------------------------------------


def extra_npz(change=None, drop=()):
    def make(tmp_path):
        arrays = {**tiny_arrays(), **(change or {})}
        for key in drop:
            del arrays[key]
        np.savez(tmp_path / "extra.npz", **arrays)
        return tmp_path / "extra.npz"

    return make


def leaking_file(tmp_path):
    """Random digits, one of them the test set's last."""
    arrays = tiny_arrays()
    with np.load(DATASET) as data:
        arrays["x_train"][5] = data["x_test"][9999]
    np.savez(tmp_path / "leak.npz", **arrays)
    return tmp_path / "leak.npz"


BAD_FILES = {
    "missing-file": (lambda tmp_path: tmp_path / "nope.npz", "extra data not found"),
    "random-bytes": (lambda tmp_path: write_corrupt_file(tmp_path / "random-bytes.npz"), "not a readable .npz"),
    "npy-not-npz": (lambda tmp_path: write_corrupt_file(tmp_path / "array.npy"), "not an .npz archive"),
    "missing-labels": (extra_npz(drop=["y_train", "x_test", "y_test"]), "missing y_train"),
    "holdout-without-labels": (extra_npz(drop=["y_test"]), "has x_test but not y_test"),
    "float-images": (extra_npz({"x_train": np.zeros((8, 28, 28), np.float32)}), "x_train must be uint8"),
    "flat-images": (extra_npz({"x_train": np.zeros((8, 784), np.uint8)}), r"must have shape \(N, 28, 28\)"),
    "float-labels": (extra_npz({"y_train": np.zeros(8, np.float64)}), "y_train must be integer labels"),
    "label-10": (extra_npz({"y_train": np.full(8, 10, np.uint8)}), r"y_train labels must lie in 0\.\.9"),
    "holdout-label-minus-1": (extra_npz({"y_test": np.full(4, -1, np.int64)}), r"y_test labels must lie in 0\.\.9"),
    "mismatched-lengths": (extra_npz({"y_train": np.zeros(9, np.uint8)}), "x_train holds 8 images"),
    "a-test-digit": (leaking_file, r"1 of its training digits are digits of the test set .*index 5"),
}


@pytest.mark.parametrize("make_file, message", BAD_FILES.values(), ids=BAD_FILES.keys())
def test_a_bad_extra_file_is_one_line_exit_2_before_the_backend(tmp_path, make_file, message):
    good = export(tmp_path / "good.npz", tiny_arrays(16), start=0, count=8, holdout=4)
    bad = make_file(tmp_path)
    output = tmp_path / "out"
    result = run_trainer(
        "--dataset",
        DATASET,
        "--extra-data",
        good,
        "--extra-data",
        bad,
        "--output",
        output,
        env=hook_env(tmp_path, "forbid"),  # an import of the backend would exit 97
    )
    assert result.returncode == 2, result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("cnn-mnist-train: error: ") and str(bad) in lines[0], result.stderr
    assert re.search(message, lines[0]), lines[0]
    assert result.stdout == "" and not output.exists()


# ---- training with extra data -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def models(tmp_path_factory, bundled):
    """The same tiny run without and with 300 correctly labelled extra digits (and a holdout of 100)."""
    top = tmp_path_factory.mktemp("extra")
    extra = export(top / "corrections.npz", bundled)
    outputs = {"clean": top / "clean", "extra": top / "extra"}
    for name, args in (("clean", []), ("extra", ["--extra-data", extra])):
        result = run_trainer("--dataset", DATASET, *TINY, *args, "--output", outputs[name])
        assert result.returncode == 0, result.stderr
        outputs[f"{name}-log"] = result.stdout
    return extra, outputs


def metrics(output):
    return json.loads((output / "metrics.json").read_text())


@pytest.mark.slow
def test_metrics_name_each_extra_file_and_its_holdout_accuracy(models, tmp_path):
    extra, outputs = models
    recorded = metrics(outputs["extra"])["extra_data"]
    assert [{k: v for k, v in e.items() if k != "holdout_accuracy"} for e in recorded] == [
        {"sha256": hashlib.sha256(extra.read_bytes()).hexdigest(), "train_samples": 300, "holdout_samples": 100}
    ]
    measured = score(outputs["extra"] / "model.keras", extra, "x_test", "y_test", tmp_path)
    assert recorded[0]["holdout_accuracy"] == pytest.approx(measured, abs=1e-6)
    assert f"300 digits trained on, holdout accuracy {measured:.4f} (100)" in outputs["extra-log"]
    assert metrics(outputs["clean"])["extra_data"] == []


@pytest.mark.slow
def test_the_test_set_stays_the_official_one_and_the_extra_digits_reach_the_weights(models, tmp_path):
    _, outputs = models
    clean, extra = metrics(outputs["clean"]), metrics(outputs["extra"])
    assert extra["dataset"] == clean["dataset"] == {**extra["dataset"], "train_samples": 1000, "test_samples": 500}
    official = tmp_path / "official.npz"
    with np.load(DATASET) as data:
        np.savez(official, x_test=data["x_test"][:500], y_test=data["y_test"][:500])
    measured = score(outputs["extra"] / "model.keras", official, "x_test", "y_test", tmp_path)
    assert extra["test"]["accuracy"] == pytest.approx(measured, abs=1e-6)
    assert extra["test"]["accuracy"] != clean["test"]["accuracy"]  # 1,300 digits, not the same 1,000


def score(model, npz, x_key, y_key, tmp_path) -> float:
    """The model's accuracy on two arrays of `npz`, computed apart from the trainer, in a fresh interpreter."""
    script = tmp_path / "score.py"
    script.write_text(
        "import sys, keras, numpy as np\n"
        "from cnn_mnist.core.preprocessing import to_model_input\n"
        "model = keras.saving.load_model(sys.argv[1])\n"
        "with np.load(sys.argv[2]) as data:\n"
        "    x, y = to_model_input(data[sys.argv[3]]), data[sys.argv[4]]\n"
        "print(float(np.mean(model.predict(x, verbose=0).argmax(axis=1) == y)))\n"
    )
    result = subprocess.run(
        [sys.executable, str(script), *map(str, (model, npz, x_key, y_key))],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    return float(result.stdout.strip().splitlines()[-1])
