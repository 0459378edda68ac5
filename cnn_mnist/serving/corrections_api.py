"""`POST /v1/corrections`: a person says what a misread digit was; the store keeps it, pending review.

Off unless the app's config names a store (`--corrections STORE`): then the route answers 404. On, each
client (client_address.py) may send `CORRECTIONS_PER_MINUTE` of them (rate_limit.py; 0: no limit), and
everything else about a request is checked before anything is stored. docs/corrections.md has the why.
"""

import base64
import binascii
import io
import logging
import re
import threading
import time

import numpy as np
from flask import jsonify, request
from PIL import Image, UnidentifiedImageError
from prometheus_client.core import GaugeMetricFamily
from werkzeug.exceptions import RequestEntityTooLarge

from ..corrections.store import STATUSES, Store, StoreError, open_store
from .client_address import client_address
from .inputs import Budget, InputError, json_object, pixel_array
from .rate_limit import RateLimiter, retry_after

log = logging.getLogger(__name__)
ROUTE = "/v1/corrections"
DATA_URL = "data:image/png;base64,"  # what /predict's include_input answers, and all that is taken
MAX_MODEL_VERSION = 64  # characters, printable ASCII: a version such as "3" or "2026-12-01.1"
MODEL_VERSION = re.compile(rf"[!-~]{{1,{MAX_MODEL_VERSION}}}")
ONE_IMAGE = Budget(images=1, image_pixels=28 * 28, request_pixels=28 * 28)
STORE_RETRY_SECONDS = 5  # a 503 for a store that failed (restarting, locked): a few seconds, not a tight loop
COUNTS_MAX_AGE = 5.0  # seconds a scrape's counts of the store are reused: a flood of /metrics is one query per 5 s


def register(app, metrics) -> None:
    """Add the route to `app`; `app.config["CORRECTIONS"]`: None (off), a store's path or URL, or a Store."""
    store = app.config["CORRECTIONS"]
    if isinstance(store, str):
        store = open_store(store)
    app.extensions["corrections"] = store
    per_minute = app.config["CORRECTIONS_PER_MINUTE"]
    limiter = RateLimiter(per_minute) if store is not None and per_minute > 0 else None
    trusted = tuple(app.config["TRUSTED_PROXIES"])
    if store is not None:
        metrics.registry.register(StoreCounts(store))

    @app.post(ROUTE)
    def add_correction():
        if store is None:
            return jsonify({"error": "corrections are off on this server (start it with --corrections STORE)"}), 404
        if limiter is not None:
            client = client_address(request.remote_addr or "", request.headers.get("X-Forwarded-For"), trusted)
            wait = limiter.acquire(client)
            if wait:
                metrics.corrections_rejected.labels("rate").inc()
                error = f"over {per_minute} corrections a minute from one client; try again later"
                return jsonify({"error": error}), 429, {"Retry-After": retry_after(wait)}
        try:
            image, label, predicted, model_version = _correction_request()
        except (InputError, RequestEntityTooLarge):
            metrics.corrections_rejected.labels("invalid").inc()
            raise
        try:
            id, created = store.add(image, label, predicted, model_version)
            status = "pending" if created else store.get(id).status
        except StoreError as error:
            log.error("the corrections store failed: %s", error)
            answer = {"error": "the corrections store is unavailable; try again"}
            return jsonify(answer), 503, {"Retry-After": str(STORE_RETRY_SECONDS)}
        metrics.corrections.labels(str(label), "created" if created else "repeat").inc()
        return jsonify({"id": id, "status": status}), 201 if created else 200


