"""Bad requests: every one a 4xx with a JSON {"error": ...}, no stack trace, and the server keeps serving."""

import base64
import io
import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from cnn_mnist.core.errors import ImageError, UsageError
from cnn_mnist.core.preprocessing import mnist_like
from cnn_mnist.serving.app import create_app
from cnn_mnist.serving.inputs import Budget, InputError, _leaf_types, decode_images, only_numbers_under, pixel_array

TF = "/v1/models/cnn-mnist:predict"
ZEROS = [[0] * 28] * 28
DIGIT = [[0] * 28] * 10 + [[0] * 10 + [255] * 8 + [0] * 10] * 8 + [[0] * 28] * 10


def image_bytes(mode, size, fmt="PNG"):
    buffer = io.BytesIO()
    Image.new(mode, size).save(buffer, fmt)
    return buffer.getvalue()


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def assert_client_error(response, statuses=(400,), says=None):
    body = response.get_data(as_text=True)
    assert response.status_code in statuses, (response.status_code, body)
    assert response.is_json, body
    assert isinstance(response.json["error"], str) and response.json["error"], body
    assert "Traceback" not in body and 'File "' not in body
    if says:
        assert says.lower() in response.json["error"].lower(), body
    return response.json["error"]


def assert_still_serving(client):
    response = client.post("/predict", json={"pixels": DIGIT})
    assert response.status_code == 200 and 0 <= response.json["digit"] <= 9


def raw(text):
    return {"data": text, "content_type": "application/json"}


PNG_28 = image_bytes("L", (28, 28))
PNG_DIGIT = io.BytesIO()
Image.fromarray(np.array(DIGIT, np.uint8)).save(PNG_DIGIT, "PNG")
PNG_DIGIT = PNG_DIGIT.getvalue()
RAGGED = [[0] * 28] * 27 + [[0] * 27]
DEEP = "[" * 100_000 + "]" * 100_000


def nested(depth, leaf=0):
    for _ in range(depth):
        leaf = [leaf]
    return leaf


def float_tiff(*values):
    """A 28x28 32-bit float TIFF (mode F) holding a drawn stroke and the given values in its first pixels."""
    array = np.array(DIGIT, np.float32)
    array.flat[: len(values)] = values
    buffer = io.BytesIO()
    Image.fromarray(array, "F").save(buffer, "TIFF")
    return buffer.getvalue()


