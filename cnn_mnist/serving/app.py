"""The web app: a drawing page, the JSON API, TensorFlow Serving's REST API, health and metrics.

`create_app` is a Flask app factory; `cnn_mnist.serving.cli` runs it under waitress.
"""

import functools
import logging
import re
import threading
import time
from types import SimpleNamespace

import numpy as np
from flask import Flask, g, jsonify, request
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from werkzeug.exceptions import HTTPException, RequestEntityTooLarge
from werkzeug.routing import BaseConverter, ValidationError

from ..core.preprocessing import png_data_url
from . import NAME, corrections_api, kserve_v2, openapi, tf_serving
from .batching import MicroBatcher
from .canary import CanarySet, load_canary
from .defaults import SERVER
from .inputs import (
    Budget,
    InputError,
    decode_base64_images,
    decode_images,
    json_object,
    only_numbers_under,
    pixel_array,
)
from .jsonio import FastJSONProvider
from .metrics import Metrics
from .model_store import ModelStore, NotServed

log = logging.getLogger(__name__)
MODEL_NAME = NAME
DEFAULTS = {
    "MODEL": "out/model.keras",
    "MAX_BATCH_SIZE": SERVER["max_batch_size"],  # images per forward pass
    "MAX_BATCH_DELAY_MS": SERVER["max_batch_delay_ms"],  # how long a request may wait for others to share its batch
    "MAX_BODY_BYTES": SERVER["max_body_bytes"],
    # What one request may cost (inputs.Budget), checked on the image headers before anything is decoded:
    "MAX_IMAGES_PER_REQUEST": SERVER["max_images_per_request"],
    "MAX_IMAGE_PIXELS": SERVER["max_image_pixels"],
    "MAX_REQUEST_PIXELS": SERVER["max_request_pixels"],
    "MAX_IN_FLIGHT": SERVER["max_in_flight"],  # prediction requests answered at once; more get a 503
    "CANARY": None,  # a path (Keras mnist.npz or IDX directory), a loaded CanarySet, or None for the shipped set
    "MIN_ACCURACY": SERVER["min_accuracy"],  # canary accuracy below which a model never serves
    "MAX_REGRESSION": SERVER["max_regression"],  # how far below the serving model a reloaded one may score
    "CORRECTIONS": None,  # the corrections store (a SQLite path, a postgresql:// URL, or a Store); None: off
    "CORRECTIONS_PER_MINUTE": SERVER["corrections_per_minute"],  # per client; 0: no limit
    "TRUSTED_PROXIES": (),  # ipaddress networks whose X-Forwarded-For names the client (client_address.py)
}


# What a 503 asks a client to wait: a full server answers within it (p99 0.16 s with --max-in-flight 16 and
# twice as many clients, on 2 CPUs: bench/cost_limits.py), and HTTP counts it in whole seconds.
RETRY_AFTER_SECONDS = 1


class NotFoundError(Exception):
    """No such model version (a 404, as TensorFlow Serving's NOT_FOUND): the client named what is not there."""


class UnavailableError(Exception):
    """The server cannot take the request now (a 503 with Retry-After): the same request may succeed later."""


class VersionNumber(BaseConverter):
    """A version in a URL: digits, read as TF Serving reads them (`007` is version 7, none above int64)."""

    regex = r"\d+"

    def to_python(self, value):
        if int(value) > tf_serving.INT64_MAX:  # no route: TF Serving's "Failed to convert version" (tf_serving.py)
            raise ValidationError()
        return str(int(value))


class VersionLabel(BaseConverter):
    regex = r"[^/:]+"


