"""The Open Inference Protocol's (KServe v2) tensors for this model: a request's bytes in, the answer's bytes out.

Pure functions, so the codec is tested without a server. The protocol (kserve
docs/predict-api/v2/required_api.md) sends tensors as JSON, `data` flat or nested as its `shape`; Triton's
binary tensor data extension (triton-inference-server/server docs/protocol/extension_binary_data.md)
sends them as raw little-endian bytes after the JSON header, whose length `Inference-Header-Content-Length`
gives, each tensor's size in its `binary_data_size` parameter. Answers are binary per output when the
output's `binary_data` parameter, or else the request's `binary_data_output`, says so.

The model's one input takes pixels as FP32 or FP64 in 0-1 or UINT8 in 0-255, shaped [N, 28, 28, 1],
[N, 28, 28] or [N, 784]; the images are counted against the request budget before any data is read.
Everything else raises InputError (a 400, or a 413 over the budget).
"""

import math
import re
from dataclasses import dataclass
from itertools import chain

import numpy as np

from ..core.preprocessing import to_model_input
from .inputs import NON_FINITE, Budget, InputError

INPUT = "input"
# The protocol's datatypes (and Triton's BF16), so that a valid one we do not take is told apart from a typo.
DATATYPES = {"BOOL", "UINT8", "UINT16", "UINT32", "UINT64", "INT8", "INT16", "INT32", "INT64"}
DATATYPES |= {"FP16", "FP32", "FP64", "BF16", "BYTES"}
PIXEL_TYPES = {"FP32": np.dtype("<f4"), "FP64": np.dtype("<f8"), "UINT8": np.dtype("u1")}  # little-endian, as sent
IMAGE_SHAPES = ([28, 28, 1], [28, 28], [784])
OUTPUTS = {"probabilities": "FP32", "digit": "INT64"}
ACCEPTED = "FP32 or FP64 pixels in 0-1, or UINT8 pixels in 0-255"
SHAPES = "[N, 28, 28, 1], [N, 28, 28] or [N, 784] with N at least 1"
PARAMETER_TYPES = (str, int, float, bool)  # a parameter's value is a string, a number or a boolean
BYTE_COUNT = re.compile(r"[0-9]+")


@dataclass(frozen=True)
class Output:
    name: str
    binary: bool


@dataclass(frozen=True)
class Inference:
    """A decoded inference request: the model input (N, 28, 28, 1) float32 in 0-1, and what to answer."""

    images: np.ndarray
    outputs: tuple  # of Output, in the order the answer lists them
    id: str | None


def decode_request(body: bytes, header_length: str | None, budget: Budget, loads) -> Inference:
    """The body of POST .../infer and its Inference-Header-Content-Length header → Inference.

    `loads` parses the JSON header (the app's parser).
    """
    header, binary = _split(body, header_length)
    try:
        request = loads(header)
    except RecursionError:
        raise InputError("the JSON body is nested too deeply") from None
    except ValueError as error:  # also UnicodeDecodeError: binary data without Inference-Header-Content-Length
        raise InputError(f"the inference request is not valid JSON: {error}") from None
    if not isinstance(request, dict):
        raise InputError("the inference request must be a JSON object")
    request_id = request.get("id")
    if request_id is not None and not isinstance(request_id, str):
        raise InputError('"id" must be a string')
    binary_output = _parameters(request, "the request").get("binary_data_output", False)
    if not isinstance(binary_output, bool):
        raise InputError('the parameter "binary_data_output" must be true or false')
    inputs = request.get("inputs")
    if not isinstance(inputs, list) or len(inputs) != 1 or not isinstance(inputs[0], dict):
        raise InputError(f'"inputs" must be a list of one tensor: the model\'s one input, "{INPUT}"')
    if inputs[0].get("name") != INPUT:
        raise InputError(f'unknown input {_quoted(inputs[0].get("name"))}; the model\'s one input is "{INPUT}"')
    images = _images(inputs[0], binary, budget)
    return Inference(images, _outputs(request.get("outputs"), binary_output), request_id)


def encode_response(inference: Inference, model_name: str, model_version: str, probabilities, dumps) -> tuple:
    """The answer to `inference`: (body bytes, headers), its binary outputs after the JSON header.

    `probabilities`: (N, 10) from the model; `dumps` writes JSON (the app's writer).
    """
    tensors = {"probabilities": probabilities.astype("<f4"), "digit": probabilities.argmax(axis=1).astype("<i8")}
    outputs, blobs = [], []
    for output in inference.outputs:
        tensor = tensors[output.name]
        entry = {"name": output.name, "datatype": OUTPUTS[output.name], "shape": list(tensor.shape)}
        if output.binary:
            blobs.append(tensor.tobytes())
            entry["parameters"] = {"binary_data_size": len(blobs[-1])}
        else:
            entry["data"] = tensor.ravel().tolist()
        outputs.append(entry)
    answer = {"model_name": model_name, "model_version": model_version}
    if inference.id is not None:
        answer["id"] = inference.id
    answer["outputs"] = outputs
    header = dumps(answer).encode()
    if not blobs:
        return header, {"Content-Type": "application/json"}
    headers = {"Content-Type": "application/octet-stream", "Inference-Header-Content-Length": str(len(header))}
    return b"".join([header, *blobs]), headers


def _split(body: bytes, header_length: str | None) -> tuple:
    """(JSON header, binary data) of a body; without the header the whole body is JSON."""
    if header_length is None:
        return body, b""
    if not BYTE_COUNT.fullmatch(header_length):
        raise InputError(f"Inference-Header-Content-Length must be a byte count, not {header_length!r}")
    length = int(header_length)
    if length > len(body):
        raise InputError(f"Inference-Header-Content-Length is {length}, but the body holds only {len(body)} bytes")
    return body[:length], body[length:]


