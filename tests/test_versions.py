"""Several versions at once: labels, the default version, TF Serving's versions/labels routes (in-process).

The request and answer forms follow TensorFlow Serving's REST API
(https://www.tensorflow.org/tfx/serving/api_rest): `POST /v1/models/NAME[/versions/N|/labels/L]:predict`,
`GET /v1/models/NAME[/versions/N|/labels/L][/metadata]`; errors are `{"error": "..."}` with TF Serving's
wording and status: an unknown version is NOT_FOUND (404, "Servable not found for request:
Specific(NAME, N)"; for the status route "Could not find version N of model NAME"), an unknown label is
INVALID_ARGUMENT (400, "Unrecognized servable version label: L"), as in TF Serving's server_core.cc and
its http_rest_api_handler_test.cc.
"""

import io
import json
import os
import shutil
import signal

import keras
import numpy as np
import pytest
from conftest import DATASET, metric, start_server
from helpers import Hammer, get, stop, wait_until
from model_variants import nudged, save_variant
from PIL import Image

from cnn_mnist.serving.app import create_app
from cnn_mnist.serving.inference import ModelCheckError
from cnn_mnist.serving.model_store import scan

TF = "/v1/models/cnn-mnist"


@pytest.fixture(scope="module")
def digits():
    with np.load(DATASET) as data:
        return data["x_test"][:4]


@pytest.fixture(scope="module")
def nudged_model(trained_model, tmp_path_factory):
    path = tmp_path_factory.mktemp("nudged") / "model.keras"
    save_variant(trained_model / "model.keras", path, nudged)
    return path


def add_version(directory, version, model_file):
    (directory / version).mkdir()
    shutil.copy(model_file, directory / version / "model.keras")


def relabel(directory, label, target):
    link = directory / label
    os.symlink(target, str(link) + ".new")
    os.replace(str(link) + ".new", link)


def serve(directory, **config):
    app = create_app({"MODEL": str(directory), "MAX_REGRESSION": 1.0, **config})
    return app.test_client(), app.extensions["cnn_mnist"].store


def states(client, path=TF):
    status = client.get(path).json["model_version_status"]
    return {entry["version"]: (entry["state"], entry["status"]["error_code"]) for entry in status}


def probabilities(model_file, images):
    model = keras.saving.load_model(model_file, compile=False)
    return np.asarray(model(images[..., None].astype(np.float32) / 255, training=False))


def test_labelled_versions_serve_side_by_side_as_tf_serving_does(tmp_path, trained_model, nudged_model, digits):
    add_version(tmp_path, "1", trained_model / "model.keras")
    add_version(tmp_path, "2", trained_model / "model.keras")
    add_version(tmp_path, "3", nudged_model)
    os.symlink("2", tmp_path / "stable")
    os.symlink(tmp_path / "3", tmp_path / "canary")  # absolute, into the same folder
    client, _ = serve(tmp_path)

    status = client.get(TF).json["model_version_status"]
    assert [s["version"] for s in status] == ["3", "2", "1"]
    assert states(client) == {"3": ("AVAILABLE", "OK"), "2": ("AVAILABLE", "OK"), "1": ("END", "OK")}

    instances = {"instances": (digits[..., None] / 255).tolist()}
    by_version = {
        v: np.array(client.post(f"{TF}/versions/{v}:predict", json=instances).json["predictions"]) for v in ("2", "3")
    }
    np.testing.assert_allclose(by_version["3"], probabilities(nudged_model, digits), atol=1e-5)
    np.testing.assert_allclose(by_version["2"], probabilities(trained_model / "model.keras", digits), atol=1e-5)
    assert not np.allclose(by_version["2"], by_version["3"], rtol=1e-3, atol=0)
    for path, version in (
        (f"{TF}/labels/canary:predict", "3"),
        (f"{TF}/labels/stable:predict", "2"),
        (f"{TF}:predict", "2"),
    ):
        np.testing.assert_allclose(client.post(path, json=instances).json["predictions"], by_version[version])

    pixels = digits[0].tolist()
    for extra, version in (({"version": 3}, "3"), ({"version": "2"}, "2"), ({"label": "canary"}, "3"), ({}, "2")):
        assert client.post("/predict", json={"pixels": pixels, **extra}).json["model"]["version"] == version
    png = io.BytesIO()
    Image.fromarray(digits[0]).save(png, "PNG")
    upload = {"image": (io.BytesIO(png.getvalue()), "digit.png"), "label": "canary"}  # a form field beside the file
    assert client.post("/predict", data=upload, content_type="multipart/form-data").json["model"]["version"] == "3"


