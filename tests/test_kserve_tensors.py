"""The KServe v2 tensor codec (kserve_tensors) without a server: JSON and binary tensors in, both out, and refusals."""

import json

import numpy as np
import pytest

from cnn_mnist.serving.inputs import Budget, InputError
from cnn_mnist.serving.kserve_tensors import DATATYPES, PIXEL_TYPES, decode_request, encode_response

BUDGET = Budget(images=64, image_pixels=4096 * 4096, request_pixels=64 * 4096 * 4096)
RNG = np.random.default_rng(17)
DIGITS = RNG.integers(0, 256, (3, 28, 28), dtype=np.uint8)  # what every form below must decode to
EXPECTED = (DIGITS / 255).astype(np.float32)[..., np.newaxis]
SHAPES = ([3, 28, 28, 1], [3, 28, 28], [3, 784])


def tensor(datatype="UINT8", shape=(3, 28, 28), data=None, **fields):
    values = DIGITS if datatype == "UINT8" else DIGITS / 255
    return {
        "name": "input",
        "datatype": datatype,
        "shape": list(shape),
        "data": values.tolist() if data is None else data,
        **fields,
    }


def decode(request, binary=b"", header_length=None):
    header = json.dumps(request).encode()
    if binary and header_length is None:
        header_length = str(len(header))
    return decode_request(header + binary, header_length, BUDGET, json.loads)


def refused(request, *words, binary=b"", header_length=None, status=400):
    with pytest.raises(InputError) as caught:
        decode(request, binary, header_length)
    assert caught.value.status == status, caught.value
    for word in words:
        assert word in str(caught.value), caught.value
    return str(caught.value)


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("datatype", sorted(PIXEL_TYPES))
@pytest.mark.parametrize("nested", [True, False])
def test_json_tensors_of_every_accepted_datatype_and_shape_decode_alike(datatype, shape, nested):
    values = (DIGITS if datatype == "UINT8" else DIGITS / 255).reshape(shape)
    data = values.tolist() if nested else values.ravel().tolist()
    images = decode({"inputs": [tensor(datatype, shape, data)]}).images
    assert images.dtype == np.float32 and images.shape == (3, 28, 28, 1)
    np.testing.assert_allclose(images, EXPECTED, rtol=1e-6)


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("datatype", sorted(PIXEL_TYPES))
def test_binary_tensors_decode_as_their_json_form(datatype, shape):
    raw = (DIGITS if datatype == "UINT8" else DIGITS / 255).astype(PIXEL_TYPES[datatype]).tobytes()
    request = {"inputs": [{**tensor(datatype, shape), "parameters": {"binary_data_size": len(raw)}}]}
    del request["inputs"][0]["data"]
    images = decode(request, raw).images
    np.testing.assert_allclose(images, EXPECTED, rtol=1e-6)
    assert images.flags.writeable


def test_outputs_default_to_both_in_json_and_the_id_is_echoed():
    inference = decode({"id": "req-7", "inputs": [tensor()]})
    probabilities = RNG.dirichlet(np.ones(10), 3).astype(np.float32)
    body, headers = encode_response(inference, "cnn-mnist", "2", probabilities, json.dumps)
    assert headers == {"Content-Type": "application/json"}
    answer = json.loads(body)
    assert (answer["model_name"], answer["model_version"], answer["id"]) == ("cnn-mnist", "2", "req-7")
    by_name = {output["name"]: output for output in answer["outputs"]}
    assert [output["name"] for output in answer["outputs"]] == ["probabilities", "digit"]
    assert by_name["probabilities"]["datatype"] == "FP32" and by_name["probabilities"]["shape"] == [3, 10]
    np.testing.assert_array_equal(np.float32(by_name["probabilities"]["data"]), probabilities.ravel())
    assert by_name["digit"] == {
        "name": "digit",
        "datatype": "INT64",
        "shape": [3],
        "data": probabilities.argmax(axis=1).tolist(),
    }


def test_no_id_in_the_answer_when_the_request_has_none():
    body, _ = encode_response(decode({"inputs": [tensor()]}), "cnn-mnist", "1", np.eye(10)[:3], json.dumps)
    assert "id" not in json.loads(body)


