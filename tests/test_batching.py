"""The micro-batcher with a stand-in predictor: answers go to the right caller, passes are shared, failures are contained."""

import threading

import numpy as np
import pytest

from cnn_mnist.serving.batching import MicroBatcher


class FakePredictor:
    """Answers row i with a one-hot of the image's first pixel; `gate` holds every pass until the test opens it."""

    def __init__(self, name="a", fail=False):
        self.info, self.fail = name, fail
        self.passes, self.threads = [], []
        self.gate = threading.Event()
        self.gate.set()
        self.entered = threading.Event()

    def predict(self, images):
        self.entered.set()
        self.passes.append(len(images))
        self.threads.append(threading.current_thread().name)
        assert self.gate.wait(10)
        if self.fail:
            raise RuntimeError("the forward pass broke")
        return np.eye(10, dtype=np.float32)[images[:, 0, 0, 0].astype(int)]


def digits(*values):
    images = np.zeros((len(values), 28, 28, 1), np.float32)
    images[:, 0, 0, 0] = values
    return images


def run_concurrently(batcher, predictor, requests):
    """Call predict from one thread per request; → {index: result or exception}."""
    results = {}

    def call(index, images):
        try:
            results[index] = batcher.predict(images, predictor, timeout=10)
        except Exception as error:  # noqa: BLE001 - the test inspects it
            results[index] = error

    threads = [threading.Thread(target=call, args=item, name=f"request-{item[0]}") for item in enumerate(requests)]
    for thread in threads:
        thread.start()
    return threads, results


def test_a_lone_request_runs_at_once_on_its_own_thread():
    predictor = FakePredictor()
    batcher = MicroBatcher(max_batch_size=64, max_delay=0)
    probabilities, info = batcher.predict(digits(3, 5), predictor)
    assert probabilities.argmax(axis=1).tolist() == [3, 5] and info == "a"
    assert predictor.passes == [2] and predictor.threads == [threading.current_thread().name]


def test_requests_arriving_during_a_pass_share_the_next_one_and_get_their_own_rows():
    predictor = FakePredictor()
    predictor.gate.clear()
    batcher = MicroBatcher(max_batch_size=64, max_delay=0)
    first_threads, first = run_concurrently(batcher, predictor, [digits(9)])
    assert predictor.entered.wait(10)  # the first request leads a pass, held at the gate
    values = [[1], [2, 3], [4], [5, 6, 7], [8]]
    threads, results = run_concurrently(batcher, predictor, [digits(*v) for v in values])
    while len(batcher._queue) < len(values):  # all queued behind the running pass
        threading.Event().wait(0.01)
    predictor.gate.set()
    for thread in first_threads + threads:
        thread.join(10)
    assert predictor.passes == [1, 8]  # the five requests went together in one pass
    assert first[0][0].argmax(axis=1).tolist() == [9]
    for index, expected in enumerate(values):
        assert results[index][0].argmax(axis=1).tolist() == expected


def test_max_batch_size_splits_the_queue_into_passes():
    predictor = FakePredictor()
    predictor.gate.clear()
    batcher = MicroBatcher(max_batch_size=4, max_delay=0)
    first_threads, _ = run_concurrently(batcher, predictor, [digits(0)])
    assert predictor.entered.wait(10)
    threads, results = run_concurrently(batcher, predictor, [digits(i, i) for i in range(1, 6)])
    while len(batcher._queue) < 5:
        threading.Event().wait(0.01)
    predictor.gate.set()
    for thread in first_threads + threads:
        thread.join(10)
    assert predictor.passes[0] == 1 and sum(predictor.passes) == 11
    assert all(size <= 4 for size in predictor.passes)
    assert all(results[i - 1][0].argmax(axis=1).tolist() == [i, i] for i in range(1, 6))


def test_a_failing_pass_fails_its_requests_and_the_batcher_goes_on():
    broken, healthy = FakePredictor(fail=True), FakePredictor("b")
    batcher = MicroBatcher(max_delay=0)
    with pytest.raises(RuntimeError, match="the forward pass broke"):
        batcher.predict(digits(1), broken)
    probabilities, info = batcher.predict(digits(2), healthy)
    assert probabilities.argmax(axis=1).tolist() == [2] and info == "b"


def test_a_request_that_times_out_leaves_the_queue_and_the_batcher_keeps_serving():
    predictor = FakePredictor()
    predictor.gate.clear()
    batcher = MicroBatcher(max_delay=0)
    first_threads, first = run_concurrently(batcher, predictor, [digits(1)])
    assert predictor.entered.wait(10)
    with pytest.raises(TimeoutError):
        batcher.predict(digits(2), predictor, timeout=0.05)
    assert len(batcher._queue) == 0  # the timed-out request will not be run
    predictor.gate.set()
    first_threads[0].join(10)
    assert first[0][0].argmax(axis=1).tolist() == [1]
    assert batcher.predict(digits(3), predictor)[0].argmax(axis=1).tolist() == [3]
    assert predictor.passes == [1, 1]


def test_many_concurrent_callers_each_get_their_own_answer():
    predictor = FakePredictor()
    batcher = MicroBatcher(max_batch_size=16, max_delay=0)
    values = [i % 10 for i in range(200)]
    threads, results = run_concurrently(batcher, predictor, [digits(v) for v in values])
    for thread in threads:
        thread.join(20)
    assert [results[i][0].argmax(axis=1).tolist() for i in range(200)] == [[v] for v in values]
    assert sum(predictor.passes) == 200


def test_max_delay_lets_a_leader_wait_for_company():
    predictor = FakePredictor()
    batcher = MicroBatcher(max_batch_size=2, max_delay=5.0)
    threads, results = run_concurrently(batcher, predictor, [digits(1)])
    while not batcher._running:
        threading.Event().wait(0.01)
    assert predictor.passes == []  # the leader waits for a second request (or 5 s) ...
    assert batcher.predict(digits(2), predictor)[0].argmax(axis=1).tolist() == [2]
    threads[0].join(10)
    assert predictor.passes == [2]  # ... and the batch, now full, goes at once
    assert results[0][0].argmax(axis=1).tolist() == [1]


def test_requests_for_other_predictors_share_the_wait_but_not_the_pass():
    default, pinned = FakePredictor("default"), FakePredictor("version 3")
    default.gate.clear()
    batcher = MicroBatcher(max_delay=0)
    first_threads, _ = run_concurrently(batcher, default, [digits(0)])
    assert default.entered.wait(10)
    results = {}
    calls = [("a", digits(1), default), ("b", digits(2), pinned), ("c", digits(3), default), ("d", digits(4), pinned)]
    threads = [threading.Thread(target=lambda k=k, x=x, p=p: results.__setitem__(k, batcher.predict(x, p, 10)))
               for k, x, p in calls]
    for thread in threads:
        thread.start()
    while len(batcher._queue) < len(calls):
        threading.Event().wait(0.01)
    default.gate.set()
    for thread in first_threads + threads:
        thread.join(10)
    assert default.passes == [1, 2] and pinned.passes == [2]  # one pass per predictor in the shared batch
    assert {k: (r[0].argmax(axis=1).tolist(), r[1]) for k, r in results.items()} == {
        "a": ([1], "default"), "b": ([2], "version 3"), "c": ([3], "default"), "d": ([4], "version 3")}
