"""Turning request bodies into model input, with a clear 4xx for everything malformed or too costly.

Every function here either returns float32 images of shape (N, 28, 28, 1) in 0-1 or raises InputError.
What a request may cost is its `Budget`, checked before the cost is paid: the images are counted, and
every encoded image's size is read from its header (PIL's `Image.open` reads no further) before the
first one is decoded.
"""

import base64
import binascii
import io
import json
from dataclasses import dataclass
from itertools import chain

import numpy as np
from flask import request
from PIL import Image, UnidentifiedImageError

from ..core.errors import ImageError
from ..core.preprocessing import mnist_like, to_model_input

PIXELS = 28 * 28
IMAGE_SHAPES = {(PIXELS,), (28, 28), (28, 28, 1)}
IMAGE_FORMATS = {"PNG", "JPEG", "GIF", "BMP", "WEBP", "TIFF"}
SIGNATURE = "serving_default"  # TF Serving's default signature name, the only one the model has
INPUT_NAME = "inputs"  # the signature's one input, as TF Serving's metadata names it (openapi.tf_serving_metadata)
NON_FINITE = "pixels must be finite numbers (no NaN or infinity)"
JSON_TYPES = {bool: "true/false", str: "strings", dict: "objects", type(None): "null"}
NUMBER_AND_LIST_BYTES = b"0123456789+-.eE,[] \t\r\n"  # all that JSON numbers and arrays are written with


class InputError(Exception):
    """A request the client must fix; `status` is the HTTP code to answer with (400, 413 or 415)."""

    def __init__(self, message: str, status: int = 400):
        super().__init__(message)
        self.status = status


def json_object() -> dict:
    """The request's body as a JSON object, else InputError: broken JSON, another JSON type, or too deep."""
    try:
        body = request.get_json(force=True, silent=True)
    except RecursionError:  # `silent` covers ValueError only; the parser's depth limit raises this
        raise InputError("the JSON body is nested too deeply") from None
    if not isinstance(body, dict):
        raise InputError("the body must be a JSON object")
    return body


@dataclass(frozen=True)
class Budget:
    """What one request may cost: its images, the pixels of one encoded image, and of all of them together.

    Decoding and resampling cost 8-32 ms of CPU a megapixel whatever the file's size (a 4096x4096 PNG of
    one pen stroke is 26 KB and 131 ms, an opaque RGBA PNG of 4096x3072 59 KB and 400 ms), and even a 3x3
    PNG 0.7 ms (bench/cost_limits.py, AMD EPYC), so both the pixels and the images are bounded.
    """

    images: int
    image_pixels: int
    request_pixels: int

    def count(self, images: int) -> None:
        if images > self.images:
            raise InputError(f"the request holds {images} images; at most {self.images} are accepted", 413)


def decode_images(encoded: list, budget: Budget) -> np.ndarray:
    """Encoded images (PNG, JPEG, …) of one digit each → (N, 28, 28, 1) model input, via `mnist_like`.

    All the headers are read, and the whole budget checked, before the first image is decoded.
    """
    budget.count(len(encoded))
    images = [_open(data, budget.image_pixels) for data in encoded]
    pixels = sum(image.width * image.height for image in images)
    if pixels > budget.request_pixels:
        raise InputError(
            f"the request's images hold {pixels} pixels together; at most {budget.request_pixels} are accepted", 413
        )
    return to_model_input(np.stack([_digit(image) for image in images]))


def decode_base64_images(texts: list, budget: Budget) -> np.ndarray:
    """Base64 strings or `data:image/...;base64,` URLs → (N, 28, 28, 1), as `decode_images`."""
    budget.count(len(texts))  # before the base64: 4 MiB holds 39,000 tiny images, 38 ms to decode
    return decode_images([_base64_bytes(text) for text in texts], budget)


def _base64_bytes(text) -> bytes:
    if not isinstance(text, str):
        raise InputError("an image must be a base64 string or a data: URL")
    if text.startswith("data:"):
        header, _, text = text.partition(",")
        if not header.endswith(";base64"):
            raise InputError("a data: URL must be base64-encoded (data:image/png;base64,...)")
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise InputError("image is not valid base64") from None


