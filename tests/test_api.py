"""The web API in-process (Flask's test client): every route, every input form, versions and reloads."""

import base64
import io

import jsonschema_rs
import numpy as np
import pytest
from conftest import metric
from PIL import Image

from cnn_mnist.core.data import sha256_file
from cnn_mnist.serving.app import DEFAULTS, create_app
from cnn_mnist.serving.inference import Predictor

TF = "/v1/models/cnn-mnist"


@pytest.fixture(scope="module")
def predictor(trained_model):
    """The model's direct output, without the web layer."""
    return Predictor(str(trained_model / "model.keras"), "1")


def png(array, mode="L", fmt="PNG") -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(np.asarray(array, np.uint8), mode).save(buffer, fmt)
    return buffer.getvalue()


def expected_digits(predictor, images):
    return predictor.predict(np.asarray(images, np.float32).reshape(-1, 28, 28, 1) / 255).argmax(axis=1).tolist()


def assert_answer(answer, model_file):
    assert set(answer) == {"digit", "probabilities", "model"}
    probabilities = answer["probabilities"]
    assert len(probabilities) == 10 and abs(sum(probabilities) - 1) < 1e-3
    assert answer["digit"] == int(np.argmax(probabilities))
    assert answer["model"] == {"name": answer["model"]["name"], "version": "1", "sha256": sha256_file(model_file)}
    assert answer["model"]["name"]


def test_multipart_single_upload(client, trained_model, test_set, predictor):
    images, _ = test_set
    response = client.post("/predict", data={"image": (io.BytesIO(png(images[0])), "digit.png")})
    assert response.status_code == 200, response.json
    assert_answer(response.json, trained_model / "model.keras")
    assert response.json["digit"] == expected_digits(predictor, images[:1])[0]


def test_multipart_several_images_is_a_batch(client, trained_model, test_set, predictor):
    images, _ = test_set
    files = [(io.BytesIO(png(image)), f"{i}.png") for i, image in enumerate(images[:5])]
    response = client.post("/predict", data={"image": files})
    assert response.status_code == 200, response.json
    assert isinstance(response.json, list) and len(response.json) == 5
    for answer in response.json:
        assert_answer(answer, trained_model / "model.keras")
    assert [a["digit"] for a in response.json] == expected_digits(predictor, images[:5])


def test_json_base64_data_url_and_images_list(client, test_set, predictor):
    images, _ = test_set
    encoded = [base64.b64encode(png(image)).decode() for image in images[:4]]
    expected = expected_digits(predictor, images[:4])
    plain = client.post("/predict", json={"image": encoded[0]})
    data_url = client.post("/predict", json={"image": "data:image/png;base64," + encoded[1]})
    jpeg = client.post("/predict", json={"image": base64.b64encode(png(images[2], fmt="JPEG")).decode()})
    batch = client.post("/predict", json={"images": encoded})
    assert [plain.status_code, data_url.status_code, jpeg.status_code, batch.status_code] == [200] * 4
    assert plain.json["digit"] == expected[0] and data_url.json["digit"] == expected[1]
    assert jpeg.json["digit"] == expected[2]
    assert [answer["digit"] for answer in batch.json] == expected


@pytest.mark.parametrize("form", ["28x28", "784", "28x28x1", "unit-range"])
def test_pixels_single_image_forms(client, test_set, predictor, form):
    image = test_set[0][3]
    value = {
        "28x28": image.tolist(),
        "784": image.reshape(-1).tolist(),
        "28x28x1": image.reshape(28, 28, 1).tolist(),
        "unit-range": (image / 255).tolist(),
    }[form]
    response = client.post("/predict", json={"pixels": value})
    assert response.status_code == 200, response.json
    assert isinstance(response.json, dict)
    direct = predictor.predict(image.reshape(1, 28, 28, 1).astype(np.float32) / 255)[0]
    assert response.json["digit"] == int(direct.argmax())
    np.testing.assert_allclose(response.json["probabilities"], direct, atol=1e-5)