def create_app(config=None) -> Flask:
    app = Flask(__name__)
    app.config.from_mapping(DEFAULTS)
    app.config.from_mapping(config or {})
    app.config["MAX_CONTENT_LENGTH"] = app.config["MAX_BODY_BYTES"]
    app.json = FastJSONProvider(app)

    metrics = Metrics()
    canary = app.config["CANARY"]
    store = ModelStore(
        app.config["MODEL"],
        canary if isinstance(canary, CanarySet) else load_canary(canary),
        min_accuracy=app.config["MIN_ACCURACY"],
        max_regression=app.config["MAX_REGRESSION"],
        max_batch_size=app.config["MAX_BATCH_SIZE"],
        on_swap=metrics.record_swap,
    )
    metrics.record_serving(store.serving)
    batcher = MicroBatcher(
        app.config["MAX_BATCH_SIZE"],
        app.config["MAX_BATCH_DELAY_MS"] / 1000,
        on_batch=metrics.record_batch,
    )
    # set when SIGTERM starts the drain (serving.cli): /readyz then says 503, so that load balancers stop first
    draining = threading.Event()
    app.extensions["cnn_mnist"] = SimpleNamespace(store=store, batcher=batcher, metrics=metrics, draining=draining)
    app.url_map.converters.update(version=VersionNumber, label=VersionLabel)
    _register_routes(app, store, batcher, metrics)
    _register_errors(app, metrics)
    corrections_api.register(app, metrics)
    return app


def _classify(batcher, images: np.ndarray, predictor):
    try:
        return batcher.predict(images, predictor)
    except TimeoutError:
        raise UnavailableError("the model is overloaded; try again") from None


def _admitting(limit: int, metrics):
    """A decorator for the routes that decode and classify: at most `limit` requests in them at once.

    Past it a request is refused at once, before its body is parsed, instead of waiting for CPU that
    the requests ahead of it already share; `metrics` shows those in flight and those refused.
    """
    slots = threading.BoundedSemaphore(limit)
    metrics.max_in_flight.set(limit)

    def decorate(view):
        @functools.wraps(view)
        def admitted(*args, **kwargs):
            if not slots.acquire(blocking=False):
                metrics.refused.inc()
                raise UnavailableError(f"the server is answering {limit} predictions already; try again")
            try:
                with metrics.in_flight.track_inprogress():
                    return view(*args, **kwargs)
            finally:
                slots.release()

        return admitted

    return decorate


def _register_routes(app, store, batcher, metrics):
    budget = Budget(
        app.config["MAX_IMAGES_PER_REQUEST"], app.config["MAX_IMAGE_PIXELS"], app.config["MAX_REQUEST_PIXELS"]
    )
    admitting = _admitting(app.config["MAX_IN_FLIGHT"], metrics)
    kserve_v2.register(app, store, budget, admitting, functools.partial(_classify, batcher), NotFoundError)

    @app.get("/")
    def index():
        return app.send_static_file("index.html")

    def served(version=None, label=None):
        """The Version a request names, or TensorFlow Serving's error for one that does not serve."""
        try:
            return store.find(version, label)
        except NotServed as error:
            # as TF Serving answers: an unknown version is NOT_FOUND (404), an unknown label INVALID_ARGUMENT (400)
            raise (NotFoundError if error.status == 404 else InputError)(str(error)) from None

    @app.post("/predict")
    @admitting
    def predict():
        images, is_batch, include_input = _predict_request(budget)
        probabilities, info = _classify(batcher, images, served(**_version_request()).predictor)
        model = info.as_json()
        answers = [{"digit": int(row.argmax()), "probabilities": row.tolist(), "model": model} for row in probabilities]
        if include_input:  # the 28x28 image the model saw, to see why a drawing was misread
            for answer, image in zip(answers, images, strict=True):
                answer["input"] = png_data_url(image)
        return jsonify(answers if is_batch else answers[0])

    tf_serving.register(app, store, served, functools.partial(_classify, batcher), admitting, budget)

    @app.get("/healthz")
    def healthz():
        return jsonify({"status": "alive"})

    @app.get("/readyz")
    def readyz():
        if app.extensions["cnn_mnist"].draining.is_set():
            return jsonify({"status": "draining"}), 503
        serving = store.serving
        default = serving.default_version
        return jsonify(
            {
                "status": "ready",
                "model": {**default.predictor.info.as_json(), "canary_accuracy": default.canary_accuracy},
                "versions": {number: entry.canary_accuracy for number, entry in sorted(serving.versions.items())},
                "labels": serving.labels,
                "corrections": app.extensions["corrections"] is not None,  # the page shows its buttons if true
            }
        )

    @app.get("/metrics")
    def prometheus():
        return generate_latest(metrics.registry), 200, {"Content-Type": CONTENT_TYPE_LATEST}

    @app.get("/openapi.json")
    def openapi_json():
        return jsonify(openapi.SPEC)