def _correction_request() -> tuple:
    """The body → (image (28, 28) uint8, label, predicted or None, model_version or None), or InputError."""
    body = json_object()
    if ("pixels" in body) == ("input" in body):
        raise InputError('send exactly one of "pixels" (28x28 numbers 0-255) or "input" (the data: URL /predict gave)')
    image = _pixels(body["pixels"]) if "pixels" in body else _png(body["input"])
    if not image.any():
        raise InputError("the image is blank: there is no digit to correct")
    label = _digit(body, "label")
    if label is None:
        raise InputError('"label" is required: the digit the image shows, 0-9')
    version = body.get("model_version")
    if "model_version" in body and not (isinstance(version, str) and MODEL_VERSION.fullmatch(version)):
        raise InputError(f'"model_version" must be 1-{MAX_MODEL_VERSION} printable ASCII characters, no spaces')
    return image, label, _digit(body, "predicted"), version


def _digit(body: dict, key: str):
    if key not in body:
        return None
    value = body[key]
    if type(value) is not int or not 0 <= value <= 9:  # not True, not 7.0, not "7"
        raise InputError(f'"{key}" must be an integer from 0 to 9, not {str(value)[:20]}')
    return value


def _pixels(value) -> np.ndarray:
    """One image of 784, 28x28 or 28x28x1 numbers, read as /predict reads them, in the 8 bits the model saw."""
    images, is_batch = pixel_array(value, ONE_IMAGE, unit_range_only=False)
    if is_batch:
        raise InputError("a correction holds one image, not a batch")
    return np.rint(images[0, :, :, 0] * 255).astype(np.uint8)


def _png(value) -> np.ndarray:
    """/predict's `input`: a 28x28 8-bit grayscale PNG as a data: URL; its pixels are the model's input exactly."""
    if not isinstance(value, str) or not value.startswith(DATA_URL):
        raise InputError(f'"input" must be a data URL starting {DATA_URL} (the "input" /predict answers)')
    try:
        data = base64.b64decode(value[len(DATA_URL) :], validate=True)
    except (binascii.Error, ValueError):
        raise InputError('"input" is not valid base64') from None
    try:
        image = Image.open(io.BytesIO(data))
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as error:
        raise InputError(f'"input" is not a readable PNG: {error}') from None
    if image.format != "PNG" or image.size != (28, 28) or image.mode != "L":  # from the header: nothing decoded yet
        raise InputError(
            f'"input" must be a 28x28 8-bit grayscale PNG; got a {image.width}x{image.height} {image.format} '
            f"in mode {image.mode}"
        )
    try:
        return np.asarray(image, dtype=np.uint8).copy()
    except (OSError, SyntaxError, ValueError) as error:  # truncated or corrupt image data
        raise InputError(f'"input" holds corrupt PNG data: {error}') from None


class StoreCounts:
    """/metrics' gauges of what the store holds, by status and by label: read at scrape time, cached briefly.

    The store is shared (PostgreSQL behind several servers, a reviewer's accept), so its counts are asked
    of it rather than kept here. A store that fails shows as cnn_mnist_corrections_store_up 0.
    """

    def __init__(self, store: Store, max_age: float = COUNTS_MAX_AGE, clock=time.monotonic):
        self.store, self.max_age, self.clock = store, max_age, clock
        self._counts, self._read_at, self._lock = None, None, threading.Lock()

    def collect(self):
        with self._lock:
            if self._read_at is None or self.clock() - self._read_at >= self.max_age:
                try:
                    self._counts = self.store.counts()
                except StoreError as error:
                    log.error("the corrections store failed to count: %s", error)
                    self._counts = None
                self._read_at = self.clock()
            counts = self._counts
        up = GaugeMetricFamily("cnn_mnist_corrections_store_up", "1 if the corrections store answered its last count")
        up.add_metric([], 0 if counts is None else 1)
        yield up
        if counts is None:
            return
        by_status = GaugeMetricFamily(
            "cnn_mnist_corrections_stored", "Corrections in the store by status", labels=["status"]
        )
        for status in STATUSES:
            by_status.add_metric([status], counts[status])
        yield by_status
        by_label = GaugeMetricFamily(
            "cnn_mnist_corrections_stored_by_label", "Corrections in the store by label, any status", labels=["label"]
        )
        for label, count in sorted(counts["by_label"].items()):
            by_label.add_metric([label], count)
        yield by_label
