"""Overload (issue 15 §2): past --max-in-flight a prediction is refused at once with a 503 and Retry-After,
and the work in flight, the refusals and waitress' queue are in /metrics.

No sleeps: a request is held inside its forward pass by an Event until the test lets it go.
"""

import logging
import threading
from types import SimpleNamespace

import pytest
from conftest import metric, start_server
from helpers import get, post, stop
from prometheus_client import generate_latest
from waitress.task import ThreadedTaskDispatcher

from cnn_mnist.serving.app import create_app
from cnn_mnist.serving.defaults import SERVER
from cnn_mnist.serving.metrics import Metrics
from cnn_mnist.serving.waitress_server import export_queue

DIGIT = {"pixels": [[0] * 28] * 10 + [[0] * 12 + [255] * 4 + [0] * 12] * 8 + [[0] * 28] * 10}
TF = "/v1/models/cnn-mnist:predict"


class HeldPass:
    """Stands in for the batcher's `predict`: the first call waits until `release()`, the others go through."""

    def __init__(self, batcher):
        self.predict, self.entered, self.released = batcher.predict, threading.Event(), threading.Event()
        self.calls = 0
        batcher.predict = self

    def __call__(self, images, predictor):
        self.calls += 1
        if self.calls == 1:
            self.entered.set()
            assert self.released.wait(60), "the test never released the held pass"
        return self.predict(images, predictor)

    def release(self):
        self.released.set()


@pytest.fixture
def one_slot(trained_model):
    app = create_app({"MODEL": str(trained_model), "MAX_IN_FLIGHT": 1})
    held = HeldPass(app.extensions["cnn_mnist"].batcher)
    first = []
    thread = threading.Thread(target=lambda: first.append(app.test_client().post("/predict", json=DIGIT)))
    thread.start()
    assert held.entered.wait(60)
    yield app, held
    held.release()
    thread.join(60)
    assert first[0].status_code == 200  # the held request is answered once let go


def test_a_prediction_past_the_limit_is_refused_at_once_with_retry_after(one_slot):
    app, held = one_slot
    client = app.test_client()
    for path in ("/predict", TF):
        body = DIGIT if path == "/predict" else {"instances": [[[[0.5]] * 28] * 28]}
        refused = client.post(path, json=body)
        assert refused.status_code == 503 and refused.headers["Retry-After"] == "1", path
        assert refused.json == {"error": "the server is answering 1 predictions already; try again"}
    assert client.get("/healthz").status_code == 200  # health and metrics are not predictions
    text = client.get("/metrics").get_data(as_text=True)
    assert metric(text, "cnn_mnist_in_flight") == 1 and metric(text, "cnn_mnist_max_in_flight") == 1
    assert metric(text, "cnn_mnist_refused_total") == 2
    assert metric(text, "cnn_mnist_requests_total", route="/predict", status="503") == 1
    assert held.calls == 1  # the refused ones never reached the model


def test_a_slot_is_given_back_however_the_request_ends(trained_model):
    client = create_app({"MODEL": str(trained_model), "MAX_IN_FLIGHT": 1}).test_client()
    assert client.post("/predict", json={"pixels": "nope"}).status_code == 400
    assert client.post("/predict", json={"images": [1]}).status_code == 400
    assert client.post("/predict", json=DIGIT).status_code == 200
    text = client.get("/metrics").get_data(as_text=True)
    assert metric(text, "cnn_mnist_in_flight") == 0 and metric(text, "cnn_mnist_refused_total") == 0


def test_a_forward_pass_that_times_out_is_a_503_with_retry_after(trained_model):
    app = create_app({"MODEL": str(trained_model)})

    def timed_out(images, predictor):
        raise TimeoutError("no forward pass answered within 30 s")

    app.extensions["cnn_mnist"].batcher.predict = timed_out
    response = app.test_client().post("/predict", json=DIGIT)
    assert response.status_code == 503 and response.headers["Retry-After"] == "1"
    assert response.json == {"error": "the model is overloaded; try again"}
    assert (
        "Retry-After"
        in app.test_client().get("/openapi.json").json["paths"]["/predict"]["post"]["responses"]["503"]["headers"]
    )


def test_the_default_leaves_threads_to_answer_health_metrics_and_refusals():
    assert SERVER["max_in_flight"] < SERVER["threads"]


@pytest.fixture
def queue_logger():
    logger = logging.getLogger("waitress.queue")
    handlers, propagate = list(logger.handlers), logger.propagate
    yield logger
    logger.handlers[:], logger.propagate = handlers, propagate


def test_waitress_queue_depth_and_its_warnings_are_metrics_not_log_lines(queue_logger, caplog):
    dispatcher = ThreadedTaskDispatcher()  # no threads: every task it is given waits in its queue
    metrics = Metrics()
    export_queue(SimpleNamespace(task_dispatcher=dispatcher), metrics)
    with caplog.at_level(logging.WARNING):
        for _ in range(3):
            dispatcher.add_task(SimpleNamespace())  # waitress logs "Task queue depth is N" for each
    text = generate_latest(metrics.registry).decode()
    assert metric(text, "cnn_mnist_waiting") == 3
    assert metric(text, "cnn_mnist_queued_total") == 3
    assert not [record for record in caplog.records if record.name == "waitress.queue"]
    dispatcher.queue.clear()
    assert metric(generate_latest(metrics.registry).decode(), "cnn_mnist_waiting") == 0


def test_the_server_takes_the_limits_from_flags_and_the_environment(trained_model):
    process, url = start_server(trained_model, "--max-images-per-request", 1, env={"MAX_IN_FLIGHT": "3"})
    try:
        assert post(url + "predict", {"pixels": [DIGIT["pixels"]] * 2}) == (
            413,
            {"error": "the request holds 2 images; at most 1 are accepted"},
        )
        text = get(url + "metrics")
        assert metric(text, "cnn_mnist_max_in_flight") == 3
        assert metric(text, "cnn_mnist_in_flight") == 0 and metric(text, "cnn_mnist_waiting") == 0
        assert metric(text, "cnn_mnist_queued_total") == 0
    finally:
        stop(process)
