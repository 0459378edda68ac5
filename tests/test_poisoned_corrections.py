"""A poisoned batch of corrections against the gates (issue 18 §8), measured.

300 real training digits that the run does not otherwise see (never test digits), each labelled
(d + 1) mod 10, are added to a real SQLite store as corrections, accepted and exported with
`cnn-mnist-corrections`, then trained on beside a clean run of the same configuration. Both models
then meet the gates a model meets on its way to serving: model.nix's installCheckPhase (the floor on
the official test set's accuracy.txt), and the server's canary check and `max_regression` when the
poisoned model is reloaded over the clean one. bench/poisoned_corrections.py measures 3,000 as well.
"""

import json
import os
import subprocess
import sys

import nixbuild
import numpy as np
import pytest
from conftest import DATASET, ROOT, run_trainer
from nixeval import eval_json

from cnn_mnist.corrections.store import open_store
from cnn_mnist.serving.app import create_app

pytestmark = pytest.mark.slow  # two training runs
BASE, POISONED = 7000, 300  # the first 7,000 training digits; the poison from the next 300
TRAIN = ("--dataset", DATASET, "--train-samples", BASE, "--epochs", 1)
SERVER = json.loads((ROOT / "cnn_mnist" / "serving" / "server-defaults.json").read_text())


@pytest.fixture(scope="module")
def poisoned_export(tmp_path_factory):
    """300 mislabelled corrections, through the store, the review and the export a person would use."""
    top = tmp_path_factory.mktemp("poison")
    with np.load(DATASET) as data:
        images, labels = data["x_train"][BASE : BASE + POISONED], data["y_train"][BASE : BASE + POISONED]
    store = open_store(str(top / "corrections.sqlite"))
    try:
        for image, label in zip(images, labels, strict=True):
            store.add(image, (int(label) + 1) % 10, int(label), "1")
    finally:
        store.close()
    export = top / "poisoned.npz"
    for command in (["accept", "--all"], ["export", "--output", export]):
        result = subprocess.run(
            [sys.executable, "-m", "cnn_mnist.corrections.cli", "--store", top / "corrections.sqlite", *command],
            capture_output=True,
            text=True,
            cwd=ROOT,
            timeout=120,
            env=os.environ,
        )
        assert result.returncode == 0, result.stderr
    with np.load(export) as exported:
        assert len(exported["y_train"]) == POISONED
        truth = {image.tobytes(): label for image, label in zip(images, labels, strict=True)}
        pairs = zip(exported["x_train"], exported["y_train"], strict=True)
        assert all(label != truth[image.tobytes()] for image, label in pairs)  # all of them, each label wrong
    return export


@pytest.fixture(scope="module")
def models(poisoned_export, tmp_path_factory):
    top = tmp_path_factory.mktemp("models")
    for name, extra in (("clean", ()), ("poisoned", ("--extra-data", poisoned_export))):
        result = run_trainer(*TRAIN, *extra, "--output", top / name)
        assert result.returncode == 0, result.stderr
    return top


def accuracy(output) -> float:
    return float((output / "accuracy.txt").read_text())


def build_gate(output, tmp_path, floor: float):
    """model.nix's installCheckPhase, as Nix evaluates it for this floor, run on a trainer output."""
    recipe = nixbuild.evaluate(ROOT, tmp_path / "store", "recipes.model", "--arg", "minAccuracy", str(floor))
    script = "runHook() { :; }\n" + recipe["installCheckPhase"]
    return subprocess.run(
        ["bash", "-euo", "pipefail", "-c", script], capture_output=True, text=True, env={**os.environ, "out": output}
    )


def test_the_build_gate_passes_the_poisoned_model_and_its_accuracy_stays_within_max_regression(models, tmp_path):
    """Measured: 300 mislabelled among 7,300 digits move the test accuracy by less than max_regression (at one
    epoch they even add a little: bench/poisoned_corrections.py), and both models clear the quick floor."""
    floor = eval_json(ROOT / "nix" / "quick-model.nix", "-A", "minAccuracy")
    for name in ("clean", "poisoned"):
        gate = build_gate(models / name, tmp_path, floor)
        assert gate.returncode == 0, gate.stderr
        assert gate.stdout.strip() == f"test accuracy: {accuracy(models / name):.4f} (floor {floor})"
    assert accuracy(models / "poisoned") >= accuracy(models / "clean") - SERVER["max_regression"]
    # the gate does refuse: a floor just above the poisoned model's accuracy
    refused = build_gate(models / "poisoned", tmp_path, round(accuracy(models / "poisoned") + 0.0001, 4))
    assert refused.returncode == 1 and "is below the floor" in refused.stderr


def test_the_server_reloads_the_poisoned_model_over_the_clean_one_within_max_regression(models, tmp_path):
    """Measured: its canary score is within max_regression of the clean model's, so the reload serves it.

    The floor is lowered for these one-epoch models (the clean one scores about 0.90 on the canary set, at
    the shipped floor); the check a reload adds, max_regression, is the shipped one.
    """
    versions = tmp_path / "versions"
    versions.mkdir()
    os.symlink(models / "clean", versions / "1")
    app = create_app({"MODEL": str(versions), "MIN_ACCURACY": 0.8})
    store = app.extensions["cnn_mnist"].store
    clean = store.serving.default_version.canary_accuracy
    os.symlink(models / "poisoned", versions / "2")
    assert store.reload() is True, store.last_error
    assert store.serving.default == "2" and store.last_error == ""
    assert store.serving.versions["2"].canary_accuracy >= clean - SERVER["max_regression"]
    assert app.config["MAX_REGRESSION"] == SERVER["max_regression"]  # the check that ran is the shipped one
