"""The Open Inference Protocol (KServe v2) over REST: what KServe, Triton, Seldon MLServer and their clients speak.

Health, server metadata, model metadata and readiness, and inference, with and without
`/versions/{v}`, as kserve's docs/predict-api/v2/required_api.md defines them, and Triton's binary
tensor data extension (`kserve_tensors`). The requests go through the same machinery as the other APIs:
the model store's versions, the in-flight bound, the request budget and the micro-batcher.
"""

import os
import re

from flask import Response, jsonify, request

from .. import __version__
from . import NAME
from .inputs import InputError
from .kserve_tensors import INPUT, OUTPUTS, decode_request, encode_response
from .model_store import NotServed

EXTENSIONS = ["binary_tensor_data"]
MODEL_ROUTE = "/v2/models/<model_name>"
VERSION_ROUTE = "/v2/models/<model_name>/versions/<model_version>"


def model_metadata(versions: list, model_file: str) -> dict:
    """The model metadata answer: the input in its canonical form; -1 is the batch."""
    return {
        "name": NAME,
        "versions": versions,
        "platform": "keras_" + os.path.splitext(model_file)[1].lstrip("."),  # "<project>_<format>", as the spec says
        "inputs": [{"name": INPUT, "datatype": "FP32", "shape": [-1, 28, 28, 1]}],
        "outputs": [
            {"name": name, "datatype": datatype, "shape": [-1, 10] if name == "probabilities" else [-1]}
            for name, datatype in OUTPUTS.items()
        ],
    }


def register(app, store, budget, admitting, classify, not_found):
    """Add the v2 routes to `app`.

    `budget` (inputs.Budget) and `admitting` (the in-flight bound's decorator) are the app's own;
    `classify(images, predictor)` runs the micro-batcher; `not_found` is the app's 404 exception.
    """
    draining = app.extensions["cnn_mnist"].draining

    def served(model_name, model_version):
        """The store's Version that the URL names; a 404 for any other model or version."""
        if model_name != NAME:
            raise not_found(f"Request for unknown model: '{model_name}' is not found")
        unknown = f"Request for unknown model: '{model_name}' version {model_version} is not found"
        if model_version is not None and not re.fullmatch(r"[0-9]+", model_version):
            raise not_found(unknown)
        try:
            return store.find(None if model_version is None else str(int(model_version)))
        except NotServed:
            raise not_found(unknown) from None

    @app.get("/v2/health/live")
    def v2_live():
        return "", 200

    @app.get("/v2/health/ready")
    def v2_ready():
        if draining.is_set():  # a 4xx means "not ready" in the protocol (Triton answers 400)
            return jsonify({"error": "the server is draining after SIGTERM; send requests elsewhere"}), 400
        return "", 200

    @app.get("/v2")
    def v2_server():
        return jsonify({"name": NAME, "version": __version__, "extensions": EXTENSIONS})

    @app.get(MODEL_ROUTE)
    @app.get(VERSION_ROUTE)
    def v2_model(model_name, model_version=None):
        info = served(model_name, model_version).predictor.info
        versions = sorted(store.serving.versions, key=int) if model_version is None else [info.version]
        return jsonify(model_metadata(versions, info.path))

    @app.get(f"{MODEL_ROUTE}/ready")
    @app.get(f"{VERSION_ROUTE}/ready")
    def v2_model_ready(model_name, model_version=None):
        served(model_name, model_version)  # a served version is loaded, canary-checked and warmed
        return "", 200

    @app.post(f"{MODEL_ROUTE}/infer")
    @app.post(f"{VERSION_ROUTE}/infer")
    @admitting
    def v2_infer(model_name, model_version=None):
        predictor = served(model_name, model_version).predictor
        encoding = request.headers.get("Content-Encoding", "identity")
        if encoding != "identity":
            raise InputError(f"Content-Encoding {encoding} is not supported; send the body uncompressed", 415)
        header_length = request.headers.get("Inference-Header-Content-Length")
        inference = decode_request(request.get_data(), header_length, budget, app.json.loads)
        probabilities, info = classify(inference.images, predictor)
        body, headers = encode_response(inference, info.name, info.version, probabilities, app.json.dumps)
        return Response(body, headers=headers)
