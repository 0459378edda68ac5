"""Micro-batching: concurrent requests wait a few milliseconds and share one forward pass.

A forward pass over 32 images costs little more than over one, so under load the server answers
far more requests per second than it could one image at a time.
"""

import queue
import threading
import time
from concurrent.futures import Future

import numpy as np


class MicroBatcher:
    """Collects submitted batches for up to `max_delay` seconds (or `max_batch_size` images) and runs them together.

    `get_predictor` is called once per batch, so a model swapped in between batches serves the next one
    while the batch already running finishes on the model it started with. A request that names its
    predictor (a version or label) keeps it even if a reload retires that version meanwhile; requests for
    different predictors queue together and run as one forward pass per predictor.
    """

    def __init__(self, get_predictor, max_batch_size=64, max_delay=0.002, on_batch=None):
        self.get_predictor, self.max_batch_size, self.max_delay = get_predictor, max_batch_size, max_delay
        self.on_batch = on_batch or (lambda size: None)
        self._queue = queue.SimpleQueue()
        self._worker = threading.Thread(target=self._run, name="micro-batcher", daemon=True)
        self._worker.start()

    def submit(self, images: np.ndarray, predictor=None) -> Future:
        """Queue (N, 28, 28, 1) float32 images; the future gives (probabilities (N, 10), ModelInfo)."""
        future = Future()
        self._queue.put((images, future, time.monotonic(), predictor))
        return future

    def predict(self, images: np.ndarray, timeout: float = 30.0, predictor=None):
        return self.submit(images, predictor).result(timeout)

    def _run(self):
        while True:
            # No local outlives a batch: a predictor retired by a reload is freed, not kept by an idle worker.
            self._execute_all(self._collect())

    def _collect(self) -> list:
        """Wait for a request, then gather others for up to max_delay (or max_batch_size images)."""
        pending = [self._queue.get()]
        count = len(pending[0][0])
        # The wait counts from the first request's arrival: requests that queued up while the last
        # forward pass ran have waited enough and go at once.
        deadline = pending[0][2] + self.max_delay
        while count < self.max_batch_size:
            remaining = deadline - time.monotonic()
            try:
                item = self._queue.get(timeout=remaining) if remaining > 0 else self._queue.get_nowait()
            except queue.Empty:
                break
            pending.append(item)
            count += len(item[0])
        return pending

    def _execute_all(self, pending):
        default = self.get_predictor()
        groups = {}
        for item in pending:
            predictor = item[3] or default
            groups.setdefault(id(predictor), (predictor, []))[1].append(item)
        for predictor, items in groups.values():
            self._execute(predictor, items)

    def _execute(self, predictor, pending):
        try:
            probabilities = predictor.predict(np.concatenate([images for images, *_ in pending]))
        except Exception as error:  # hand the failure to every waiting request rather than lose the worker
            for _, future, *_ in pending:
                future.set_exception(error)
            return
        self.on_batch(len(probabilities))
        start = 0
        for images, future, *_ in pending:
            future.set_result((probabilities[start : start + len(images)], predictor.info))
            start += len(images)