# (path, keyword arguments of client.post, the expected statuses, a word the error must contain)
CASES = {
    "broken json": ("/predict", raw('{"pixels": [1, 2'), (400,), "JSON object"),
    "non-utf8 body": ("/predict", {"data": b"\xff\xfe{\x00", "content_type": "application/json"}, (400,), None),
    "empty body": ("/predict", raw(""), (400,), "JSON object"),
    "json array": ("/predict", {"json": [1, 2, 3]}, (400,), "JSON object"),
    "json string": ("/predict", raw('"pixels"'), (400,), "JSON object"),
    "json null": ("/predict", raw("null"), (400,), "JSON object"),
    "no known key": ("/predict", {"json": {"picture": ZEROS}}, (400,), "exactly one"),
    "two forms": ("/predict", {"json": {"pixels": ZEROS, "image": "x"}}, (400,), "exactly one"),
    "pixels too few": ("/predict", {"json": {"pixels": [0] * 783}}, (400,), "shape"),
    "pixels 27x28": ("/predict", {"json": {"pixels": ZEROS[:27]}}, (400,), "shape"),
    "pixels rgb": ("/predict", {"json": {"pixels": [[[0, 0, 0]] * 28] * 28}}, (400,), "shape"),
    "pixels scalar": ("/predict", {"json": {"pixels": 5}}, (400,), "shape"),
    "pixels empty": ("/predict", {"json": {"pixels": []}}, (400,), "shape"),
    "pixels empty batch": ("/predict", {"json": {"pixels": [[]]}}, (400,), "shape"),
    "pixels strings": ("/predict", {"json": {"pixels": [["a"] * 28] * 28}}, (400,), None),
    "pixels string": ("/predict", {"json": {"pixels": "0" * 784}}, (400,), None),
    "pixels null": ("/predict", {"json": {"pixels": None}}, (400,), None),
    "pixels objects": ("/predict", {"json": {"pixels": [{"a": 1}] * 784}}, (400,), None),
    "pixels ragged": ("/predict", {"json": {"pixels": RAGGED}}, (400,), "rectangular"),
    "pixels ragged batch": ("/predict", {"json": {"pixels": [ZEROS, ZEROS[:27]]}}, (400,), None),
    "pixels NaN": ("/predict", raw('{"pixels": [NaN' + ", 0" * 783 + "]}"), (400,), "finite"),
    "pixels Infinity": ("/predict", raw('{"pixels": [Infinity' + ", 0" * 783 + "]}"), (400,), "finite"),
    "pixels -Infinity": ("/predict", raw('{"pixels": [-Infinity' + ", 0" * 783 + "]}"), (400,), "finite"),
    "pixels 1e999": ("/predict", raw('{"pixels": [1e999' + ", 0" * 783 + "]}"), (400,), "finite"),
    "pixels 10**400": ("/predict", raw('{"pixels": [1' + "0" * 400 + ", 0" * 783 + "]}"), (400,), "too large"),
    "tf instances 10**400": (TF, raw('{"instances": [[1' + "0" * 400 + ", 0" * 783 + "]]}"), (400,), "too large"),
    "pixels -1": ("/predict", {"json": {"pixels": [-1] + [0] * 783}}, (400,), "0-255"),
    "pixels 300": ("/predict", {"json": {"pixels": [300] + [0] * 783}}, (400,), "0-255"),
    "json nested 100000 deep": ("/predict", raw('{"pixels": ' + DEEP + "}"), (400,), "nested too deeply"),
    "tf json nested 100000 deep": (TF, raw('{"instances": ' + DEEP + "}"), (400,), "nested too deeply"),
    "pixels nested 900 deep": ("/predict", {"json": {"pixels": nested(900)}}, (400,), None),
    "pixels booleans": ("/predict", {"json": {"pixels": [[True] * 28] * 28}}, (400,), "true/false"),
    "pixels one boolean": ("/predict", {"json": {"pixels": [0] * 783 + [False]}}, (400,), "true/false"),
    "pixels numeric strings": ("/predict", {"json": {"pixels": ["1"] * 784}}, (400,), "strings"),
    "pixels null inside": ("/predict", {"json": {"pixels": [None] * 784}}, (400,), "null"),
    "image not a string": ("/predict", {"json": {"image": 123}}, (400,), "base64"),
    "bad base64": ("/predict", {"json": {"image": "not base64!!"}}, (400,), "base64"),
    "data url not base64": ("/predict", {"json": {"image": "data:image/png,abc"}}, (400,), "base64"),
    "base64 of text": ("/predict", {"json": {"image": b64(b"hello, not an image")}}, (400,), "image"),
    "truncated png": ("/predict", {"json": {"image": b64(PNG_DIGIT[:60])}}, (400,), None),
    "unsupported format": ("/predict", {"json": {"image": b64(image_bytes("L", (28, 28), "PPM"))}}, (415,), "PPM"),
    "float tiff with NaN": ("/predict", {"json": {"image": b64(float_tiff(np.nan, np.nan))}}, (400,), "finite"),
    "float tiff with infinity": ("/predict", {"json": {"image": b64(float_tiff(np.inf, -np.inf))}}, (400,), "finite"),
    "float tiff upload all NaN": (
        "/predict",
        {"data": {"image": (io.BytesIO(float_tiff(*[np.nan] * 784)), "d.tif")}},
        (400,),
        "finite",
    ),
    "images not a list": ("/predict", {"json": {"images": b64(PNG_28)}}, (400,), "list"),
    "images empty": ("/predict", {"json": {"images": []}}, (400,), "list"),
    "images with a bad one": ("/predict", {"json": {"images": [b64(PNG_DIGIT), "???"]}}, (400,), "base64"),
    "multipart without image": ("/predict", {"data": {"file": (io.BytesIO(PNG_28), "d.png")}}, (400,), '"image"'),
    "multipart not an image": ("/predict", {"data": {"image": (io.BytesIO(b"GIF89a?"), "d.gif")}}, (400,), None),
    "multipart empty file": ("/predict", {"data": {"image": (io.BytesIO(b""), "d.png")}}, (400,), None),
    "multipart as text field": (
        "/predict",
        {"data": {"image": "not a file"}, "content_type": "multipart/form-data"},
        (400,),
        '"image"',
    ),
    "tf both keys": (TF, {"json": {"instances": [ZEROS], "inputs": [ZEROS]}}, (400,), "exactly one"),
    "tf neither key": (TF, {"json": {"signature_name": "serving_default"}}, (400,), "exactly one"),
    "tf not an object": (TF, {"json": [ZEROS]}, (400,), "JSON object"),
    "tf broken json": (TF, raw("{instances: []}"), (400,), "JSON object"),
    "tf instances > 1": (TF, {"json": {"instances": [[2.0] + [0] * 783]}}, (400,), "0-1"),
    "tf instances 0-255": (TF, {"json": {"instances": [[255] * 784]}}, (400,), "0-1"),
    "tf instances negative": (TF, {"json": {"instances": [[-0.5] + [0] * 783]}}, (400,), "0-1"),
    "tf instances NaN": (TF, raw('{"instances": [[NaN' + ", 0" * 783 + "]]}"), (400,), "finite"),
    "tf instances empty": (TF, {"json": {"instances": []}}, (400,), "non-empty"),
    "tf instances not a list": (TF, {"json": {"instances": "x"}}, (400,), "list"),
    "tf instances not a batch": (TF, {"json": {"instances": [[0.0]] * 28}}, (400,), None),
    "tf single image as inputs": (TF, {"json": {"inputs": ZEROS}}, (400,), "batch"),
    "tf instances wrong shape": (TF, {"json": {"instances": [[0.0] * 100]}}, (400,), "shape"),
    "tf instances ragged": (TF, {"json": {"instances": [[0.0] * 784, [0.0] * 783]}}, (400,), None),
    "tf two named inputs": (TF, {"json": {"inputs": {"a": [ZEROS], "b": [ZEROS]}}}, (400,), "one input"),
    "tf instance with two names": (TF, {"json": {"instances": [{"a": ZEROS, "b": ZEROS}]}}, (400,), "single"),
    "tf signature not a string": (TF, {"json": {"instances": [ZEROS], "signature_name": {}}}, (400,), "signature_name"),
    "tf unknown signature": (
        TF,
        {"json": {"instances": [ZEROS], "signature_name": "predict"}},
        (400,),
        "serving_default",
    ),
    "tf instances booleans": (TF, {"json": {"instances": [[[[True]] * 28] * 28]}}, (400,), "true/false"),
    "tf inputs booleans": (TF, {"json": {"inputs": [[[[0.5]] * 28] * 27 + [[[True]] * 28]]}}, (400,), "true/false"),
    "tf instances strings": (TF, {"json": {"instances": [["x"] * 784]}}, (400,), None),
}


