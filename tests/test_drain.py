"""SIGTERM with keep-alive clients: every request the server took is answered, and it exits promptly."""

import http.client
import json
import select
import signal
import socket
import threading
import time
import urllib.parse

import numpy as np
import pytest
from conftest import DATASET, start_server

DRAIN_SECONDS = 30


@pytest.fixture(scope="module")
def body():
    with np.load(DATASET) as data:
        return json.dumps({"pixels": data["x_test"][0].tolist()})


def closed_by_server(sock) -> bool:
    """What a careful client (urllib3) checks before reusing a connection: has the server closed it?"""
    if sock is None:
        return True
    if not select.select([sock], [], [], 0)[0]:
        return False
    return sock.recv(1, socket.MSG_PEEK) == b""  # a reset raises here, and counts as a failure


class KeepAliveClient(threading.Thread):
    """POSTs /predict over one persistent connection, reconnecting only when the server closed it cleanly."""

    def __init__(self, port, body, stop):
        super().__init__(daemon=True)
        self.port, self.body, self.stop = port, body, stop
        self.answers, self.closes, self.failure, self.refused = 0, 0, None, False

    def run(self):
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
        while not self.stop.is_set():
            try:
                if closed_by_server(connection.sock):
                    connection.close()
                    try:
                        connection.connect()
                    except ConnectionRefusedError:  # never accepted: the server had stopped listening
                        self.refused = True
                        return
                connection.request("POST", "/predict", self.body, {"Content-Type": "application/json"})
                response = connection.getresponse()
                response.read()
            except Exception as error:  # a reset, or no answer to a request that was sent
                self.failure = repr(error)
                return
            if response.status != 200:
                self.failure = f"HTTP {response.status}"
                return
            self.answers += 1
            self.closes += response.getheader("Connection", "").lower() == "close"
        connection.close()


@pytest.mark.slow
def test_sigterm_with_16_keep_alive_clients_fails_no_request_and_exits_promptly(trained_model, body):
    process, url = start_server(trained_model, "--drain-seconds", DRAIN_SECONDS)
    port = urllib.parse.urlsplit(url).port
    stop = threading.Event()
    clients = [KeepAliveClient(port, body, stop) for _ in range(16)]
    idle = [http.client.HTTPConnection("127.0.0.1", port, timeout=30) for _ in range(2)]  # between requests
    for connection in idle:
        connection.request("GET", "/healthz")
        assert connection.getresponse().read() == b'{"status":"alive"}\n'
    try:
        for client in clients:
            client.start()
        deadline = time.monotonic() + 60
        while sum(client.answers for client in clients) < 200 and time.monotonic() < deadline:
            time.sleep(0.05)
        process.send_signal(signal.SIGTERM)
        signalled = time.monotonic()
        code = process.wait(timeout=DRAIN_SECONDS + 30)
        exited = time.monotonic() - signalled
        for client in clients:
            client.join(timeout=30)
    finally:
        stop.set()
        process.kill()
    assert code == 0, process.stderr.read()[-3000:]
    assert [client.failure for client in clients if client.failure] == []
    assert all(client.refused for client in clients)  # each one came back after the drain and was not accepted
    assert sum(client.answers for client in clients) >= 200
    assert sum(client.closes for client in clients) >= 1  # the requests in flight were answered with a close
    assert exited < DRAIN_SECONDS / 3, f"exited {exited:.1f} s after SIGTERM"
    for connection in idle:  # idle keep-alive connections were closed cleanly (FIN, not RST)
        assert connection.sock.recv(4096) == b""
        connection.close()
