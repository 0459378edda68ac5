"""The whole loop on a tiny dataset (issue 18): correct over HTTP, keep, review, export, train, gate.

Each step is the real program a person runs: `cnn-mnist --corrections` on a SQLite store, POST
/v1/corrections, `cnn-mnist-corrections accept --all` and `export --holdout`, then `cnn-mnist-train
--extra-data` with the build's gate (`--min-accuracy`). metrics.json must name the very file exported.
"""

import hashlib
import json
import os
import re
import subprocess
import sys

import numpy as np
import pytest
from conftest import DATASET, ROOT, run_trainer, start_server
from helpers import post, stop

CORRECTIONS = [sys.executable, "-m", "cnn_mnist.corrections.cli"]
SENT = 40  # real training digits the tiny run leaves out, sent as corrections with their true labels


def corrections(*args):
    result = subprocess.run(
        [*CORRECTIONS, *map(str, args)], capture_output=True, text=True, cwd=ROOT, timeout=120, env=os.environ
    )
    assert result.returncode == 0, result.stderr
    return result


@pytest.mark.slow
def test_corrections_sent_over_http_are_trained_on_behind_the_gate(trained_model, tmp_path):
    store = tmp_path / "corrections.sqlite"
    with np.load(DATASET) as data:
        images, labels = data["x_train"][5000 : 5000 + SENT], data["y_train"][5000 : 5000 + SENT]
    process, url = start_server(trained_model / "model.keras", "--corrections", store, "--corrections-per-minute", 0)
    try:
        ids = []
        for image, label in zip(images, labels, strict=True):
            status, body = post(url + "v1/corrections", {"pixels": image.tolist(), "label": int(label)})
            assert (status, body["status"]) == (201, "pending"), body
            ids.append(body["id"])
        status, again = post(url + "v1/corrections", {"pixels": images[0].tolist(), "label": int(labels[0])})
        assert (status, again["id"]) == (200, ids[0])  # the same correction twice is kept once
    finally:
        stop(process)

    assert json.loads(corrections("--store", store, "stats").stdout)["pending"] == SENT
    assert json.loads(corrections("--store", store, "accept", "--all").stdout) == {
        "status": "accepted",
        "changed": SENT,
    }
    export = tmp_path / "corrections-2026-12-01.npz"
    printed = corrections("--store", store, "export", "--output", export, "--holdout", 0.25).stdout.splitlines()
    sha256 = hashlib.sha256(export.read_bytes()).hexdigest()
    assert printed == [f"{sha256}  {export}", "model.override { extraData = [ ./corrections-2026-12-01.npz ]; }"]
    with np.load(export) as exported:
        held_out = len(exported["y_test"])
        assert len(exported["y_train"]) + held_out == SENT

    output = tmp_path / "model"
    trained = run_trainer(
        *("--dataset", DATASET, "--epochs", 1, "--train-samples", 1000, "--test-samples", 500),
        *("--extra-data", export, "--min-accuracy", 0.5, "--output", output),
    )
    assert trained.returncode == 0, trained.stderr
    metrics = json.loads((output / "metrics.json").read_text())
    [extra] = metrics["extra_data"]
    assert (extra["sha256"], extra["train_samples"], extra["holdout_samples"]) == (sha256, SENT - held_out, held_out)
    assert re.fullmatch(r"\d\.\d{4}", (output / "accuracy.txt").read_text().strip())
    assert float((output / "accuracy.txt").read_text()) >= 0.5