@pytest.mark.parametrize("name", CASES)
def test_bad_request_is_a_json_4xx(client, name):
    path, kwargs, statuses, says = CASES[name]
    assert_client_error(client.post(path, **kwargs), statuses, says)
    assert_still_serving(client)


def bomb(mode, side, fmt="PNG"):
    """A small file whose header claims side x side pixels (1-bit or paletted compresses to almost nothing)."""
    buffer = io.BytesIO()
    Image.new(mode, (side, side)).save(buffer, fmt, optimize=False)
    return buffer.getvalue()


@pytest.mark.parametrize("mode, side", [("1", 20000), ("P", 5000)])
def test_decompression_bomb_is_refused_before_decoding(client, mode, side):
    data = bomb(mode, side)
    assert len(data) < 1024 * 1024
    error = assert_client_error(client.post("/predict", json={"image": b64(data)}), (413,))
    assert "pixels" in error or "image" in error
    multipart = client.post("/predict", data={"image": (io.BytesIO(data), "bomb.png")})
    assert_client_error(multipart, (413,))
    assert_still_serving(client)


@pytest.mark.parametrize("side", [5000, 10000, 20000])  # under, inside and past PIL's warning band (89-179 Mpx)
@pytest.mark.filterwarnings("ignore::PIL.Image.DecompressionBombWarning")  # PIL warns; the size check refuses
def test_the_size_check_alone_refuses_a_bomb_without_decoding_it(side, monkeypatch):
    """No warnings filter (global, not thread-safe) is needed: the header's size is checked before load()."""
    monkeypatch.setattr("PIL.ImageFile.ImageFile.load", lambda image: pytest.fail("an image was decoded"))
    with pytest.raises(InputError) as refused:
        decode_images([bomb("1", side)], Budget(images=1, image_pixels=4096 * 3072, request_pixels=4096 * 3072))
    assert refused.value.status == 413
    assert "pixels" in str(refused.value)


def test_an_image_without_ink_is_an_image_error_not_a_usage_error():
    """The CLI's UsageError (print one line, exit 2) has no place on the serving path."""
    with pytest.raises(ImageError, match="no ink") as raised:
        mnist_like(Image.new("L", (28, 28)))
    assert not isinstance(raised.value, UsageError)


def test_image_pixel_limit_is_configurable(trained_model):
    client = create_app({"MODEL": str(trained_model), "MAX_IMAGE_PIXELS": 100 * 100}).test_client()
    too_big = client.post("/predict", json={"image": b64(image_bytes("L", (101, 100)))})
    assert_client_error(too_big, (413,), "at most 10000 pixels")
    fine = Image.new("L", (100, 100))
    fine.paste(255, (40, 20, 60, 80))
    buffer = io.BytesIO()
    fine.save(buffer, "PNG")
    assert client.post("/predict", json={"image": b64(buffer.getvalue())}).status_code == 200


@pytest.fixture(scope="module")
def small_limit_client(trained_model):
    return create_app({"MODEL": str(trained_model), "MAX_BODY_BYTES": 4000}).test_client()


