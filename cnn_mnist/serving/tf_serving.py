"""TensorFlow Serving's REST API (v1): predict, status and metadata, answered as TF Serving answers them.

The statuses are those of TF Serving's handler (model_servers/http_rest_api_handler.cc) through its
code-to-HTTP mapping (http_server.cc): INVALID_ARGUMENT is 400 and NOT_FOUND 404, and every error is
{"error": "..."}. tests/test_tf_serving_conformance.py replays TF Serving's own test cases against it;
docs/api.md lists where we answer otherwise on purpose.
"""

import re

from flask import jsonify, request
from werkzeug.exceptions import MethodNotAllowed, NotFound

from . import NAME, openapi
from .inputs import InputError, json_object, tf_serving_input

INT64_MAX = 2**63 - 1  # TF Serving reads a version with absl::SimpleAtoi into an int64
# The two paths TF Serving's handler knows (http_rest_api_handler.cc); under /v1/ anything else is a 400.
PREDICTION_PATH = re.compile(r"/v1/models/([^/:]+)(?:/versions/(\d+)|/labels/([^/:]+))?:(classify|regress|predict)")
STATUS_PATH = re.compile(r"/v1/models(?:/([^/:]+))?(?:/versions/(\d+)|/labels/([^/:]+))?(?:/(metadata))?")
SCOPES = ("", "/versions/<version:version>", "/labels/<label:label>")  # the model, one version, one label


def register(app, store, served, classify, admitting, budget):
    """Add TF Serving's routes for our model, and its 400s and 404s for every other path under /v1/.

    `served(version, label)` finds the Version or raises TF Serving's error, `classify(images, predictor)`
    runs the batcher, and `admitting` bounds the predictions in flight.
    """
    prefix = f"/v1/models/{NAME}"

    def route(suffix, method):
        def decorate(view):
            for scope in SCOPES:
                app.add_url_rule(prefix + scope + suffix, view_func=view, methods=[method])
            return view

        return decorate

    @route(":predict", "POST")
    @admitting
    def tf_serving_predict(version=None, label=None):
        predictor = served(version, label).predictor  # as TF Serving: the servable is found before the body is read
        images, key = tf_serving_input(json_object(), request.get_data(), budget)
        probabilities, _ = classify(images, predictor)
        return jsonify({key: probabilities.tolist()})

    @route(":<any(classify, regress):verb>", "POST")
    def tf_serving_classify_or_regress(verb, version=None, label=None):
        """TF Serving's INVALID_ARGUMENT: the model has a predict signature only (a 404 would say "no such model")."""
        json_object()
        served(version, label)
        raise InputError(
            f'the model has no {verb} signature: its one signature, "serving_default", is '
            f"tensorflow/serving/predict; send :predict"
        )

    @route("", "GET")
    def tf_serving_status(version=None, label=None):
        if label is not None:
            version = served(label=label).predictor.info.version
        status = store.status(only=version)
        if not status:
            return _error(404, f"Could not find version {version} of model {NAME}")
        return jsonify({"model_version_status": status})

    @route("/metadata", "GET")
    def tf_serving_metadata(version=None, label=None):
        info = served(version, label).predictor.info
        return jsonify(openapi.tf_serving_metadata(NAME, info.version))

    @app.before_request
    def tf_serving_unrouted():
        """A /v1/ path no route took: TF Serving's answer, decided by its own two path patterns.

        A wrong method on one of our other /v1/ routes (/v1/corrections), and PUT, DELETE and the like on
        TF Serving's, keep their 405 with Allow (RFC 9110; TF Serving says 400 to all of them).
        """
        error, path = request.routing_exception, request.path
        if isinstance(error, MethodNotAllowed):
            if not path.startswith("/v1/models") or request.method not in ("GET", "POST"):
                return None
        elif not (isinstance(error, NotFound) and path.startswith("/v1/")):
            return None
        return _error(*_unrouted(request.method, path))


def _unrouted(method: str, path: str) -> tuple:
    """(status, message) as TF Serving's HttpRestApiHandler::ProcessRequest answers a path we do not route."""
    pattern = {"POST": PREDICTION_PATH, "GET": STATUS_PATH}.get(method)
    match = pattern.fullmatch(path) if pattern else None
    if match is None:
        return 400, f"Malformed request: {method} {path}"
    name, version, label, verb = match.groups()
    if method == "GET" and not name:
        return 400, "Missing model name in request."
    if version is not None and int(version) > INT64_MAX:
        return 400, f"Failed to convert version: {version}"
    if label is not None:  # TF Serving looks the label up first: an unknown one is INVALID_ARGUMENT
        return 400, f"Unrecognized servable version label: {label}"
    if method == "GET" and verb is None:
        which = f"version {version}" if version else "any versions"
        return 404, f"Could not find {which} of model {name}"
    spec = f"Specific({name}, {version})" if version else f"Latest({name})"
    return 404, f"Servable not found for request: {spec}"


def _error(status: int, message: str):
    return jsonify({"error": message}), status
