"""The canary check: the shipped set, --canary, --min-accuracy, --max-regression, and refusals at SIGHUP under load.

Bad models are made cheaply from the trained one (tests/model_variants.py): `wrong_everywhere` permutes
the output layer (canary accuracy ≈ 0, below any floor), `confuses_zero_and_one` swaps two classes
(≈ 21 points worse: above a 0.5 floor, far beyond a 0.01 regression).
"""

import gzip
import json
import os
import shutil
import signal
import struct
import threading

import numpy as np
import pytest
from conftest import DATASET, ROOT, metric, start_server
from helpers import Hammer, assert_usage_error, get, run_cli, stop, wait_until
from model_variants import confuses_zero_and_one, save_variant, wrong_everywhere

from cnn_mnist.core.errors import UsageError
from cnn_mnist.serving import model_store
from cnn_mnist.serving.app import create_app
from cnn_mnist.serving.canary import SHIPPED, load_canary
from cnn_mnist.serving.inference import ModelCheckError

TF = "v1/models/cnn-mnist"


def write_idx(path, array):
    header = struct.pack(f">BBBB{array.ndim}I", 0, 0, 0x08, array.ndim, *array.shape)
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "wb") as stream:
        stream.write(header + array.astype(np.uint8).tobytes())


def test_the_shipped_canary_set_is_the_first_1000_official_test_digits(test_set):
    canary = load_canary()
    assert canary.images.shape == (1000, 28, 28, 1) and canary.images.dtype == np.float32
    np.testing.assert_array_equal(canary.labels, test_set[1][:1000])
    np.testing.assert_array_equal(np.rint(canary.images[..., 0] * 255).astype(np.uint8), test_set[0][:1000])
    assert SHIPPED.relative_to(ROOT / "cnn_mnist") and os.path.getsize(SHIPPED) < 400_000


@pytest.mark.parametrize("suffix", ["", ".gz"])
def test_a_test_set_only_idx_directory_is_a_canary_set(tmp_path, test_set, suffix):
    write_idx(tmp_path / f"t10k-images-idx3-ubyte{suffix}", test_set[0][:300])
    write_idx(tmp_path / f"t10k-labels-idx1-ubyte{suffix}", test_set[1][:300])
    canary = load_canary(tmp_path)
    assert canary.images.shape == (300, 28, 28, 1)
    np.testing.assert_array_equal(canary.labels, test_set[1][:300])


def test_a_keras_mnist_npz_is_a_canary_set():
    assert len(load_canary(DATASET).labels) == 10_000


@pytest.mark.parametrize(
    "make, words",
    [
        (lambda p: p.write_text("digit,label\n"), "not a readable .npz"),
        (lambda p: np.savez(p, x_train=np.zeros((2, 28, 28), np.uint8)), "x_test and y_test"),
        (lambda p: np.savez(p, x_test=np.zeros((2, 32, 32), np.uint8), y_test=np.zeros(2, np.uint8)), "(N, 28, 28)"),
        (lambda p: np.savez(p, x_test=np.zeros((2, 28, 28), np.uint8), y_test=np.array([3, 12])), "0..9"),
        (lambda p: np.savez(p, x_test=np.zeros((2, 28, 28), np.float64), y_test=np.zeros(2, np.uint8)), "uint8"),
        (lambda p: np.save(p, np.zeros((2, 28, 28), np.uint8)), "single .npy"),
        (lambda p: p.mkdir(), "t10k-images-idx3-ubyte"),
        (lambda p: None, "not found"),
    ],
)
def test_a_canary_that_is_not_mnist_is_a_clear_error(tmp_path, make, words):
    path = tmp_path / "canary.npz"
    make(path)
    if path.with_suffix(".npz.npy").exists():
        path.with_suffix(".npz.npy").rename(path)
    with pytest.raises(UsageError) as caught:
        load_canary(path)
    assert words in str(caught.value)


@pytest.mark.parametrize(
    "args, words",
    [
        (["--min-accuracy", "1.5"], ["--min-accuracy", "between 0 and 1", "1.5"]),
        (["--min-accuracy", "nan"], ["--min-accuracy"]),
        (["--max-regression", "-0.1"], ["--max-regression", "between 0 and 1"]),
        (["--canary", "README.md"], ["README.md", "not a readable .npz"]),
    ],
)
def test_canary_usage_errors_come_before_loading_anything(args, words):
    result = run_cli("--model", "/nonexistent/model.keras", *args)  # the model would fail later, if loaded
    assert_usage_error(result, *words)


def test_a_model_below_the_floor_does_not_start(tmp_path, trained_model):
    save_variant(trained_model / "model.keras", tmp_path / "bad" / "model.keras", wrong_everywhere)
    result = run_cli("--model", tmp_path / "bad", "--port", "0")
    assert_usage_error(result, "version 1 scores", "below the floor 0.9000")
    with pytest.raises(ModelCheckError, match="below the floor"):  # and in-process, with a custom canary
        create_app({"MODEL": str(tmp_path / "bad"), "CANARY": str(DATASET)})


