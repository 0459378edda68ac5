"""The Open Inference Protocol (KServe v2), proven with Triton's own HTTP client (tritonclient) on a live server.

The server serves two versions, so that `model_version=` is seen to choose; tritonclient sends binary
tensors unless told otherwise, so both the JSON and the binary forms are what it sends, not ours.
"""

import json
import os
import threading
import urllib.error
import urllib.request
from types import SimpleNamespace

import numpy as np
import pytest
from conftest import metric, start_server
from helpers import get, post, stop

from cnn_mnist import __version__
from cnn_mnist.serving.app import create_app

IMAGES = 8


@pytest.fixture(scope="module")
def server(trained_model, tmp_path_factory):
    """A live `cnn-mnist` serving versions 1 and 2 (the same model twice) → its base URL.

    Labels make both serve (unlabelled, only the highest would): `current` (the default) 2, `previous` 1.
    """
    versions = tmp_path_factory.mktemp("v2-versions")
    for version in ("1", "2"):
        os.mkdir(versions / version)
        os.symlink(trained_model / "model.keras", versions / version / "model.keras")
    os.symlink("2", versions / "current")
    os.symlink("1", versions / "previous")
    process, url = start_server(versions)
    yield url
    stop(process)


@pytest.fixture(scope="module")
def triton(server):
    """tritonclient's HTTP client of `server`, its module, error and dtypes (imported here: the Nix check phase,
    which starts no server, does not have tritonclient)."""
    import tritonclient.http as http
    from tritonclient.utils import InferenceServerException, triton_to_np_dtype

    client = http.InferenceServerClient(url=server.removeprefix("http://").rstrip("/"))
    yield SimpleNamespace(http=http, client=client, error=InferenceServerException, dtype=triton_to_np_dtype)
    client.close()


@pytest.fixture(scope="module")
def digits(test_set):
    images, labels = test_set
    return images[:IMAGES], labels[:IMAGES]


def predict_probabilities(server, images, version):
    """What our own /predict answers for the same pixels and version: the reference the v2 answers must equal."""
    status, answers = post(server + "predict", {"pixels": images.tolist(), "version": version})
    assert status == 200, answers
    return np.array([answer["probabilities"] for answer in answers], np.float32)


def infer(triton, array, datatype, version="", binary=True, outputs=None, **options):
    tensor = triton.http.InferInput("input", list(array.shape), datatype)
    tensor.set_data_from_numpy(array, binary_data=binary)
    requested = [triton.http.InferRequestedOutput(name, binary_data=binary) for name in outputs or ()]
    return triton.client.infer("cnn-mnist", [tensor], model_version=version, outputs=requested or None, **options)


def refused(triton, call, status, *words):
    with pytest.raises(triton.error) as caught:
        call()
    assert caught.value.status() == str(status), caught.value
    for word in words:
        assert word in caught.value.message(), caught.value.message()
    return caught.value.message()


def test_health(triton):
    client = triton.client
    assert client.is_server_live() and client.is_server_ready()
    assert client.is_model_ready("cnn-mnist") and client.is_model_ready("cnn-mnist", "1")
    assert client.is_model_ready("cnn-mnist", "2")
    assert not client.is_model_ready("cnn-mnist", "3")
    assert not client.is_model_ready("other")


def test_server_metadata(triton):
    metadata = triton.client.get_server_metadata()
    assert metadata == {"name": "cnn-mnist", "version": __version__, "extensions": ["binary_tensor_data"]}


@pytest.mark.parametrize(("version", "versions"), [("", ["1", "2"]), ("1", ["1"]), ("2", ["2"])])
def test_model_metadata(triton, version, versions):
    metadata = triton.client.get_model_metadata("cnn-mnist", version)
    assert metadata == {
        "name": "cnn-mnist",
        "versions": versions,
        "platform": "keras_keras",
        "inputs": [{"name": "input", "datatype": "FP32", "shape": [-1, 28, 28, 1]}],
        "outputs": [
            {"name": "probabilities", "datatype": "FP32", "shape": [-1, 10]},
            {"name": "digit", "datatype": "INT64", "shape": [-1]},
        ],
    }


