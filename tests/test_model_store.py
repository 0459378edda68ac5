"""Versioned model directories and reloads: which version serves, swaps, refusals (in-process)."""

import os
import shutil
import threading

import pytest
from conftest import metric
from model_variants import nudged, save_variant

from cnn_mnist.core.data import sha256_file
from cnn_mnist.serving import model_store
from cnn_mnist.serving.app import create_app

TF = "/v1/models/cnn-mnist"


@pytest.fixture
def versions(tmp_path, trained_model):
    """A directory of versions 1/ and 2/, each a copy of the trained model."""
    for version in ("1", "2"):
        (tmp_path / version).mkdir()
        shutil.copy(trained_model / "model.keras", tmp_path / version / "model.keras")
    return tmp_path


def test_highest_version_serves_by_default(versions, test_set):
    client = create_app({"MODEL": str(versions)}).test_client()
    answer = client.post("/predict", json={"pixels": test_set[0][0].tolist()}).json
    assert answer["model"]["version"] == "2"
    states = {s["version"]: s["state"] for s in client.get(TF).json["model_version_status"]}
    assert states == {"2": "AVAILABLE", "1": "END"}
    assert client.get(f"{TF}/metadata").json["model_spec"]["version"] == "2"


def test_current_symlink_picks_the_version_and_reload_follows_it(versions, test_set):
    os.symlink("1", versions / "current")
    app = create_app({"MODEL": str(versions)})
    client, store = app.test_client(), app.extensions["cnn_mnist"].store
    pixels = {"pixels": test_set[0][0].tolist()}
    assert client.post("/predict", json=pixels).json["model"]["version"] == "1"
    os.remove(versions / "current")
    os.symlink("2", versions / "current")
    assert store.reload() is True
    assert client.post("/predict", json=pixels).json["model"]["version"] == "2"
    states = {s["version"]: s["state"] for s in client.get(TF).json["model_version_status"]}
    assert states == {"2": "AVAILABLE", "1": "END"}
    text = client.get("/metrics").get_data(as_text=True)
    assert metric(text, "cnn_mnist_model_swaps_total", result="swapped") == 1
    assert metric(text, "cnn_mnist_model_version") == 2
    assert store.reload() is False  # nothing new: no swap
    assert metric(client.get("/metrics").get_data(as_text=True), "cnn_mnist_model_swaps_total", result="swapped") == 1


def test_bad_versions_are_refused_and_the_old_one_keeps_serving(versions, test_set):
    import keras

    app = create_app({"MODEL": str(versions)})
    client, store = app.test_client(), app.extensions["cnn_mnist"].store
    (versions / "3").mkdir()
    (versions / "3" / "model.keras").write_bytes(os.urandom(4096))
    assert store.reload() is False
    five = keras.Sequential([keras.Input((28, 28, 1)), keras.layers.Flatten(), keras.layers.Dense(5, "softmax")])
    (versions / "4").mkdir()
    five.save(versions / "4" / "model.keras")
    assert store.reload() is False
    assert "(None, 5)" in store.last_error
    answer = client.post("/predict", json={"pixels": test_set[0][0].tolist()})
    assert answer.status_code == 200 and answer.json["model"]["version"] == "2"
    text = client.get("/metrics").get_data(as_text=True)
    assert metric(text, "cnn_mnist_model_swaps_total", result="refused") == 2
    assert metric(text, "cnn_mnist_model_version") == 2
    states = {s["version"]: s["state"] for s in client.get(TF).json["model_version_status"]}
    assert states["2"] == "AVAILABLE"


def test_current_symlink_to_a_missing_version_is_refused(versions):
    os.symlink("7", versions / "current")
    with pytest.raises(Exception, match="not a version"):
        create_app({"MODEL": str(versions)})