def _parameters(tensor: dict, where: str) -> dict:
    parameters = tensor.get("parameters", {})
    if not isinstance(parameters, dict) or not all(isinstance(v, PARAMETER_TYPES) for v in parameters.values()):
        raise InputError(f'"parameters" of {where} must be an object of strings, numbers and booleans')
    return parameters


def _images(tensor: dict, binary: bytes, budget: Budget) -> np.ndarray:
    datatype, shape = tensor.get("datatype"), tensor.get("shape")
    if datatype not in PIXEL_TYPES:
        kind = "is not accepted" if datatype in DATATYPES else "is not a datatype of the protocol"
        raise InputError(f"input datatype {_quoted(datatype)} {kind}; send {ACCEPTED}")
    if not isinstance(shape, list) or not all(type(size) is int and size >= 0 for size in shape):
        raise InputError('"shape" must be a list of non-negative integers')
    if len(shape) < 2 or shape[1:] not in IMAGE_SHAPES or shape[0] < 1:
        raise InputError(f"input shape {shape} is not accepted; expected {SHAPES}")
    budget.count(shape[0])  # before any data is read or converted
    size = _parameters(tensor, f'input "{INPUT}"').get("binary_data_size")
    if size is None:
        if binary:
            raise InputError(f"{len(binary)} bytes follow the JSON header, but no input has binary_data_size")
        if "data" not in tensor:
            raise InputError(f'input "{INPUT}" needs "data", or "binary_data_size" and its bytes after the JSON')
        values = _json_values(tensor["data"], shape, datatype)
    else:
        if "data" in tensor:
            raise InputError(f'input "{INPUT}" has both "data" and "binary_data_size"; send one of them')
        values = _binary_values(binary, size, shape, datatype)
    if datatype != "UINT8":
        low, high = values.min(), values.max()
        if not (np.isfinite(low) and np.isfinite(high)):  # NaN and infinity show in the extremes
            raise InputError(NON_FINITE)
        if low < 0 or high > 1:
            raise InputError(f"{datatype} pixels must lie in 0-1; found {low:g}..{high:g}")
    return to_model_input(values.reshape(shape[0], 28, 28))


def _binary_values(binary: bytes, size, shape: list, datatype: str) -> np.ndarray:
    if type(size) is not int or size < 0:
        raise InputError('the parameter "binary_data_size" must be a byte count')
    dtype = PIXEL_TYPES[datatype]
    needed = math.prod(shape) * dtype.itemsize
    if size != needed:
        raise InputError(f"binary_data_size is {size} bytes, but shape {shape} of {datatype} needs {needed}")
    if len(binary) != size:
        raise InputError(f"binary_data_size is {size} bytes, but {len(binary)} bytes follow the JSON header")
    return np.frombuffer(binary, dtype).copy()  # writable: torch warns on a read-only buffer


def _json_values(data, shape: list, datatype: str) -> np.ndarray:
    """`data`, flat or nested exactly as `shape`, → a flat array; its leaves must be numbers of the datatype."""
    count = math.prod(shape)
    if not isinstance(data, list) or not data:
        raise InputError(f'"data" must be a list of {count} values, flat or nested as the shape {shape}')
    if type(data[0]) is list:  # nested: every level a list as long as its dimension
        level = [data]
        for size in shape:
            if set(map(type, level)) != {list} or set(map(len, level)) != {size}:
                raise InputError(f'"data" is not nested as the shape {shape}; nest it so, or send it flat')
            level = list(chain.from_iterable(level))
        data = level
    elif len(data) != count:
        raise InputError(f'"data" holds {len(data)} values, but the shape {shape} needs {count}')
    kinds = set(map(type, data))
    wanted = {int} if datatype == "UINT8" else {int, float}
    if not kinds <= wanted:
        if list in kinds:
            raise InputError(f'"data" is not nested as the shape {shape}; nest it so, or send it flat')
        names = sorted("true/false" if kind is bool else kind.__name__ for kind in kinds - wanted)
        raise InputError(f"{datatype} data must be {'integers' if datatype == 'UINT8' else 'numbers'}, not {names}")
    try:
        values = np.array(data, dtype=np.int64 if datatype == "UINT8" else np.float64)
    except OverflowError:
        raise InputError(f"a value of the {datatype} data is too large") from None
    if datatype == "UINT8":
        low, high = values.min(), values.max()
        if low < 0 or high > 255:
            raise InputError(f"UINT8 pixels must lie in 0-255; found {low}..{high}")
        return values.astype(np.uint8)
    return values


def _outputs(requested, binary_output: bool) -> tuple:
    """The outputs a request asks for: all of them when it names none, each binary or JSON."""
    if requested is None:
        return tuple(Output(name, binary_output) for name in OUTPUTS)
    if not isinstance(requested, list) or not requested:
        raise InputError('"outputs" must be a non-empty list of {"name": ...}')
    chosen = []
    for output in requested:
        name = output.get("name") if isinstance(output, dict) else None
        if name not in OUTPUTS:
            raise InputError(f'unknown output {_quoted(name)}; the model\'s outputs are "probabilities" and "digit"')
        if name in (seen.name for seen in chosen):
            raise InputError(f'output "{name}" is asked for twice')
        parameters = _parameters(output, f'output "{name}"')
        if "classification" in parameters:
            raise InputError("the classification extension is not supported; ask for the output as a tensor")
        binary = parameters.get("binary_data", binary_output)
        if not isinstance(binary, bool):
            raise InputError(f'the parameter "binary_data" of output "{name}" must be true or false')
        chosen.append(Output(name, binary))
    return tuple(chosen)


def _quoted(value) -> str:
    return f'"{value}"' if isinstance(value, str) else repr(value)
