"""Readiness systemd and load balancers can trust (issue 15 §3), with a real $NOTIFY_SOCKET and real signals:
READY=1 only once the model serves, RELOADING=1 … READY=1 around a SIGHUP, STOPPING=1 and a 503 from /readyz
when SIGTERM starts the drain, and a SIGHUP during start-up deferred, never fatal."""

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request

import pytest
from conftest import ROOT, free_port
from helpers import wait_until


@pytest.fixture
def notify_socket(tmp_path):
    path = tmp_path / "notify"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(path))
    sock.settimeout(120)  # a model load and canary check; a datagram that never comes fails the test
    yield sock, str(path)
    sock.close()


def messages(sock) -> dict:
    return dict(line.split("=", 1) for line in sock.recv(4096).decode().split("\n"))


def catches_sighup(pid: int) -> bool:
    """Whether the process has a SIGHUP handler installed (SigCgt in /proc), so a SIGHUP is no longer fatal."""
    with open(f"/proc/{pid}/status") as status:
        caught = int(next(line for line in status if line.startswith("SigCgt:")).split()[1], 16)
    return bool(caught & (1 << (signal.SIGHUP - 1)))


def start(model, notify_path):
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "cnn_mnist.serving.cli", "--model", str(model), "--port", str(port)],
        env={**os.environ, "NOTIFY_SOCKET": notify_path},
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    return process, f"http://127.0.0.1:{port}/"


def readyz(url):
    try:
        with urllib.request.urlopen(url + "readyz", timeout=10) as response:
            return response.status
    except urllib.error.HTTPError as error:
        return error.code


def test_ready_reloading_stopping_as_systemd_sees_them(trained_model, notify_socket):
    sock, path = notify_socket
    process, url = start(trained_model / "model.keras", path)
    try:
        ready = messages(sock)
        assert ready["READY"] == "1" and ready["STATUS"].startswith("serving version 1")
        assert readyz(url) == 200  # READY=1 came after the port opened and the model was checked

        process.send_signal(signal.SIGHUP)
        reloading = messages(sock)
        assert reloading["RELOADING"] == "1"
        assert abs(int(reloading["MONOTONIC_USEC"]) - time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000) < 60e6
        assert messages(sock)["READY"] == "1"

        process.send_signal(signal.SIGTERM)
        assert messages(sock) == {"STOPPING": "1", "STATUS": "draining"}
        assert process.wait(timeout=60) == 0
    finally:
        process.kill()
        process.wait()


def test_a_sighup_during_start_up_is_deferred_not_fatal(trained_model, notify_socket):
    sock, path = notify_socket
    process, url = start(trained_model / "model.keras", path)
    try:
        wait_until(lambda: process.poll() is not None or catches_sighup(process.pid), timeout=30, step=0.01)
        with pytest.raises(ConnectionRefusedError):  # the port is not open yet: the backend is still loading
            socket.create_connection(("127.0.0.1", int(url.rsplit(":", 1)[1].strip("/"))), timeout=5).close()
        process.send_signal(signal.SIGHUP)
        assert "READY" in messages(sock)
        assert process.poll() is None
        assert messages(sock)["RELOADING"] == "1"  # the deferred reload, once the server is up
        assert messages(sock)["READY"] == "1"
        assert readyz(url) == 200
    finally:
        process.kill()
        process.wait()


def test_readyz_says_503_while_draining(app):
    client = app.test_client()
    assert client.get("/readyz").status_code == 200
    app.extensions["cnn_mnist"].draining.set()
    try:
        response = client.get("/readyz")
        assert response.status_code == 503 and response.get_json() == {"status": "draining"}
    finally:
        app.extensions["cnn_mnist"].draining.clear()
