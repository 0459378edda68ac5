"""The app's JSON provider decodes exactly what the standard library decodes, and answers in build order."""

import json
import math

import pytest
from flask import Flask

from cnn_mnist.serving.jsonio import FastJSONProvider

BODIES = [
    b'{"pixels": [0, 1.5, 255]}',
    b'{"b": 1, "a": [true, null, "\\u00e9"]}',
    b"[NaN, Infinity, -Infinity]",  # orjson refuses these literals; the standard library takes them
    b'"\\ud800"',  # a lone surrogate
]


@pytest.fixture(scope="module")
def provider():
    return FastJSONProvider(Flask(__name__))


def same(a, b):
    if isinstance(a, float) and math.isnan(a):
        return isinstance(b, float) and math.isnan(b)
    if isinstance(a, list):
        return isinstance(b, list) and len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict):
        return isinstance(b, dict) and a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    return type(a) is type(b) and a == b


@pytest.mark.parametrize("body", BODIES, ids=range(len(BODIES)))
def test_decodes_like_the_standard_library(provider, body):
    assert same(provider.loads(body), json.loads(body))


@pytest.mark.parametrize("body", [b"{", b"", b"[1,]", b"{'a': 1}"])
def test_refuses_what_the_standard_library_refuses(provider, body):
    with pytest.raises(json.JSONDecodeError):
        provider.loads(body)


def test_nesting_beyond_both_parsers_fails_as_the_standard_library_does(provider):
    with pytest.raises(RecursionError):  # the app turns this into a 400
        provider.loads(b"[" * 100_000 + b"]" * 100_000)


def test_integers_beyond_64_bits_decode_as_floats(provider):
    assert provider.loads(b'{"n": 123456789012345678901234567890}') == {"n": pytest.approx(1.2345678901234568e29)}


def test_answers_keep_their_order_and_are_valid_json(provider):
    answer = {"digit": 7, "probabilities": [0.25, 0.75], "model": {"name": "cnn_mnist", "version": "1"}}
    text = provider.dumps(answer)
    assert list(json.loads(text)) == ["digit", "probabilities", "model"] and json.loads(text) == answer
    assert json.loads(provider.dumps(answer, indent=2)) == answer


def test_encodes_what_orjson_refuses_as_the_standard_library_does(provider):
    deep = [[[[0]]]]
    for _ in range(300):  # deeper than orjson encodes
        deep = [deep]
    for value in (deep, {"n": 2**70}):
        assert json.loads(provider.dumps(value)) == value