def test_accuracy_through_the_api_matches_the_model(client, test_set, predictor, trained_model):
    images, labels = test_set[0][:200], test_set[1][:200]
    per_request = DEFAULTS["MAX_IMAGES_PER_REQUEST"]  # a request holds at most that many (test_cost_limits.py)
    responses = [
        client.post("/predict", json={"pixels": images[i : i + per_request].tolist()})
        for i in range(0, len(images), per_request)
    ]
    assert [response.status_code for response in responses] == [200] * len(responses)
    digits = np.array([answer["digit"] for response in responses for answer in response.json])
    assert (digits == labels).mean() >= 0.95
    assert digits.tolist() == expected_digits(predictor, images)
    # and the same as Keras' own predict() on the saved file
    import keras

    model = keras.saving.load_model(trained_model / "model.keras", compile=False)
    keras_digits = model.predict(images[..., None].astype(np.float32) / 255, verbose=0).argmax(axis=1)
    assert digits.tolist() == keras_digits.tolist()


@pytest.mark.parametrize("shape", [(28, 28, 1), (28, 28), (784,)])
def test_tf_serving_row_format(client, test_set, predictor, shape):
    images = test_set[0][:3].astype(np.float32) / 255
    response = client.post(f"{TF}:predict", json={"instances": images.reshape(3, *shape).tolist()})
    assert response.status_code == 200, response.json
    assert list(response.json) == ["predictions"]
    np.testing.assert_allclose(response.json["predictions"], predictor.predict(images[..., None]), atol=1e-5)


def test_tf_serving_columnar_and_named_inputs(client, test_set, predictor):
    images = test_set[0][:2].astype(np.float32) / 255
    expected = predictor.predict(images[..., None])
    columnar = client.post(f"{TF}:predict", json={"inputs": images[..., None].tolist()})
    named_columnar = client.post(f"{TF}:predict", json={"inputs": {"inputs": images.tolist()}})
    named_rows = client.post(f"{TF}:predict", json={"instances": [{"inputs": image.tolist()} for image in images]})
    assert list(columnar.json) == list(named_columnar.json) == ["outputs"]
    assert list(named_rows.json) == ["predictions"]
    for answer in (columnar.json["outputs"], named_columnar.json["outputs"], named_rows.json["predictions"]):
        np.testing.assert_allclose(answer, expected, atol=1e-5)


def test_tf_serving_status_and_metadata(client):
    status = client.get(TF)
    assert status.status_code == 200
    (entry,) = status.json["model_version_status"]
    assert entry == {"version": "1", "state": "AVAILABLE", "status": {"error_code": "OK", "error_message": ""}}
    metadata = client.get(f"{TF}/metadata").json
    assert metadata["model_spec"]["name"] == "cnn-mnist" and metadata["model_spec"]["version"] == "1"
    signature = metadata["metadata"]["signature_def"]["signature_def"]["serving_default"]
    dims = [d["size"] for d in signature["inputs"]["inputs"]["tensor_shape"]["dim"]]
    assert dims == ["-1", "28", "28", "1"]


@pytest.mark.parametrize(
    "method, path",
    [("GET", "/v1/models/other"), ("POST", "/v1/models/other:predict"), ("GET", "/v1/models/other/metadata")],
)
def test_tf_serving_unknown_model_is_404(client, method, path):
    response = client.open(path, method=method, json={"instances": [[0] * 784]})
    assert response.status_code == 404
    assert "other" in response.json["error"]


def test_health_and_readiness(client, trained_model):
    assert client.get("/healthz").json == {"status": "alive"}
    ready = client.get("/readyz")
    assert ready.status_code == 200 and ready.json["status"] == "ready"
    assert ready.json["model"]["sha256"] == sha256_file(trained_model / "model.keras")


def test_drawing_page(client):
    response = client.get("/")
    assert response.status_code == 200 and b"<html" in response.data.lower()