def _open(data: bytes, max_pixels: int) -> Image.Image:
    """The image, its header read and nothing decoded; refused when its format or size is not accepted."""
    try:
        image = Image.open(io.BytesIO(data))
    except Image.DecompressionBombError as error:  # PIL's own limit, past 2 x 89 Mpx: far over ours
        raise InputError(f"image is too large: {error}", 413) from None
    except UnidentifiedImageError as error:
        raise InputError(f"not a readable image: {error}") from None
    except (OSError, SyntaxError, ValueError) as error:  # a header cut short or corrupt
        raise InputError(f"corrupt image data: {error}") from None
    if image.format not in IMAGE_FORMATS:
        raise InputError(f"unsupported image format {image.format}; send PNG or JPEG", 415)
    width, height = image.size
    # On the header, before decoding: this is what refuses a decompression bomb. (PIL's own check, a
    # DecompressionBombWarning from 89 Mpx, would need warnings.catch_warnings, which is not thread-safe.)
    if width * height > max_pixels:
        raise InputError(f"image is {width}x{height} pixels; at most {max_pixels} pixels are accepted", 413)
    return image


def _digit(image: Image.Image) -> np.ndarray:
    """Decode an opened image and bring it into MNIST's form: (28, 28) uint8."""
    try:
        image.load()
    except (OSError, SyntaxError, ValueError) as error:  # truncated or corrupt image data
        raise InputError(f"corrupt image data: {error}") from None
    if image.mode == "F" and not np.isfinite(np.asarray(image)).all():  # a float TIFF can hold them
        raise InputError(NON_FINITE)
    try:
        return mnist_like(image)
    except ImageError as error:
        raise InputError(str(error)) from None


def only_numbers_under(raw: bytes, key: str) -> bool:
    """Whether the JSON body `raw` is `{"<key>": ...}` with nothing but numbers and lists in its value.

    Read off the bytes, in C: any other JSON value needs a quote (a string), a brace (an object) or a
    letter other than e/E (true, false, null). What is left once the bytes of numbers and lists are
    deleted must then be exactly the braces and the key. This spares `pixel_array` its per-value type
    scan (20 µs a digit, 0.3 ms for 16); a body it cannot vouch for is scanned.
    """
    left = raw.translate(None, NUMBER_AND_LIST_BYTES)
    return left == f'{{"{key}":}}'.encode().translate(None, NUMBER_AND_LIST_BYTES)


def pixel_array(value, budget: Budget, *, unit_range_only: bool, numbers_only: bool = False) -> tuple:
    """Nested lists of numbers → (images (N, 28, 28, 1), is_batch).

    Accepts one image (784, 28x28 or 28x28x1) or a batch of at most `budget.images`. Values are 0-255 or 0-1
    (decided by the largest value); with `unit_range_only` (the model's own input) only 0-1.
    `numbers_only`: the caller has proven (`only_numbers_under`) that every leaf is an int or a float.
    """
    others = set() if numbers_only else _leaf_types(value) - {int, float}
    if others:  # numpy would read true as 1.0 and "7" as 7.0; TF Serving refuses both for a float input
        names = sorted(JSON_TYPES.get(kind, kind.__name__) for kind in others)
        raise InputError(f"pixels must be numbers, not {' or '.join(names)}")
    try:
        with np.errstate(over="ignore"):  # 1e300 becomes infinity, refused below
            array = np.asarray(value, dtype=np.float32)
    except (TypeError, ValueError):
        raise InputError("pixels must be a rectangular array of numbers") from None
    except OverflowError:  # an integer of hundreds of digits: JSON allows it, a float cannot hold it
        raise InputError("pixel values must lie in 0-255 or 0-1; found an integer too large for a float") from None
    if array.shape in IMAGE_SHAPES:
        array, is_batch = array[np.newaxis], False
    elif array.ndim >= 2 and array.shape[1:] in IMAGE_SHAPES and len(array):
        budget.count(len(array))  # before the forward passes, the costly part
        is_batch = True
    else:
        raise InputError(f"pixels have shape {list(array.shape)}; expected 784, 28x28 or 28x28x1 (or a batch of them)")
    low, high = array.min(), array.max()
    if not (np.isfinite(low) and np.isfinite(high)):  # NaN and infinity show in the extremes
        raise InputError(NON_FINITE)
    limit = 1 if unit_range_only or high <= 1 else 255
    if low < 0 or high > limit:
        expected = "0-1 (the model's input)" if unit_range_only else "0-255 or 0-1"
        raise InputError(f"pixel values must lie in {expected}; found {low:g}..{high:g}")
    return to_model_input((array / np.float32(limit)).reshape(len(array), 28, 28)), is_batch