def _version_request() -> dict:
    """The optional "version" or "label" of a /predict request (JSON body or multipart form field)."""
    fields = request.form if request.mimetype == "multipart/form-data" else json_object()
    chosen = {key: fields[key] for key in ("version", "label") if key in fields}
    if len(chosen) > 1:
        raise InputError('send at most one of "version" and "label"')
    if "version" in chosen and not re.fullmatch(r"\d+", str(chosen["version"])):
        raise InputError('"version" must be a version number such as 2 or "2"')
    if "label" in chosen and not isinstance(chosen["label"], str):
        raise InputError('"label" must be a string such as "stable"')
    return {key: str(int(value)) if key == "version" else value for key, value in chosen.items()}


def _predict_request(budget: Budget):
    """The /predict body in any of its forms → (images, whether the client sent a batch, include_input)."""
    if request.mimetype == "multipart/form-data":
        uploads = request.files.getlist("image")
        if not uploads:
            raise InputError('a multipart upload needs its file in the field "image"')
        include_input = request.form.get("include_input", "false")
        if include_input not in ("true", "false"):
            raise InputError('the form field "include_input" must be true or false')
        return decode_images([upload.read() for upload in uploads], budget), len(uploads) > 1, include_input == "true"
    body = json_object()
    include_input = body.get("include_input", False)
    if not isinstance(include_input, bool):
        raise InputError('"include_input" must be true or false')
    forms = [key for key in ("image", "images", "pixels") if key in body]
    if len(forms) != 1:
        raise InputError('send exactly one of "image" (base64 or data: URL), "images" (a list), or "pixels"')
    if forms[0] == "pixels":
        numbers_only = only_numbers_under(request.get_data(), "pixels")  # the bytes get_json has cached
        return *pixel_array(body["pixels"], budget, unit_range_only=False, numbers_only=numbers_only), include_input
    is_batch = forms[0] == "images"
    encoded = body["images"] if is_batch else [body["image"]]
    if not isinstance(encoded, list) or not encoded:
        raise InputError('"images" must be a non-empty list of base64 images')
    return decode_base64_images(encoded, budget), is_batch, include_input


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

    @app.errorhandler(NotFoundError)
    def not_found(error):
        return jsonify({"error": str(error)}), 404

    @app.errorhandler(UnavailableError)
    def unavailable(error):
        return jsonify({"error": str(error)}), 503, {"Retry-After": str(RETRY_AFTER_SECONDS)}

    @app.errorhandler(RequestEntityTooLarge)
    def too_large(error):
        limit = app.config["MAX_BODY_BYTES"]
        return jsonify({"error": f"the request body is over the {limit}-byte limit"}), 413

    @app.errorhandler(HTTPException)
    def http_error(error):
        # Keep Werkzeug's headers (a 405's Allow), with our JSON body in place of its HTML page.
        headers = [
            (name, value)
            for name, value in error.get_response().headers
            if name not in ("Content-Type", "Content-Length")
        ]
        return jsonify({"error": f"{error.name}: {error.description}"}), error.code, headers

    @app.errorhandler(Exception)
    def server_error(error):
        log.exception("unhandled error on %s %s", request.method, request.path)
        return jsonify({"error": "internal server error"}), 500