def test_the_floor_can_be_lowered_and_the_score_is_published(tmp_path, trained_model):
    save_variant(trained_model / "model.keras", tmp_path / "bad" / "model.keras", confuses_zero_and_one)
    client = create_app({"MODEL": str(tmp_path / "bad"), "MIN_ACCURACY": 0.5}).test_client()
    accuracy = client.get("/readyz").json["model"]["canary_accuracy"]
    assert 0.5 < accuracy < 0.85  # 211 of the 1,000 digits are 0s and 1s, all now wrong
    text = client.get("/metrics").get_data(as_text=True)
    assert metric(text, "cnn_mnist_canary_accuracy", version="1") == accuracy


def test_requests_are_answered_while_a_candidate_is_scored(tmp_path, trained_model, test_set, monkeypatch):
    for version in ("1", "2"):
        (tmp_path / version).mkdir()
        shutil.copy(trained_model / "model.keras", tmp_path / version / "model.keras")
    os.symlink("1", tmp_path / "current")
    app = create_app({"MODEL": str(tmp_path)})
    client, store = app.test_client(), app.extensions["cnn_mnist"].store
    scoring, release = threading.Event(), threading.Event()

    def held_score(predictor, canary):  # holds the reload inside the candidate's canary check
        scoring.set()
        release.wait(timeout=60)
        return score(predictor, canary)

    score = model_store.score
    monkeypatch.setattr(model_store, "score", held_score)
    os.symlink("2", tmp_path / "current.new")
    os.replace(tmp_path / "current.new", tmp_path / "current")
    reload = threading.Thread(target=store.reload, daemon=True)
    reload.start()
    try:
        assert scoring.wait(timeout=60)
        for image in test_set[0][:5]:
            answer = client.post("/predict", json={"pixels": image.tolist()})
            assert answer.status_code == 200 and answer.json["model"]["version"] == "1"
        states = {s["version"]: s["state"] for s in client.get(f"/{TF}").json["model_version_status"]}
        assert states == {"2": "LOADING", "1": "AVAILABLE"}
    finally:
        release.set()
        reload.join(timeout=120)
    assert client.get("/readyz").json["model"]["version"] == "2"


@pytest.fixture(scope="module")
def live(trained_model, tmp_path_factory):
    """A server on versions/1 (`current -> 1`) with a floor of 0.5, under a load of 4 clients."""
    versions = tmp_path_factory.mktemp("canary-live") / "versions"
    (versions / "1").mkdir(parents=True)
    shutil.copy(trained_model / "model.keras", versions / "1" / "model.keras")
    os.symlink("1", versions / "current")
    process, url = start_server(versions, "--threads", 8, "--min-accuracy", 0.5)
    with np.load(DATASET) as data:
        pixels = data["x_test"][0].tolist()
    yield versions, process, url, pixels
    stop(process)


def refused_under_load(live, trained_model, version, variant):
    """Add `version` (a variant of the trained model), point `current` at it, SIGHUP under load; → its status."""
    versions, process, url, pixels = live
    save_variant(trained_model / "model.keras", versions / f".staging-{version}" / "model.keras", variant)
    os.rename(versions / f".staging-{version}", versions / version)
    os.symlink(version, versions / "current.new")
    os.replace(versions / "current.new", versions / "current")
    refused = metric(get(url + "metrics"), "cnn_mnist_model_swaps_total", result="refused") or 0
    hammer = Hammer(url, {"pixels": pixels})
    try:
        hammer.wait_for(20)
        process.send_signal(signal.SIGHUP)
        wait_until(lambda: metric(get(url + "metrics"), "cnn_mnist_model_swaps_total", result="refused") == refused + 1)
        hammer.wait_for(20)
    finally:
        results = [answer for thread in hammer.stop() for answer in thread]
    assert results and all(answer == (200, "1") for answer in results), {a for a in results if a != (200, "1")}
    ready = json.loads(get(url + "readyz"))
    assert ready["model"]["version"] == "1" and ready["model"]["canary_accuracy"] > 0.9
    status = {s["version"]: s for s in json.loads(get(url + TF))["model_version_status"]}
    assert status["1"]["state"] == "AVAILABLE" and status["1"]["status"]["error_code"] == "OK"
    assert status[version]["state"] == "END" and status[version]["status"]["error_code"] == "FAILED_PRECONDITION"
    return status[version]["status"]["error_message"]


def test_sighup_refuses_a_model_below_the_floor_under_load(live, trained_model):
    message = refused_under_load(live, trained_model, "2", wrong_everywhere)
    assert "version 2 scores" in message and "below the floor 0.5000" in message


def test_sighup_refuses_a_model_that_regresses_beyond_the_limit_under_load(live, trained_model):
    message = refused_under_load(live, trained_model, "3", confuses_zero_and_one)
    assert "version 3 scores" in message and "more than 0.0100 below version 1 now serving" in message