def _leaf_types(value) -> set:
    """The types of everything in nested lists that is not a list, one nesting level at a time.

    A level of lists only is flattened by `chain` at C speed (half the time of a comprehension: 22 µs
    for one digit, 0.3 ms for 16); only a ragged level, which numpy refuses anyway, takes the slow path.
    """
    kinds, level = set(), [value]
    while level:
        types = set(map(type, level))
        kinds |= types - {list}
        if list not in types:
            break
        level = (
            list(chain.from_iterable(level)) if len(types) == 1 else [i for x in level if type(x) is list for i in x]
        )
    return kinds


def tf_serving_input(body: dict, raw: bytes, budget: Budget) -> tuple:
    """TensorFlow Serving's REST request → (images, answer key): `instances` (row) or `inputs` (columnar).

    Read as TF Serving's FillPredictRequestFromJson reads it (util/json_tensor.cc): the signature name must be a
    string ("" is the default), exactly one of the two keys, `instances` a non-empty list of all plain or all
    named rows, a name the signature's input's. `raw`: the body as it came, which may spare the pixel type scan.
    """
    signature = body.get("signature_name", SIGNATURE)
    if not isinstance(signature, str):
        raise InputError("'signature_name' key must be a string value.")
    if signature not in ("", SIGNATURE):
        raise InputError(
            f"Serving signature name: {json.dumps(signature)} not found in signature def; "
            f'the model\'s one signature is "{SIGNATURE}"'
        )
    if ("instances" in body) == ("inputs" in body):
        raise InputError('the request needs exactly one of "instances" (row format) or "inputs" (columnar format)')
    key = "instances" if "instances" in body else "inputs"
    value = _rows(body[key]) if key == "instances" else _column(body[key])
    images, is_batch = pixel_array(value, budget, unit_range_only=True, numbers_only=only_numbers_under(raw, key))
    if not is_batch:
        raise InputError(f'"{key}" must hold a batch: a list of 28x28x1 instances')
    return images, "predictions" if key == "instances" else "outputs"


def _rows(instances) -> list:
    """The row format's images: plain rows, or rows that are objects naming the one input; never a mix."""
    if not isinstance(instances, list) or not instances:
        raise InputError('"instances" must be a non-empty list (the row format)')
    named = [isinstance(instance, dict) for instance in instances]
    if named[0] and not all(named):
        raise InputError(f"Expecting object but got list at item {named.index(False)} of input list")
    if not named[0] and any(named):
        raise InputError(f"Expecting value/list but got object at item {named.index(True)} of input list")
    if not named[0]:
        return instances
    for item, instance in enumerate(instances):
        if instance.keys() != {INPUT_NAME}:
            raise InputError(
                f"Failed to process element: {item} of 'instances' list: an object must hold the single input's "
                f'name, "{INPUT_NAME}", and only it; got {json.dumps(sorted(instance))}'
            )
    return [instance[INPUT_NAME] for instance in instances]


def _column(inputs):
    """The columnar format's batch: the tensor itself, or an object holding it under the input's name.

    As TF Serving, the object's other keys are not read: only the signature's inputs are looked up.
    """
    if not isinstance(inputs, dict):
        return inputs
    if INPUT_NAME not in inputs:
        raise InputError(
            f"Missing named input: {INPUT_NAME} in 'inputs' object; the model has one input, "
            f'"{INPUT_NAME}", and got {json.dumps(sorted(inputs))}'
        )
    return inputs[INPUT_NAME]