@pytest.mark.parametrize("binary", [False, True], ids=["json", "binary"])
@pytest.mark.parametrize(
    ("datatype", "shape"), [("FP32", (28, 28, 1)), ("FP64", (784,)), ("UINT8", (28, 28)), ("UINT8", (784,))]
)
@pytest.mark.parametrize("version", ["1", "2"])
def test_inference_answers_as_predict_does(triton, server, digits, binary, datatype, shape, version):
    images, labels = digits
    pixels = images if datatype == "UINT8" else images / 255
    array = pixels.astype(triton.dtype(datatype)).reshape(-1, *shape)
    result = infer(triton, array, datatype, version, binary, ["probabilities", "digit"], request_id=f"r-{version}")
    answer = result.get_response()
    assert (answer["model_name"], answer["model_version"], answer["id"]) == ("cnn-mnist", version, f"r-{version}")
    for output in answer["outputs"]:
        assert ("parameters" in output and "binary_data_size" in output["parameters"]) == binary, output
        assert ("data" in output) != binary, output
    probabilities, digit = result.as_numpy("probabilities"), result.as_numpy("digit")
    assert probabilities.dtype == np.float32 and probabilities.shape == (IMAGES, 10)
    assert digit.dtype == np.int64 and digit.shape == (IMAGES,)
    np.testing.assert_allclose(probabilities, predict_probabilities(server, images, version), rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(digit, probabilities.argmax(axis=1))
    assert (digit == labels).mean() >= 0.75  # a trained model reads the digits


def test_tritonclients_defaults_send_and_receive_binary(triton, server, digits):
    """No outputs named: tritonclient asks for binary_data_output, and gets both outputs binary."""
    images, _ = digits
    result = infer(triton, images.reshape(-1, 784), "UINT8")
    assert [output["name"] for output in result.get_response()["outputs"]] == ["probabilities", "digit"]
    assert all("binary_data_size" in output["parameters"] for output in result.get_response()["outputs"])
    np.testing.assert_allclose(result.as_numpy("probabilities"), predict_probabilities(server, images, "2"), atol=1e-6)
    assert result.get_response()["model_version"] == "2"  # no version named: the default, the highest


def test_only_the_requested_outputs_are_answered(triton, digits):
    result = infer(triton, digits[0], "UINT8", outputs=["digit"], binary=False)
    assert [output["name"] for output in result.get_response()["outputs"]] == ["digit"]
    assert result.as_numpy("probabilities") is None and result.as_numpy("digit").shape == (IMAGES,)


def test_nested_json_data_over_plain_http(server, digits):
    """tritonclient always sends `data` flat; the protocol allows it nested as the shape too."""
    images, _ = digits
    body = {"inputs": [{"name": "input", "datatype": "UINT8", "shape": [IMAGES, 28, 28], "data": images.tolist()}]}
    status, answer = post(server + "v2/models/cnn-mnist/versions/1/infer", body)
    assert status == 200, answer
    assert answer["outputs"][1]["data"] == predict_probabilities(server, images, "1").argmax(axis=1).tolist()


def test_unknown_models_and_versions_are_404(triton, digits):
    client, array = triton.client, digits[0].reshape(-1, 784)
    refused(triton, lambda: client.get_model_metadata("other"), 404, "unknown model: 'other'")
    refused(triton, lambda: client.get_model_metadata("cnn-mnist", "3"), 404, "'cnn-mnist' version 3 is not found")
    refused(triton, lambda: infer(triton, array, "UINT8", "3"), 404, "version 3 is not found")
    refused(triton, lambda: infer(triton, array, "UINT8", "latest"), 404, "version latest is not found")
    refused(triton, lambda: client.infer("other", []), 404, "unknown model: 'other'")


@pytest.mark.parametrize("binary", [False, True], ids=["json", "binary"])
@pytest.mark.parametrize("datatype", ["INT32", "FP16", "BOOL", "INT64", "UINT16"])
def test_other_datatypes_are_400(triton, digits, datatype, binary):
    array = digits[0].reshape(-1, 784).astype(triton.dtype(datatype))
    refused(triton, lambda: infer(triton, array, datatype, binary=binary), 400, datatype, "is not accepted")


def test_a_shape_that_does_not_match_the_data_is_400(triton, digits):
    for binary, words in ((True, ["binary_data_size is 6272", "needs 4704"]), (False, ["holds 6272 values"])):
        tensor = triton.http.InferInput("input", [IMAGES, 784], "UINT8")
        tensor.set_data_from_numpy(digits[0].reshape(-1, 784), binary_data=binary)
        tensor.set_shape([6, 784])  # the client's own check is passed; the server must see the mismatch
        refused(triton, lambda: triton.client.infer("cnn-mnist", [tensor]), 400, *words)  # noqa: B023 (called at once)
    refused(triton, lambda: infer(triton, digits[0][:, :27], "UINT8"), 400, "input shape [8, 27, 28]")


def test_values_out_of_range_and_wrong_names_are_400(triton, digits):
    refused(triton, lambda: infer(triton, digits[0].astype(np.float32), "FP32"), 400, "FP32 pixels must lie in 0-1")
    tensor = triton.http.InferInput("pixels", [IMAGES, 784], "UINT8")
    tensor.set_data_from_numpy(digits[0].reshape(-1, 784))
    refused(triton, lambda: triton.client.infer("cnn-mnist", [tensor]), 400, 'unknown input "pixels"')
    array = digits[0].reshape(-1, 784)
    refused(triton, lambda: infer(triton, array, "UINT8", outputs=["logits"]), 400, 'unknown output "logits"')


def test_over_the_image_budget_is_413(triton, test_set):
    array = test_set[0][:65].reshape(-1, 784)  # the default budget is 64 images a request
    refused(triton, lambda: infer(triton, array, "UINT8"), 413, "65 images", "at most 64")


def test_a_compressed_body_is_415(triton, digits):
    call = lambda: infer(triton, digits[0], "UINT8", request_compression_algorithm="gzip")  # noqa: E731
    refused(triton, call, 415, "Content-Encoding gzip is not supported")


def test_wrong_methods_are_405_with_allow(server):
    request = urllib.request.Request(server + "v2/models/cnn-mnist/infer")
    with pytest.raises(urllib.error.HTTPError) as caught:
        urllib.request.urlopen(request, timeout=10)
    assert caught.value.code == 405 and "POST" in caught.value.headers["Allow"]
    assert "error" in json.loads(caught.value.read())


def test_v2_routes_are_counted_in_metrics_by_route(server, triton, digits):
    versioned, plain = "/v2/models/<model_name>/versions/<model_version>/infer", "/v2/models/<model_name>/infer"
    calls = [(versioned, "200"), (versioned, "404"), (plain, "400"), ("/v2", "200")]

    def counts():
        text = get(server + "metrics")
        return [metric(text, "cnn_mnist_requests_total", route=route, status=status) or 0 for route, status in calls]

    before = counts()
    infer(triton, digits[0], "UINT8", "1")
    refused(triton, lambda: infer(triton, digits[0], "UINT8", "3"), 404)
    refused(triton, lambda: infer(triton, digits[0].astype(np.int32), "INT32"), 400)
    triton.client.get_server_metadata()
    assert [after - was for after, was in zip(counts(), before, strict=True)] == [1, 1, 1, 1]


def test_server_ready_is_false_while_draining(app, client):
    """SIGTERM's drain (which sets this event) turns ready off, as /readyz: a 4xx is the protocol's "not ready"."""
    assert client.get("/v2/health/ready").status_code == 200
    app.extensions["cnn_mnist"].draining.set()
    try:
        answer = client.get("/v2/health/ready")
        assert answer.status_code == 400 and "draining" in answer.json["error"]
        assert client.get("/v2/health/live").status_code == 200
    finally:
        app.extensions["cnn_mnist"].draining.clear()


def test_inference_goes_through_the_batcher_and_the_in_flight_bound(trained_model, test_set):
    """One slot: a v2 request held inside the batcher's pass fills it, and the next is a 503 with Retry-After."""
    app = create_app({"MODEL": str(trained_model), "MAX_IN_FLIGHT": 1})
    batcher, entered, released = app.extensions["cnn_mnist"].batcher, threading.Event(), threading.Event()
    forward = batcher.predict

    def held(images, predictor):
        entered.set()
        assert released.wait(60), "the test never released the held pass"
        return forward(images, predictor)

    batcher.predict = held
    body = {
        "inputs": [{"name": "input", "datatype": "UINT8", "shape": [1, 784], "data": test_set[0][0].ravel().tolist()}]
    }
    first = []
    thread = threading.Thread(
        target=lambda: first.append(app.test_client().post("/v2/models/cnn-mnist/infer", json=body))
    )
    thread.start()
    try:
        assert entered.wait(60)
        refused = app.test_client().post("/v2/models/cnn-mnist/infer", json=body)
        assert refused.status_code == 503 and refused.headers["Retry-After"] == "1"
        assert refused.json == {"error": "the server is answering 1 predictions already; try again"}
    finally:
        released.set()
        thread.join(60)
    assert first[0].status_code == 200 and first[0].json["outputs"][1]["data"] == [int(test_set[1][0])]
