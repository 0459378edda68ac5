"""The micro-batcher with a stand-in predictor: answers go to the right caller, passes are shared,
failures are contained."""

import threading

import numpy as np
import pytest

from cnn_mnist.serving.batching import MicroBatcher


class FakePredictor:
    """Answers row i with a one-hot of the image's first pixel; `gate` holds every pass until the test opens it."""

    def __init__(self, name="a", fail=None):
        self.info, self.fail = name, fail  # `fail`: the exception every pass raises
        self.passes, self.threads = [], []
        self.gate = threading.Event()
        self.gate.set()
        self.entered = threading.Event()

    def predict(self, images):
        self.entered.set()
        self.passes.append(len(images))
        self.threads.append(threading.current_thread().name)
        assert self.gate.wait(10)
        if self.fail is not None:
            raise self.fail
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
        except BaseException as error:  # noqa: BLE001 - the test inspects it
            results[index] = error

    threads = [threading.Thread(target=call, args=item, name=f"request-{item[0]}") for item in enumerate(requests)]
    for thread in threads:
        thread.start()
    return threads, results


def wait_queued(batcher, count):
    """Return once `count` requests are queued (their threads are all inside `predict`)."""
    while len(batcher._queue) < count:
        threading.Event().wait(0.01)


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
    wait_queued(batcher, len(values))
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
    wait_queued(batcher, 5)
    predictor.gate.set()
    for thread in first_threads + threads:
        thread.join(10)
    assert predictor.passes[0] == 1 and sum(predictor.passes) == 11
    assert all(size <= 4 for size in predictor.passes)
    assert all(results[i - 1][0].argmax(axis=1).tolist() == [i, i] for i in range(1, 6))


def test_a_failing_pass_fails_its_requests_and_the_batcher_goes_on():
    broken, healthy = FakePredictor(fail=RuntimeError("the forward pass broke")), FakePredictor("b")
    batcher = MicroBatcher(max_delay=0)
    with pytest.raises(RuntimeError, match="the forward pass broke"):
        batcher.predict(digits(1), broken)
    probabilities, info = batcher.predict(digits(2), healthy)
    assert probabilities.argmax(axis=1).tolist() == [2] and info == "b"


class Abort(BaseException):
    """Not an Exception: what a KeyboardInterrupt or SystemExit raised inside a forward pass looks like."""


def test_a_base_exception_in_a_pass_fails_the_whole_batch_at_once_and_the_lead_passes_on():
    healthy, aborting = FakePredictor("healthy"), FakePredictor("aborting", fail=Abort("interrupted"))
    healthy.gate.clear()
    aborting.gate.clear()
    batcher = MicroBatcher(max_delay=0)
    first_threads, first = run_concurrently(batcher, healthy, [digits(0)])
    assert healthy.entered.wait(10)
    threads, results = run_concurrently(batcher, aborting, [digits(1), digits(2)])
    wait_queued(batcher, 2)
    healthy.gate.set()  # the first pass answers; the next, on both queued requests, is held at the aborting gate
    assert aborting.entered.wait(10)
    later_threads, later = run_concurrently(batcher, healthy, [digits(3)])
    wait_queued(batcher, 1)
    aborting.gate.set()
    for thread in first_threads + threads + later_threads:
        thread.join(10)  # the old batcher left request 1 waiting out its 10 s timeout here
    assert aborting.passes == [2]
    assert {type(error) for error in results.values()} == {Abort, RuntimeError}  # its leader's, and the other's
    other = next(error for error in results.values() if type(error) is RuntimeError)
    assert "interrupted" in str(other) and isinstance(other.__cause__, Abort)
    assert first[0][0].argmax(axis=1).tolist() == [0]
    assert later[0][0].argmax(axis=1).tolist() == [3]  # the lead went on to the request queued behind


def test_on_batch_raising_fails_its_batch_at_once_and_the_batcher_goes_on():
    def on_batch(size):
        if size > 1:
            raise ValueError("metrics broke")

    predictor = FakePredictor()
    predictor.gate.clear()
    batcher = MicroBatcher(max_delay=0, on_batch=on_batch)
    first_threads, first = run_concurrently(batcher, predictor, [digits(0)])
    assert predictor.entered.wait(10)
    threads, results = run_concurrently(batcher, predictor, [digits(1), digits(2)])
    wait_queued(batcher, 2)
    predictor.gate.set()
    for thread in first_threads + threads:
        thread.join(10)  # the old batcher left request 1 waiting out its 10 s timeout here
    assert predictor.passes == [1, 2]
    assert [str(results[i]) for i in (0, 1)] == ["metrics broke"] * 2
    assert first[0][0].argmax(axis=1).tolist() == [0]
    assert batcher.predict(digits(4), predictor)[0].argmax(axis=1).tolist() == [4]


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
    threads = [
        threading.Thread(target=lambda k=k, x=x, p=p: results.__setitem__(k, batcher.predict(x, p, 10)))
        for k, x, p in calls
    ]
    for thread in threads:
        thread.start()
    wait_queued(batcher, len(calls))
    default.gate.set()
    for thread in first_threads + threads:
        thread.join(10)
    assert default.passes == [1, 2] and pinned.passes == [2]  # one pass per predictor in the shared batch
    assert {k: (r[0].argmax(axis=1).tolist(), r[1]) for k, r in results.items()} == {
        "a": ([1], "default"),
        "b": ([2], "version 3"),
        "c": ([3], "default"),
        "d": ([4], "version 3"),
    }
