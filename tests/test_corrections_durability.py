"""Corrections survive what servers go through: `kill -9`, a restart, two servers writing one PostgreSQL store.

Real `cnn-mnist` processes over HTTP, a real SQLite file and a real PostgreSQL server (tests/postgres.py).
An acknowledged correction (a 201 or 200 with its id) must be in the store afterwards, exactly once.
"""

import signal
import threading

import numpy as np
import pytest
from conftest import start_server
from helpers import post, stop

from cnn_mnist.corrections.store import open_store

pytestmark = pytest.mark.slow
ACKNOWLEDGED = 100
SHARED = 200  # corrections both servers are sent, each by both, in opposite orders
THREADS = 4  # per server
SERVE = ("--corrections-per-minute", "0")  # the rate limit is tested in test_corrections_api.py


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request, tmp_path):
    if request.param == "sqlite":
        return str(tmp_path / "corrections.sqlite")
    return request.getfixturevalue("postgres").new_database()


def correction(images, i):
    return {"pixels": images[i].tolist(), "label": int(i % 10), "predicted": int((i + 1) % 10), "model_version": "1"}


def stored(url) -> dict:
    """{(image bytes, label): id} of everything in the store, checked to hold each correction once."""
    with open_store(url) as store:
        rows = store.list()
    kept = {(row.image.tobytes(), row.label): row.id for row in rows}
    assert len(kept) == len(rows), "a correction is stored twice"
    return kept


def test_every_acknowledged_correction_survives_kill_9(trained_model, test_set, store_url):
    images, _ = test_set
    process, url = start_server(trained_model / "model.keras", "--corrections", store_url, *SERVE)
    try:
        answers = [post(url + "v1/corrections", correction(images, i)) for i in range(ACKNOWLEDGED)]
    finally:
        process.send_signal(signal.SIGKILL)  # no drain, no close: whatever was not on disk is lost
        process.wait(timeout=30)
    assert [status for status, _ in answers] == [201] * ACKNOWLEDGED, answers[:3]
    ids = {(images[i].tobytes(), i % 10): answer["id"] for i, (_, answer) in enumerate(answers)}
    assert stored(store_url) == ids

    process, url = start_server(trained_model / "model.keras", "--corrections", store_url, *SERVE)
    try:
        again = [post(url + "v1/corrections", correction(images, i)) for i in (0, ACKNOWLEDGED - 1)]
        assert again == [(200, {"id": answers[i][1]["id"], "status": "pending"}) for i in (0, ACKNOWLEDGED - 1)]
    finally:
        stop(process)


def test_two_servers_sharing_postgresql_lose_nothing_and_duplicate_nothing(trained_model, test_set, postgres):
    images, _ = test_set
    url = postgres.new_database()
    servers = [start_server(trained_model / "model.keras", "--corrections", url, *SERVE) for _ in range(2)]
    answers = []  # (server, i, status, id), from every thread
    lock = threading.Lock()

    def send(server, indices):
        for i in indices:
            status, answer = post(servers[server][1] + "v1/corrections", correction(images, i))
            with lock:
                answers.append((server, i, status, answer.get("id", answer)))

    # each server gets every correction, from THREADS threads, one server forwards and the other backwards
    order = {0: list(range(SHARED)), 1: list(range(SHARED))[::-1]}
    threads = [
        threading.Thread(target=send, args=(server, order[server][t::THREADS]))
        for server in (0, 1)
        for t in range(THREADS)
    ]
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=300)
        assert not any(thread.is_alive() for thread in threads), "a writer hung"
    finally:
        for process, _ in servers:
            stop(process)

    assert len(answers) == 2 * SHARED and {status for _, _, status, _ in answers} <= {200, 201}, answers[:5]
    created = sorted(i for _, i, status, _ in answers if status == 201)
    assert created == list(range(SHARED)), "each correction is created exactly once, by one server or the other"
    ids = {}
    for _, i, _, id in answers:
        assert ids.setdefault(i, id) == id, f"correction {i} was answered with two ids"
    kept = stored(url)
    assert kept == {(images[i].tobytes(), i % 10): ids[i] for i in range(SHARED)}
    assert len(set(kept.values())) == SHARED
    assert np.unique([images[i].tobytes() for i in range(SHARED)]).size == SHARED  # the images are distinct