def test_unknown_versions_and_labels_get_tf_servings_errors(tmp_path, trained_model, digits):
    add_version(tmp_path, "1", trained_model / "model.keras")
    add_version(tmp_path, "2", trained_model / "model.keras")
    os.symlink("2", tmp_path / "stable")
    client, _ = serve(tmp_path)
    instances = {"instances": (digits[..., None] / 255).tolist()}

    unserved = client.post(f"{TF}/versions/1:predict", json=instances)  # on disk, not labelled: not served
    assert unserved.status_code == 404
    assert unserved.json == {"error": "Servable not found for request: Specific(cnn-mnist, 1)"}
    assert client.post(f"{TF}/versions/9:predict", json=instances).status_code == 404
    label = client.post(f"{TF}/labels/canary:predict", json=instances)
    assert (label.status_code, label.json) == (400, {"error": "Unrecognized servable version label: canary"})
    status = client.get(f"{TF}/versions/9")
    assert (status.status_code, status.json) == (404, {"error": "Could not find version 9 of model cnn-mnist"})
    assert client.get(f"{TF}/labels/canary/metadata").status_code == 400
    assert client.get(f"{TF}/versions/1/metadata").status_code == 404

    assert states(client, f"{TF}/versions/1") == {"1": ("END", "OK")}
    assert states(client, f"{TF}/labels/stable") == {"2": ("AVAILABLE", "OK")}
    assert states(client, f"{TF}/versions/002") == {"2": ("AVAILABLE", "OK")}  # a number, as TF Serving reads it
    assert client.get(f"{TF}/versions/2/metadata").json["model_spec"]["version"] == "2"
    assert client.get(f"{TF}/labels/stable/metadata").json["model_spec"]["version"] == "2"

    pixels = digits[0].tolist()
    for body, status in (
        ({"version": 1}, 404),
        ({"label": "canary"}, 400),
        ({"version": 2, "label": "stable"}, 400),
        ({"version": "two"}, 400),
        ({"version": True}, 400),
        ({"label": 2}, 400),
    ):
        answer = client.post("/predict", json={"pixels": pixels, **body})
        assert answer.status_code == status and "error" in answer.json, body


def test_readyz_and_metrics_show_each_versions_canary_accuracy(tmp_path, trained_model, nudged_model):
    add_version(tmp_path, "1", trained_model / "model.keras")
    add_version(tmp_path, "2", nudged_model)
    os.symlink("1", tmp_path / "current")
    os.symlink("2", tmp_path / "canary")
    client, store = serve(tmp_path)
    ready = client.get("/readyz").json
    assert ready["model"]["version"] == "1" and 0.9 <= ready["model"]["canary_accuracy"] <= 1
    assert ready["labels"] == {"canary": "2", "current": "1"}
    text = client.get("/metrics").get_data(as_text=True)
    for version in ("1", "2"):
        assert metric(text, "cnn_mnist_canary_accuracy", version=version) == ready["versions"][version]
    os.remove(tmp_path / "canary")
    assert store.reload() is True
    text = client.get("/metrics").get_data(as_text=True)
    assert metric(text, "cnn_mnist_canary_accuracy", version="2") is None  # no longer served: no gauge
    assert metric(text, "cnn_mnist_canary_accuracy", version="1") == ready["model"]["canary_accuracy"]


def test_store_paths_behind_the_versions_are_not_followed_for_the_version(tmp_path, trained_model):
    """The NixOS module's layout: 1 and 2 link into the store, labels are relative links to them."""
    store_paths = []
    for name in ("aaaa-cnn-mnist-model", "bbbb-cnn-mnist-model"):
        (tmp_path / "store" / name).mkdir(parents=True)
        shutil.copy(trained_model / "model.keras", tmp_path / "store" / name / "model.keras")
        store_paths.append(tmp_path / "store" / name)
    versions = tmp_path / "versions"
    versions.mkdir()
    os.symlink(store_paths[0], versions / "1")
    os.symlink(store_paths[1], versions / "2")
    os.symlink("1", versions / "stable")
    client, _ = serve(versions)
    assert client.get("/readyz").json["model"]["version"] == "1"
    assert states(client) == {"2": ("END", "OK"), "1": ("AVAILABLE", "OK")}