def test_reload_picks_up_a_model_file_replaced_in_place(tmp_path, trained_model):
    import keras

    shutil.copy(trained_model / "model.keras", tmp_path / "model.keras")
    store = create_app({"MODEL": str(tmp_path)}).extensions["cnn_mnist"].store
    model = keras.saving.load_model(tmp_path / "model.keras", compile=False)
    model.set_weights([*model.get_weights()[:-1], model.get_weights()[-1] + 0.5])
    model.save(tmp_path / "retrained.keras")
    os.replace(tmp_path / "retrained.keras", tmp_path / "model.keras")
    assert store.reload() is True
    assert store.predictor.info.sha256 == sha256_file(tmp_path / "model.keras")


def test_a_reload_asked_for_during_a_reload_is_not_lost(versions, trained_model, monkeypatch):
    store = create_app({"MODEL": str(versions)}).extensions["cnn_mnist"].store
    (versions / "3").mkdir()
    shutil.copy(trained_model / "model.keras", versions / "3" / "model.keras")
    loading, release = threading.Event(), threading.Event()
    real_predictor = model_store.Predictor

    def slow_predictor(*args, **kwargs):  # holds the first reload inside its model check
        loading.set()
        release.wait(timeout=60)
        return real_predictor(*args, **kwargs)

    monkeypatch.setattr(model_store, "Predictor", slow_predictor)
    first = threading.Thread(target=store.reload, daemon=True)
    first.start()
    assert loading.wait(timeout=60)
    (versions / "4").mkdir()  # the model changes again while version 3 is being checked
    shutil.copy(trained_model / "model.keras", versions / "4" / "model.keras")
    assert store.reload() is False  # it does not wait: the running reload takes the request over
    release.set()
    first.join(timeout=120)
    assert store.predictor.info.version == "4"


def test_status_is_whole_at_every_write_a_reload_makes(versions, trained_model, monkeypatch):
    """status() read after each assignment a reload makes to the store: what a concurrent reader can see.

    Only the status before, while version 3 loads, or after may show; never half of a swap.
    """
    store = create_app({"MODEL": str(versions)}).extensions["cnn_mnist"].store
    before, seen = store.status(), []

    def observed(self, name, value):
        object.__setattr__(self, name, value)
        seen.append(self.status())

    monkeypatch.setattr(model_store.ModelStore, "__setattr__", observed)
    (versions / "3").mkdir()
    shutil.copy(trained_model / "model.keras", versions / "3" / "model.keras")
    assert store.reload() is True
    after = store.status()
    assert [(s["version"], s["state"]) for s in after] == [("3", "AVAILABLE"), ("2", "END"), ("1", "END")]
    loading = [{"version": "3", "state": "LOADING", "status": {"error_code": "OK", "error_message": ""}}, *before]
    assert seen and all(status in (before, loading, after) for status in seen), seen


def test_a_file_replaced_during_its_load_serves_under_its_own_hash_and_the_next_reload_takes_the_new_one(
    tmp_path, trained_model, monkeypatch
):
    """The file is replaced just after Keras read it: the hash must be of what was loaded, not of the newcomer."""
    import keras

    original, served = trained_model / "model.keras", tmp_path / "model.keras"
    shutil.copy(original, served)
    store = create_app({"MODEL": str(tmp_path)}).extensions["cnn_mnist"].store
    save_variant(original, tmp_path / "staging" / "nudged.keras", nudged)
    nudged_sha = sha256_file(tmp_path / "staging" / "nudged.keras")
    os.replace(tmp_path / "staging" / "nudged.keras", served)  # what the reload finds ...
    shutil.copy(original, tmp_path / "staging" / "original.keras")
    load_model = keras.saving.load_model

    def load_then_replace(*args, **kwargs):  # ... and the original is back the moment Keras has read it
        model = load_model(*args, **kwargs)
        os.replace(tmp_path / "staging" / "original.keras", served)
        return model

    monkeypatch.setattr(keras.saving, "load_model", load_then_replace)
    assert store.reload() is True
    monkeypatch.undo()
    assert store.predictor.info.sha256 == nudged_sha  # the weights that serve, under their own hash
    assert store.reload() is True  # the file differs from what serves: it loads
    assert store.predictor.info.sha256 == sha256_file(served) == sha256_file(original)