@pytest.mark.parametrize(
    ("request_binary", "output_parameters", "binary_outputs"),
    [
        (True, None, {"probabilities", "digit"}),  # binary_data_output alone: every output
        (False, {"digit": True}, {"digit"}),  # one output's binary_data
        (True, {"probabilities": False, "digit": None}, {"digit"}),  # binary_data overrides binary_data_output
    ],
)
def test_binary_outputs_follow_the_header_in_the_order_listed(request_binary, output_parameters, binary_outputs):
    request = {"inputs": [tensor()], "parameters": {"binary_data_output": request_binary}}
    if output_parameters:
        request["outputs"] = [
            {"name": name, **({"parameters": {"binary_data": binary}} if binary is not None else {})}
            for name, binary in output_parameters.items()
        ]
    probabilities = RNG.dirichlet(np.ones(10), 3).astype(np.float32)
    body, headers = encode_response(decode(request), "cnn-mnist", "1", probabilities, json.dumps)
    assert headers["Content-Type"] == "application/octet-stream"
    length = int(headers["Inference-Header-Content-Length"])
    answer, offset = json.loads(body[:length]), length
    expected = {"probabilities": probabilities, "digit": probabilities.argmax(axis=1)}
    for output in answer["outputs"]:
        if output["name"] in binary_outputs:
            dtype = "<f4" if output["datatype"] == "FP32" else "<i8"
            size = output["parameters"]["binary_data_size"]
            values = np.frombuffer(body[offset : offset + size], dtype)
            offset += size
            assert "data" not in output
        else:
            values = np.array(output["data"])
        np.testing.assert_array_equal(values.reshape(output["shape"]), expected[output["name"]])
    assert offset == len(body)
    assert {output["name"] for output in answer["outputs"]} == (
        set(output_parameters) if output_parameters else {"probabilities", "digit"}
    )


@pytest.mark.parametrize("datatype", sorted(DATATYPES - set(PIXEL_TYPES)))
def test_every_other_datatype_of_the_protocol_is_refused(datatype):
    refused({"inputs": [tensor(datatype)]}, datatype, "is not accepted", "FP32")


@pytest.mark.parametrize("datatype", ["fp32", "FLOAT", "", None, 32])
def test_a_datatype_outside_the_protocol_is_refused(datatype):
    refused({"inputs": [tensor(datatype=datatype)]}, "not a datatype of the protocol")


@pytest.mark.parametrize(
    "shape",
    [[28, 28], [784], [3, 28, 28, 3], [3, 27, 28], [3, 785], [0, 784], [3, 28, 28, 1, 1], [], [3, -28, -28]],
)
def test_shapes_that_are_not_images_are_refused(shape):
    refused({"inputs": [tensor(shape=shape, data=[0])]}, "shape")


@pytest.mark.parametrize("shape", ["3x784", [3, 784.0], [3, True], None])
def test_a_shape_that_is_not_a_list_of_integers_is_refused(shape):
    refused({"inputs": [tensor() | {"shape": shape}]}, '"shape" must be a list of non-negative integers')


@pytest.mark.parametrize(
    ("shape", "data", "words"),
    [
        ([2, 784], [0] * 1567, ["holds 1567 values", "needs 1568"]),  # flat, one short
        ([2, 784], [0] * 1569, ["holds 1569 values"]),  # flat, one over
        ([3, 28, 28], np.zeros((2, 28, 28), int).tolist(), ["not nested as the shape"]),  # fewer images
        ([3, 28, 28], np.zeros((3, 784), int).tolist(), ["not nested as the shape"]),  # another nesting
        ([3, 784], np.zeros((3, 784, 1), int).tolist(), ["not nested as the shape"]),  # nested deeper
        ([1, 784], [[0] * 783 + [[0]]], ["not nested as the shape"]),  # ragged
        ([1, 784], [0] * 783 + [[0]], ["not nested as the shape"]),  # a list among flat values
        ([1, 784], [], ['"data" must be a list']),
        ([1, 784], "0" * 784, ['"data" must be a list']),
    ],
)
def test_data_that_does_not_match_the_shape_is_refused(shape, data, words):
    refused({"inputs": [tensor(shape=shape, data=data)]}, *words)


@pytest.mark.parametrize(
    ("datatype", "leaf", "words"),
    [
        ("UINT8", 1.5, ["UINT8 data must be integers", "float"]),
        ("UINT8", True, ["true/false"]),
        ("FP32", "0.5", ["FP32 data must be numbers", "str"]),
        ("FP32", None, ["NoneType"]),
        ("FP64", {"x": 1}, ["dict"]),
        ("UINT8", 256, ["0-255", "256"]),
        ("UINT8", -1, ["0-255", "-1"]),
        ("FP32", 1.5, ["0-1", "1.5"]),
        ("FP64", -0.25, ["0-1", "-0.25"]),
        ("FP32", 255, ["0-1", "255"]),  # 0-255 is UINT8's range, not a float's
        ("FP32", float("nan"), ["finite"]),
        ("FP64", float("inf"), ["finite"]),
        ("FP32", 10**400, ["too large"]),
        ("UINT8", 2**70, ["too large"]),
    ],
)
def test_values_of_the_wrong_kind_or_range_are_refused(datatype, leaf, words):
    refused({"inputs": [tensor(datatype, (1, 784), [0] * 783 + [leaf])]}, *words)


def binary_request(size, data_type="FP32", **extra):
    return {
        "inputs": [
            {
                "name": "input",
                "datatype": data_type,
                "shape": [1, 784],
                "parameters": {"binary_data_size": size},
                **extra,
            }
        ]
    }


