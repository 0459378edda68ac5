"""The web app: a drawing page, the JSON API, TensorFlow Serving's REST API, health and metrics.

`create_app` is a Flask app factory; `cnn_mnist.serve` runs it under waitress.
"""

import concurrent.futures
import logging
import re
import time
from types import SimpleNamespace

import numpy as np
from flask import Flask, g, jsonify, request
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from werkzeug.exceptions import HTTPException, RequestEntityTooLarge
from werkzeug.routing import BaseConverter

from . import openapi
from .batching import MicroBatcher
from .defaults import SERVER
from .inputs import InputError, decode_base64_image, decode_image, pixel_array, tf_serving_input
from .metrics import Metrics
from .model_store import ModelStore
from .preprocessing import to_model_input

log = logging.getLogger(__name__)
MODEL_NAME = "cnn-mnist"
DEFAULTS = {
    "MODEL": "out/model.keras",
    "MAX_BATCH_SIZE": SERVER["max_batch_size"],  # images per forward pass
    "MAX_BATCH_DELAY_MS": SERVER["max_batch_delay_ms"],  # how long a request may wait for others to share its batch
    "MAX_BODY_BYTES": SERVER["max_body_bytes"],
    "MAX_IMAGE_PIXELS": 4096 * 4096,  # larger uploads are refused before decoding (decompression bombs)
}


class OtherModelName(BaseConverter):
    """A model name in a TF Serving URL that is not ours: those get TF Serving's 404, ours its 405s."""

    regex = rf"(?!{re.escape(MODEL_NAME)}(?![^/:]))[^/]+"


def create_app(config=None) -> Flask:
    app = Flask(__name__)
    app.config.from_mapping(DEFAULTS)
    app.config.from_mapping(config or {})
    app.config["MAX_CONTENT_LENGTH"] = app.config["MAX_BODY_BYTES"]
    app.json.sort_keys = False

    metrics = Metrics()
    store = ModelStore(app.config["MODEL"], app.config["MAX_BATCH_SIZE"], on_swap=metrics.record_swap)
    metrics.record_model(store.predictor.info)
    batcher = MicroBatcher(
        lambda: store.predictor,
        app.config["MAX_BATCH_SIZE"],
        app.config["MAX_BATCH_DELAY_MS"] / 1000,
        on_batch=metrics.record_batch,
    )
    app.extensions["cnn_mnist"] = SimpleNamespace(store=store, batcher=batcher, metrics=metrics)
    app.url_map.converters["other_model"] = OtherModelName
    _register_routes(app, store, batcher, metrics)
    _register_errors(app, metrics)
    return app


def _classify(batcher, images: np.ndarray):
    try:
        return batcher.predict(images)
    except concurrent.futures.TimeoutError:
        raise InputError("the model is overloaded; try again", 503) from None


def _register_routes(app, store, batcher, metrics):
    max_pixels = app.config["MAX_IMAGE_PIXELS"]

    @app.get("/")
    def index():
        return app.send_static_file("index.html")

    @app.post("/predict")
    def predict():
        images, is_batch = _predict_request(max_pixels)
        probabilities, info = _classify(batcher, images)
        model = info.as_json()
        answers = [{"digit": int(row.argmax()), "probabilities": row.tolist(), "model": model} for row in probabilities]
        return jsonify(answers if is_batch else answers[0])

    @app.post(f"/v1/models/{MODEL_NAME}:predict")
    def tf_serving_predict():
        images, key = tf_serving_input(_json_object())
        probabilities, _ = _classify(batcher, images)
        return jsonify({key: probabilities.tolist()})

    @app.get(f"/v1/models/{MODEL_NAME}")
    def tf_serving_status():
        return jsonify({"model_version_status": store.status()})

    @app.get(f"/v1/models/{MODEL_NAME}/metadata")
    def tf_serving_metadata():
        return jsonify(openapi.tf_serving_metadata(MODEL_NAME, store.predictor.info.version))

    @app.route("/v1/models/<other_model:name>", methods=["GET", "POST"])
    @app.route("/v1/models/<other_model:name>/<path:rest>", methods=["GET", "POST"])
    def tf_serving_unknown(name, rest=""):
        return jsonify({"error": f"Servable not found for request: Latest({name.split(':')[0]})"}), 404

    @app.get("/healthz")
    def healthz():
        return jsonify({"status": "alive"})

    @app.get("/readyz")
    def readyz():
        return jsonify({"status": "ready", "model": store.predictor.info.as_json()})

    @app.get("/metrics")
    def prometheus():
        return generate_latest(metrics.registry), 200, {"Content-Type": CONTENT_TYPE_LATEST}

    @app.get("/openapi.json")
    def openapi_json():
        return jsonify(openapi.SPEC)


def _json_object() -> dict:
    try:
        body = request.get_json(force=True, silent=True)
    except RecursionError:  # `silent` covers ValueError only; the parser's depth limit raises this
        raise InputError("the JSON body is nested too deeply") from None
    if not isinstance(body, dict):
        raise InputError("the body must be a JSON object")
    return body


def _predict_request(max_pixels: int):
    """The /predict body in any of its forms → (images, whether the client sent a batch)."""
    if request.mimetype == "multipart/form-data":
        uploads = request.files.getlist("image")
        if not uploads:
            raise InputError('a multipart upload needs its file in the field "image"')
        digits = [decode_image(upload.read(), max_pixels) for upload in uploads]
        return to_model_input(np.stack(digits)), len(uploads) > 1
    body = _json_object()
    forms = [key for key in ("image", "images", "pixels") if key in body]
    if len(forms) != 1:
        raise InputError('send exactly one of "image" (base64 or data: URL), "images" (a list), or "pixels"')
    if forms[0] == "pixels":
        return pixel_array(body["pixels"], unit_range_only=False)
    is_batch = forms[0] == "images"
    encoded = body["images"] if is_batch else [body["image"]]
    if not isinstance(encoded, list) or not encoded:
        raise InputError('"images" must be a non-empty list of base64 images')
    digits = [decode_base64_image(value, max_pixels) for value in encoded]
    return to_model_input(np.stack(digits)), is_batch


def _register_errors(app, metrics):
    @app.before_request
    def start_timer():
        g.started = time.perf_counter()

    @app.after_request
    def record(response):
        route = request.url_rule.rule if request.url_rule else "unmatched"
        metrics.requests.labels(route, request.method, str(response.status_code)).inc()
        if "started" in g:
            metrics.latency.labels(route).observe(time.perf_counter() - g.started)
        return response

    @app.errorhandler(InputError)
    def input_error(error):
        return jsonify({"error": str(error)}), error.status

    @app.errorhandler(RequestEntityTooLarge)
    def too_large(error):
        limit = app.config["MAX_BODY_BYTES"]
        return jsonify({"error": f"the request body is over the {limit}-byte limit"}), 413

    @app.errorhandler(HTTPException)
    def http_error(error):
        # Keep Werkzeug's headers (a 405's Allow), with our JSON body in place of its HTML page.
        headers = [(name, value) for name, value in error.get_response().headers
                   if name not in ("Content-Type", "Content-Length")]
        return jsonify({"error": f"{error.name}: {error.description}"}), error.code, headers

    @app.errorhandler(Exception)
    def server_error(error):
        log.exception("unhandled error on %s %s", request.method, request.path)
        return jsonify({"error": "internal server error"}), 500