def test_openapi_describes_every_route(client, app):
    spec = client.get("/openapi.json").json
    assert spec["openapi"].startswith("3.")
    for path in [
        "/predict",
        f"{TF}:predict",
        TF,
        f"{TF}/metadata",
        "/healthz",
        "/readyz",
        "/metrics",
        "/openapi.json",
        "/",
    ]:
        assert path in spec["paths"], path
    assert "post" in spec["paths"]["/predict"] and "post" in spec["paths"][f"{TF}:predict"]
    # and nothing the app serves is left out
    served = {
        rule.rule.replace("<name>", "cnn-mnist")
        for rule in app.url_map.iter_rules()
        if "<" not in rule.rule.replace("<name>", "") and rule.endpoint != "static"
    }
    assert served <= set(spec["paths"]), served - set(spec["paths"])


def test_metrics_count_requests_latency_batches_and_model(trained_model, test_set):
    app = create_app({"MODEL": str(trained_model)})  # fresh counters
    client = app.test_client()
    for _ in range(3):
        client.post("/predict", json={"pixels": test_set[0][0].tolist()})
    client.post("/predict", json={"pixels": test_set[0][:5].tolist()})
    client.post("/predict", json={"pixels": "nope"})
    client.get("/nowhere")
    response = client.get("/metrics")
    assert response.status_code == 200 and response.mimetype == "text/plain"
    text = response.get_data(as_text=True)
    assert metric(text, "cnn_mnist_requests_total", route="/predict", method="POST", status="200") == 4
    assert metric(text, "cnn_mnist_requests_total", route="/predict", method="POST", status="400") == 1
    assert metric(text, "cnn_mnist_requests_total", route="unmatched", status="404") == 1
    assert metric(text, "cnn_mnist_request_seconds_count", route="/predict") == 5
    assert metric(text, "cnn_mnist_request_seconds_bucket", route="/predict", le="+Inf") == 5
    assert metric(text, "cnn_mnist_batch_size_count") == 4
    assert metric(text, "cnn_mnist_batch_size_sum") == 8
    assert metric(text, "cnn_mnist_predictions_total") == 8
    assert metric(text, "cnn_mnist_model_version") == 1
    assert metric(text, "cnn_mnist_model_info", version="1", sha256=sha256_file(trained_model / "model.keras")) == 1
    assert "cnn_mnist_model_swaps_total" in text


@pytest.mark.parametrize(
    "path, body, valid",
    [
        ("/predict", {}, False),
        ("/predict", {"pixels": [[0] * 28] * 28}, True),
        ("/predict", {"pixels": [[0] * 28] * 28, "include_input": True, "version": "2"}, True),
        ("/predict", {"pixels": [[0] * 28] * 28, "image": "iVBOR"}, False),
        ("/predict", {"pixels": [[True] * 28] * 28}, False),
        ("/predict", {"pixels": [0] * 783}, False),
        ("/predict", {"pixels": [[256] * 28] * 28}, False),
        ("/predict", {"images": []}, False),
        ("/predict", {"image": "iVBOR", "version": "latest"}, False),
        (f"{TF}:predict", {}, False),
        (f"{TF}:predict", {"instances": [[[[0.5]] * 28] * 28]}, True),
        (f"{TF}:predict", {"instances": [[[[2.0]] * 28] * 28]}, False),
        (f"{TF}:predict", {"instances": [{"inputs": [[[0.5]] * 28] * 28}]}, True),
        (f"{TF}:predict", {"inputs": {"inputs": [[[[0.5]] * 28] * 28]}}, True),
        (f"{TF}:predict", {"instances": [[[[0.5]] * 28] * 28], "inputs": [[[[0.5]] * 28] * 28]}, False),
    ],
)
def test_openapi_request_schemas_say_what_the_server_accepts(client, path, body, valid):
    """The document's request schema and the server agree on each body: valid ⇔ answered 200."""
    schema = client.get("/openapi.json").json["paths"][path]["post"]["requestBody"]["content"]["application/json"]
    assert jsonschema_rs.validator_for(schema["schema"]).is_valid(body) == valid
    if "version" not in body:  # choosing a version is served by the model store's routes
        assert (client.post(path, json=body).status_code == 200) == valid