@pytest.mark.parametrize(
    ("request_", "binary", "words"),
    [
        (binary_request(3136), bytes(3135), ["binary_data_size is 3136", "3135 bytes follow"]),
        (binary_request(3136), bytes(3137), ["3137 bytes follow"]),
        (binary_request(784), bytes(784), ["needs 3136"]),  # a UINT8's size sent as FP32
        (binary_request(784, "UINT8"), bytes(785), ["785 bytes follow"]),
        (binary_request(-1), b"", ["byte count"]),
        (binary_request("3136"), bytes(3136), ["byte count"]),
        (binary_request(3136, data=[0] * 784), bytes(3136), ['both "data" and "binary_data_size"']),
        ({"inputs": [tensor(shape=(1, 784), data=[0] * 784)]}, bytes(4), ["no input has binary_data_size"]),
    ],
)
def test_binary_data_that_does_not_match_is_refused(request_, binary, words):
    refused(request_, *words, binary=binary)


def test_binary_pixels_are_range_checked_too():
    raw = np.full(784, 2.0, "<f4").tobytes()
    refused(binary_request(len(raw)), "0-1", binary=raw)
    raw = np.full(784, np.nan, "<f8").tobytes()
    refused(binary_request(len(raw), "FP64"), "finite", binary=raw)


@pytest.mark.parametrize(
    ("header_length", "words"),
    [("-1", ["byte count"]), ("12a", ["byte count"]), ("", ["byte count"]), ("99999", ["only"]), ("5", ["JSON"])],
)
def test_a_bad_inference_header_content_length_is_refused(header_length, words):
    refused({"inputs": [tensor()]}, *words, header_length=header_length)


def test_the_images_are_counted_before_any_data_is_read():
    """A shape over the budget is a 413 even with no data at all: nothing was converted before the count."""
    refused({"inputs": [tensor(shape=(65, 784), data=[])]}, "65 images", status=413)
    size = 65 * 784 * 4
    refused(
        {
            "inputs": [
                {"name": "input", "datatype": "FP32", "shape": [65, 784], "parameters": {"binary_data_size": size}}
            ]
        },
        "at most 64",
        status=413,
    )


@pytest.mark.parametrize(
    ("request_", "words"),
    [
        ([], ["JSON object"]),
        ({}, ['"inputs" must be a list of one tensor']),
        ({"inputs": []}, ["one tensor"]),
        ({"inputs": [tensor(), tensor()]}, ["one tensor"]),
        ({"inputs": [[0] * 784]}, ["one tensor"]),
        ({"inputs": [tensor(name="pixels")]}, ['unknown input "pixels"', '"input"']),
        ({"inputs": [tensor(name=None)]}, ["unknown input None"]),
        ({"inputs": [tensor()], "id": 7}, ['"id" must be a string']),
        ({"inputs": [tensor()], "parameters": []}, ['"parameters" of the request']),
        ({"inputs": [tensor()], "parameters": {"x": [1]}}, ["strings, numbers and booleans"]),
        ({"inputs": [tensor(parameters={"x": None})]}, ['"parameters" of input "input"']),
        ({"inputs": [tensor()], "parameters": {"binary_data_output": "yes"}}, ["binary_data_output", "true or false"]),
        ({"inputs": [tensor()], "outputs": []}, ['"outputs" must be a non-empty list']),
        ({"inputs": [tensor()], "outputs": {"name": "digit"}}, ['"outputs" must be a non-empty list']),
        ({"inputs": [tensor()], "outputs": [{"name": "logits"}]}, ['unknown output "logits"']),
        ({"inputs": [tensor()], "outputs": ["digit"]}, ["unknown output None"]),
        ({"inputs": [tensor()], "outputs": [{"name": "digit"}, {"name": "digit"}]}, ['"digit" is asked for twice']),
        (
            {"inputs": [tensor()], "outputs": [{"name": "digit", "parameters": {"binary_data": 1}}]},
            ['"binary_data" of output "digit"'],
        ),
        (
            {"inputs": [tensor()], "outputs": [{"name": "probabilities", "parameters": {"classification": 3}}]},
            ["classification extension is not supported"],
        ),
        ({"inputs": [tensor() | {"data": None}]}, ['"data" must be a list']),
    ],
)
def test_malformed_requests_are_refused(request_, words):
    refused(request_, *words)


def test_a_request_without_data_says_what_it_needs():
    request = {"inputs": [tensor()]}
    del request["inputs"][0]["data"]
    refused(request, '"data", or "binary_data_size"')


@pytest.mark.parametrize("body", [b"{", b"\xff\xfe", b"[" * 100_000 + b"]" * 100_000])
def test_a_body_that_is_not_json_is_refused(body):
    with pytest.raises(InputError) as caught:
        decode_request(body, None, BUDGET, json.loads)
    assert caught.value.status == 400 and ("JSON" in str(caught.value)), caught.value


def test_unknown_parameters_are_accepted_as_the_protocol_allows():
    """Server-specific parameters are the protocol's extension point; tritonclient sends some (timeout, priority)."""
    inference = decode({"inputs": [tensor(parameters={"note": "x"})], "parameters": {"timeout": 5, "priority": 1}})
    np.testing.assert_allclose(inference.images, EXPECTED, rtol=1e-6)