def test_the_default_version_is_current_then_stable_then_the_highest(tmp_path):
    for version in ("1", "2", "10"):
        (tmp_path / version).mkdir()
        (tmp_path / version / "model.keras").write_bytes(b"scan only looks for the file")
    assert scan(str(tmp_path)).default == "10"
    os.symlink("2", tmp_path / "stable")
    assert scan(str(tmp_path)).default == "2"
    os.symlink(str(tmp_path / "1") + "/", tmp_path / "current")  # absolute, with a trailing slash
    layout = scan(str(tmp_path))
    assert (layout.default, layout.labels) == ("1", {"current": "1", "stable": "2"})


@pytest.mark.parametrize("target", ["7", "../elsewhere/2", "/somewhere/else/2", "stable"])
def test_a_label_must_name_a_version_of_the_same_folder(tmp_path, target):
    (tmp_path / "2").mkdir()
    (tmp_path / "2" / "model.keras").write_bytes(b"x")
    os.symlink(target, tmp_path / "canary")
    layout = scan(str(tmp_path))
    assert layout.labels == {} and "is not a version in" in str(layout.label_errors["canary"])


def test_a_label_pointing_at_a_missing_version_is_refused_at_start_and_on_reload(tmp_path, trained_model, digits):
    add_version(tmp_path, "2", trained_model / "model.keras")
    os.symlink("7", tmp_path / "canary")
    with pytest.raises(ModelCheckError, match="label canary -> 7 is not a version"):
        create_app({"MODEL": str(tmp_path)})
    relabel(tmp_path, "canary", "2")
    client, store = serve(tmp_path)
    relabel(tmp_path, "canary", "7")
    assert store.reload() is False
    assert "label canary -> 7 is not a version" in store.last_error
    answer = client.post(f"{TF}/labels/canary:predict", json={"instances": (digits[..., None] / 255).tolist()})
    assert answer.status_code == 200  # the label keeps the version it named, as TF Serving keeps it
    assert metric(client.get("/metrics").get_data(as_text=True), "cnn_mnist_model_swaps_total", result="refused") == 1


def test_a_version_directory_without_a_model(tmp_path, trained_model):
    add_version(tmp_path, "2", trained_model / "model.keras")
    (tmp_path / "3").mkdir()
    os.symlink("3", tmp_path / "current")
    with pytest.raises(ModelCheckError, match="no model.keras or model.h5"):
        create_app({"MODEL": str(tmp_path)})
    relabel(tmp_path, "current", "2")
    client, store = serve(tmp_path)
    assert states(client)["3"] == ("END", "NOT_FOUND")  # not wanted, but its fault is shown
    relabel(tmp_path, "current", "3")
    assert store.reload() is False
    assert client.get("/readyz").json["model"]["version"] == "2"
    status = {s["version"]: s for s in client.get(TF).json["model_version_status"]}
    assert status["3"]["state"] == "END" and "no model.keras" in status["3"]["status"]["error_message"]
    assert status["2"]["status"] == {"error_code": "OK", "error_message": ""}


