"""model.h5, the trainer's legacy HDF5 copy of the model: no time stamped in it, and it serves as model.keras does."""

import json
import os
import subprocess
import sys
import time
import urllib.request

import h5py
import keras
import numpy as np
import pytest
from conftest import ROOT, free_port, wait_ready

from cnn_mnist.core.data import sha256_file
from cnn_mnist.serving.app import create_app
from cnn_mnist.training import hdf5


def into_the_next_second():
    """HDF5 stamps whole seconds (time(NULL)): after this, anything written stamps a later second."""
    time.sleep(1.01 - time.time() % 1)


def save_twice(save, tmp_path):
    first, second = tmp_path / "first.h5", tmp_path / "second.h5"
    save(first)
    into_the_next_second()
    save(second)
    return first, second


@pytest.fixture(scope="module")
def small_model():
    """A compiled and fitted Dense model (optimizer state included), in well under a second."""
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3, activation="softmax")], name="small")
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    model.fit(np.ones((8, 4), np.float32), np.zeros(8, np.int32), verbose=0)
    return model


def test_saves_a_second_apart_are_identical(small_model, tmp_path):
    first, second = save_twice(lambda path: hdf5.save_model_h5(small_model, str(path)), tmp_path)
    assert first.read_bytes() == second.read_bytes()
    assert hdf5.timestamped_objects(str(first)) == []
    with h5py.File(first) as file:  # really Keras' legacy format, optimizer state and all
        assert {"model_config", "training_config", "keras_version", "backend"} <= set(file.attrs)
        assert {"model_weights", "optimizer_weights"} <= set(file)


def write_small_file(path, libver="earliest", track_times=False):
    with h5py.File(path, "w", libver=libver) as file:
        file.create_group("group").create_dataset("data", data=np.arange(4.0), track_times=track_times)


@pytest.mark.parametrize(
    "options, stamped",
    [({"libver": "latest"}, ["/", "group"]), ({"track_times": True}, ["group/data"])],
    ids=["version-2-headers", "dataset-track-times"],
)
def test_times_left_on_make_two_saves_differ_and_are_found(options, stamped, tmp_path):
    """Both checks above can fail: the byte comparison and `timestamped_objects`."""
    first, second = save_twice(lambda path: write_small_file(path, **options), tmp_path)
    assert first.read_bytes() != second.read_bytes()
    assert hdf5.timestamped_objects(str(first)) == stamped
    write_small_file(tmp_path / "plain.h5")
    assert hdf5.timestamped_objects(str(tmp_path / "plain.h5")) == []


def test_global_track_order_neither_stamps_our_file_nor_is_changed(small_model, tmp_path):
    """h5py's global track_order makes every group a version-2 header, with times: a plain save gets them."""
    config = h5py.get_config()
    saved, config.track_order = config.track_order, True
    try:
        small_model.save(tmp_path / "plain.h5")
        hdf5.save_model_h5(small_model, str(tmp_path / "ours.h5"))
        assert config.track_order is True  # put back as it was
    finally:
        config.track_order = saved
    assert "/" in hdf5.timestamped_objects(str(tmp_path / "plain.h5"))
    assert hdf5.timestamped_objects(str(tmp_path / "ours.h5")) == []
    hdf5.save_model_h5(small_model, str(tmp_path / "default.h5"))
    assert (tmp_path / "ours.h5").read_bytes() == (tmp_path / "default.h5").read_bytes()


def test_a_stamped_file_fails_the_save(small_model, tmp_path, monkeypatch):
    def save_with_a_time(model, file):
        file.create_dataset("stamped", data=np.zeros(2), track_times=True)

    monkeypatch.setattr(hdf5.legacy_h5_format, "save_model_to_hdf5", save_with_a_time)
    with pytest.raises(RuntimeError, match="HDF5 stamped a time on stamped; the file would not be reproducible"):
        hdf5.save_model_h5(small_model, str(tmp_path / "model.h5"))


# ---- the trained model --------------------------------------------------------------------------------------


@pytest.mark.slow
def test_trained_model_h5_carries_no_time(trained_model):
    assert hdf5.timestamped_objects(str(trained_model / "model.h5")) == []


def answers(model_file, images):
    response = create_app({"MODEL": str(model_file)}).test_client().post("/predict", json={"pixels": images.tolist()})
    assert response.status_code == 200, response.get_data(as_text=True)
    return response.get_json()


@pytest.mark.slow
def test_h5_serves_the_same_probabilities_as_the_keras(trained_model, test_set):
    """MODEL=…/model.h5, as the seed project serves a built model; the same weights, so the same float32s."""
    images, labels = test_set[0][:64], test_set[1][:64]
    from_h5, from_keras = answers(trained_model / "model.h5", images), answers(trained_model / "model.keras", images)
    assert {answer["model"]["sha256"] for answer in from_h5} == {sha256_file(trained_model / "model.h5")}
    assert {answer["model"]["sha256"] for answer in from_keras} == {sha256_file(trained_model / "model.keras")}
    np.testing.assert_array_equal(
        [answer["probabilities"] for answer in from_h5], [answer["probabilities"] for answer in from_keras]
    )
    assert np.mean([answer["digit"] for answer in from_h5] == labels) >= 0.9


def test_the_seed_command_serves_model_h5(trained_model, test_set):
    """`MODEL=$(nix-build -A model)/model.h5 $(nix-build -A frontend)/bin/cnn-mnist`: MODEL alone names it."""
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "cnn_mnist.serving.cli", "--port", str(port)],
        env={**os.environ, "MODEL": str(trained_model / "model.h5")},
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        url = f"http://127.0.0.1:{port}/"
        wait_ready(url, process)
        images = test_set[0][:16]
        request = urllib.request.Request(
            url + "predict",
            data=json.dumps({"pixels": images.tolist()}).encode(),
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=30) as response:
            served = json.load(response)
    finally:
        process.terminate()
        process.wait(timeout=30)
    assert {answer["model"]["sha256"] for answer in served} == {sha256_file(trained_model / "model.h5")}
    expected = answers(trained_model / "model.keras", images)
    np.testing.assert_array_equal([a["probabilities"] for a in served], [a["probabilities"] for a in expected])