def test_body_over_the_limit_is_413(small_limit_client):
    body = json.dumps({"pixels": [255] * 784 + [0] * 2000})
    error = assert_client_error(small_limit_client.post("/predict", **raw(body)), (413,), "4000-byte limit")
    assert error
    upload = {"image": (io.BytesIO(b"\0" * 5000), "big.png")}
    assert_client_error(small_limit_client.post("/predict", data=upload), (413,))
    assert_client_error(small_limit_client.post(TF, **raw(body)), (413,))
    small = small_limit_client.post("/predict", json={"pixels": [0, 255] * 392})
    assert small.status_code == 200


@pytest.mark.parametrize(
    "method, path, status",
    [
        ("GET", "/predict", 405),
        ("PUT", "/predict", 405),
        ("DELETE", "/healthz", 405),
        ("POST", "/metrics", 405),
        ("GET", "/nowhere", 404),
        ("POST", "/predict/extra", 404),
        ("GET", "/v2/models/another-model", 404),
        ("POST", "/v2/models/cnn-mnist", 405),
    ],
)
def test_unknown_routes_and_methods(client, method, path, status):
    assert_client_error(client.open(path, method=method), (status,))
    assert_still_serving(client)


def test_no_client_error_was_counted_as_a_server_error(client):
    """Runs after the cases above (same module app): not one 5xx in the request counter."""
    text = client.get("/metrics").get_data(as_text=True)
    statuses = [
        line.split('status="')[1][:3] for line in text.splitlines() if line.startswith("cnn_mnist_requests_total{")
    ]
    assert "400" in statuses and "404" in statuses and "405" in statuses
    assert not [status for status in statuses if status.startswith("5")]


@pytest.mark.parametrize(
    "method, path, allowed",
    [
        ("PUT", "/v1/models/cnn-mnist:predict", "POST"),
        ("DELETE", "/v1/models/cnn-mnist", "GET"),
        ("GET", "/predict", "POST"),
        ("DELETE", "/healthz", "GET"),
        ("PUT", "/openapi.json", "GET"),
    ],
)
def test_wrong_method_is_405_with_allow(client, method, path, allowed):
    """RFC 9110: a 405 must say in Allow which methods the resource has."""
    response = client.open(path, method=method, json={})
    assert_client_error(response, (405,))
    assert allowed in {method.strip() for method in response.headers.get("Allow", "").split(",")}, response.headers


def test_a_float_tiff_with_finite_values_is_classified(client):
    """The NaN check refuses only NaN and infinity: a float TIFF of ordinary values still works."""
    response = client.post("/predict", json={"image": b64(float_tiff(0.0, 1.0))})
    assert response.status_code == 200 and 0 <= response.json["digit"] <= 9


# ---- the pixel type check's fast path: a body proven to hold only numbers skips the per-value scan ----

json_values = st.recursive(
    st.integers(-300, 300) | st.floats(-1e3, 1e3) | st.booleans() | st.none() | st.text(max_size=3),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=3), children, max_size=2),
    max_leaves=12,
)
separators = st.sampled_from([(",", ":"), (", ", ": "), (" ,\n", " :\t")])


@given(
    value=json_values,
    extra=st.dictionaries(st.sampled_from(["include_input", "label", "pixel"]), json_values, max_size=1),
    separators=separators,
)
@settings(max_examples=400, derandomize=True, deadline=None)
def test_only_numbers_under_vouches_exactly_for_bodies_of_numbers_and_lists(value, extra, separators):
    body = {"pixels": value, **extra}
    raw = json.dumps(body, separators=separators).encode()
    holds_only_numbers = not extra and not (_leaf_types(value) - {int, float})
    assert only_numbers_under(raw, "pixels") == holds_only_numbers


@pytest.mark.parametrize(
    "raw",
    [
        b'{"pixels": [[true]]}',
        b'{"pixels": [null]}',
        b'{"pixels": ["1"]}',
        b'{"pixels": [{"a": 1}]}',
        b'{"pixels": [1], "pixels": [2]}',
        b'{"pi\\u0078els": [1]}',
        b'{"instances": [[1]]}',
        b'{"pixels": [1]} x',
    ],
)
def test_only_numbers_under_refuses_what_it_cannot_vouch_for(raw):
    assert not only_numbers_under(raw, "pixels")


def test_a_body_of_numbers_is_checked_and_converted_as_before():
    raw = b'{"pixels": [[0, 1e2, 255.0, 2E-3]]}'
    value = json.loads(raw)["pixels"]
    assert only_numbers_under(raw, "pixels")
    budget = Budget(images=1, image_pixels=1, request_pixels=1)
    fast = pixel_array([value[0] * 196], budget, unit_range_only=False, numbers_only=True)
    scanned = pixel_array([value[0] * 196], budget, unit_range_only=False)
    assert fast[1] == scanned[1] and np.array_equal(fast[0], scanned[0])