def test_a_corrupt_model_is_reported_on_its_own_version_with_the_real_reason(tmp_path, trained_model):
    add_version(tmp_path, "2", trained_model / "model.keras")
    client, store = serve(tmp_path)
    (tmp_path / "3").mkdir()
    data = (trained_model / "model.keras").read_bytes()
    (tmp_path / "3" / "model.keras").write_bytes(data[: len(data) // 2])  # a copy cut short
    assert store.reload() is False
    status = {s["version"]: s for s in client.get(TF).json["model_version_status"]}
    assert status["3"]["state"] == "END" and status["3"]["status"]["error_code"] == "DATA_LOSS"
    message = status["3"]["status"]["error_message"]
    assert "corrupt or truncated" in message and "not found" not in message.lower()
    assert status["2"]["state"] == "AVAILABLE" and 0.9 <= client.get("/readyz").json["versions"]["2"] <= 1
    assert status["2"]["status"] == {"error_code": "OK", "error_message": ""}


def test_versions_appear_change_and_disappear_on_reload(tmp_path, trained_model, nudged_model):
    add_version(tmp_path, "1", trained_model / "model.keras")
    add_version(tmp_path, "2", trained_model / "model.keras")
    os.symlink("2", tmp_path / "stable")
    client, store = serve(tmp_path)
    add_version(tmp_path, "3", nudged_model)
    os.symlink("3", tmp_path / "canary")
    assert store.reload() is True
    assert states(client) == {"3": ("AVAILABLE", "OK"), "2": ("AVAILABLE", "OK"), "1": ("END", "OK")}
    relabel(tmp_path, "canary", "1")  # the canary moves to another version
    assert store.reload() is True
    assert states(client) == {"3": ("END", "OK"), "2": ("AVAILABLE", "OK"), "1": ("AVAILABLE", "OK")}
    relabel(tmp_path, "stable", "3")  # a promotion is a change of label
    os.remove(tmp_path / "canary")
    shutil.rmtree(tmp_path / "1")
    assert store.reload() is True
    assert states(client) == {"3": ("AVAILABLE", "OK"), "2": ("END", "OK")}
    assert client.get("/readyz").json["model"]["version"] == "3"


@pytest.mark.slow
def test_versions_appear_change_and_disappear_under_load_without_a_failed_request(tmp_path, trained_model, digits):
    """A canary appears, is promoted to stable, and the old versions go, while clients ask for both."""
    versions = tmp_path / "versions"
    versions.mkdir()
    for version in ("1", "2"):
        add_version(versions, version, trained_model / "model.keras")
    os.symlink("1", versions / "stable")
    process, url = start_server(versions)
    pixels = digits[0].tolist()
    default = Hammer(url, {"pixels": pixels}, threads=2)
    stable = Hammer(url, {"pixels": pixels, "label": "stable"}, threads=2)

    def served():
        return {s["version"]: s["state"] for s in json.loads(get(url + TF.lstrip("/")))["model_version_status"]}

    try:
        for hammer in (default, stable):
            hammer.wait_for(10)
        staging = versions / ".staging-3"
        staging.mkdir()
        shutil.copy(trained_model / "model.keras", staging / "model.keras")
        staging.rename(versions / "3")
        os.symlink("3", versions / "canary")
        process.send_signal(signal.SIGHUP)
        wait_until(lambda: served() == {"3": "AVAILABLE", "2": "END", "1": "AVAILABLE"})
        stable.wait_for(10)
        relabel(versions, "stable", "3")  # the promotion
        os.remove(versions / "canary")
        process.send_signal(signal.SIGHUP)
        wait_until(lambda: served() == {"3": "AVAILABLE", "2": "END", "1": "END"})
        stable.wait_for(10)
        shutil.rmtree(versions / "1")
        shutil.rmtree(versions / "2")
        process.send_signal(signal.SIGHUP)
        wait_until(lambda: served() == {"3": "AVAILABLE"})
        for hammer in (default, stable):
            hammer.wait_for(10)
    finally:
        answers = [answer for hammer in (default, stable) for thread in hammer.stop() for answer in thread]
        stop(process)
    assert [answer for answer in answers if answer[0] != 200] == []
    for hammer in (default, stable):
        for thread in hammer.results:
            seen = [version for _, version in thread]
            assert seen[0] == "1" and seen[-1] == "3" and seen == sorted(seen), seen  # 1 … 1 3 … 3, never back


def test_labels_through_a_linked_versions_directory(tmp_path):
    """NixOS: MODEL is an /etc link to a store directory whose labels may be absolute store paths."""
    store = tmp_path / "store" / "xyz-cnn-mnist-versions"
    for version in ("1", "2"):
        (tmp_path / "store" / f"m{version}").mkdir(parents=True)
        (tmp_path / "store" / f"m{version}" / "model.keras").write_bytes(b"scan only looks for the file")
    store.mkdir()
    os.symlink(tmp_path / "store" / "m1", store / "1")
    os.symlink(tmp_path / "store" / "m2", store / "2")
    os.symlink(store / "2", store / "stable")  # absolute, through the store path of the directory
    os.symlink("1", store / "canary")
    os.symlink(store, tmp_path / "etc-models")
    layout = scan(str(tmp_path / "etc-models"))
    assert (layout.default, layout.labels, layout.label_errors) == ("2", {"canary": "1", "stable": "2"}, {})
    assert layout.models["2"] == str(tmp_path / "etc-models" / "2" / "model.keras")
