"""Micro-batching: concurrent requests share one forward pass, with no thread of its own.

A request that finds no forward pass running runs one itself (it *leads*), on every request queued
by then; requests that arrive meanwhile queue up and go together in the next pass, which the first of
them leads. So under load batches grow with the load, while a lone request waits for nobody and is
never handed to another thread: each request's thread is woken at most once, with its answer or with
the lead. A forward pass over 16 images costs little more than over one, so this is what lets one
process answer far more requests per second than it could one image at a time.
"""

import threading
import time
from collections import deque

import numpy as np


class _Request:
    __slots__ = ("images", "predictor", "woken", "leads", "result", "error")

    def __init__(self, images, predictor):
        self.images, self.predictor, self.woken = images, predictor, threading.Event()
        self.leads, self.result, self.error = False, None, None


class MicroBatcher:
    """Runs the forward passes of concurrent `predict` calls together, at most `max_batch_size` images a pass.

    Each request names the predictor that answers it (the serving model, a version or a label), and
    keeps it even if a reload retires that version meanwhile; a batch holding requests for several
    predictors runs one forward pass per predictor. `max_delay` (seconds) lets a leader whose batch is
    not full wait that long after its own arrival for more requests; 0 never waits.
    """

    def __init__(self, max_batch_size=64, max_delay=0.0, on_batch=None):
        self.max_batch_size, self.max_delay = max_batch_size, max_delay
        self.on_batch = on_batch or (lambda size: None)
        self._lock = threading.Condition()  # guards _queue and _running; notified when a request queues
        self._queue = deque()
        self._running = False  # a leader is between taking a batch and handing the lead on

    def predict(self, images: np.ndarray, predictor, timeout: float = 30.0):
        """(N, 28, 28, 1) float32 images → (probabilities (N, 10), the ModelInfo of `predictor`, which answered).

        Raises TimeoutError when no answer came within `timeout` seconds, and whatever the forward pass raised.
        """
        request, arrived = _Request(images, predictor), time.monotonic()
        with self._lock:
            self._queue.append(request)
            leads = request.leads = not self._running
            self._running = True
            self._lock.notify()  # a leader waiting out max_delay may take this one too
        if not leads:
            self._wait(request, timeout)
        if request.leads:
            self._lead(arrived)
        if request.error is not None:
            raise request.error
        return request.result

    def _wait(self, request, timeout):
        if request.woken.wait(timeout):
            return
        with self._lock:
            if request.woken.is_set():  # answered, or handed the lead, just as the time ran out
                return
            if request in self._queue:
                self._queue.remove(request)
        raise TimeoutError(f"no forward pass answered within {timeout:g} s")

    def _lead(self, arrived):
        """Run one pass on the head of the queue (our own request first), then hand the lead on."""
        batch = []
        try:
            with self._lock:
                self._wait_for_more(arrived)
                batch = self._take()
            self._execute(batch)
        except BaseException as error:  # (KeyboardInterrupt, SystemExit): ours to raise; the others fail now, not at
            _fail([r for r in batch if r.result is None and r.error is None], error)  # their timeout
            raise
        finally:
            with self._lock:
                if self._queue:
                    successor = self._queue[0]
                    successor.leads = True
                    successor.woken.set()
                else:
                    self._running = False

    def _wait_for_more(self, arrived):
        deadline = arrived + self.max_delay
        while sum(len(r.images) for r in self._queue) < self.max_batch_size:
            remaining = deadline - time.monotonic()
            if remaining <= 0 or not self._lock.wait(remaining):
                return

    def _take(self):
        batch = [self._queue.popleft()]
        count = len(batch[0].images)
        while self._queue and count + len(self._queue[0].images) <= self.max_batch_size:
            batch.append(self._queue.popleft())
            count += len(batch[-1].images)
        return batch

    def _execute(self, batch):
        groups = {}
        for request in batch:
            groups.setdefault(id(request.predictor), (request.predictor, []))[1].append(request)
        for predictor, requests in groups.values():
            self._execute_on(predictor, requests)

    def _execute_on(self, predictor, batch):
        try:
            images = batch[0].images if len(batch) == 1 else np.concatenate([r.images for r in batch])
            probabilities = predictor.predict(images)
            self.on_batch(len(probabilities))
        except Exception as error:  # every request of the pass gets the failure; the batcher goes on
            _fail(batch, error)
            return
        start = 0
        for request in batch:
            request.result = (probabilities[start : start + len(request.images)], predictor.info)
            start += len(request.images)
            if not request.leads:
                request.woken.set()


def _fail(requests, error):
    """Answer `requests` with `error`, waking the waiting ones. They get an Exception, which their route answers with
    a 500: a BaseException passes Flask's error handlers by (they catch Exception) and waitress only logs it."""
    for request in requests:
        request.error = error
        if not request.leads:
            if not isinstance(error, Exception):
                request.error = RuntimeError(f"the forward pass failed: {error!r}")
                request.error.__cause__ = error
            request.woken.set()
