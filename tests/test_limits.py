"""Slow and idle clients: stalled connections neither lock others out nor stay open past --channel-timeout."""

import http.client
import json
import resource
import socket
import subprocess
import sys
import urllib.parse

import numpy as np
import pytest
from conftest import DATASET, ROOT, free_port, wait_ready

HALF_HEADER = b"POST /predict HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Ty"
CLIENT_TIMEOUT = 10  # a locked-out client waits for a slot until stalled connections time out (30 s by default)


def serve(model, *args, nofile=None):
    """`cnn-mnist` on a free loopback port, optionally under RLIMIT_NOFILE = `nofile` (soft, hard)."""
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "cnn_mnist.serving.cli", "--model", str(model), "--port", str(port), *map(str, args)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        cwd=ROOT,
        preexec_fn=(lambda: resource.setrlimit(resource.RLIMIT_NOFILE, nofile)) if nofile else None,
    )
    return process, f"http://127.0.0.1:{port}/"


def stop(process):
    process.terminate()
    assert process.wait(timeout=60) == 0


def stall(url, count):
    """`count` connections that send half a request header, then nothing (slowloris)."""
    address = urllib.parse.urlsplit(url)
    sockets = [socket.create_connection((address.hostname, address.port), timeout=CLIENT_TIMEOUT) for _ in range(count)]
    for sock in sockets:
        sock.sendall(HALF_HEADER)
    return sockets


def request(url, method, path, body=None):
    address = urllib.parse.urlsplit(url)
    connection = http.client.HTTPConnection(address.hostname, address.port, timeout=CLIENT_TIMEOUT)
    try:
        connection.request(method, path, body, {"Content-Type": "application/json"} if body else {})
        response = connection.getresponse()
        return response.status, json.loads(response.read())
    finally:
        connection.close()


def max_open_files(pid):
    with open(f"/proc/{pid}/limits") as limits:
        line = next(line for line in limits if line.startswith("Max open files"))
    return int(line.split()[3])


@pytest.mark.slow
def test_100_stalled_connections_do_not_lock_out_a_normal_client(trained_model):
    # a low soft descriptor limit, as systemd gives (1024) but lower: the server raises it to fit
    process, url = serve(trained_model, nofile=(256, 4096))
    try:
        wait_ready(url, process)
        assert max_open_files(process.pid) >= 1000
        with np.load(DATASET) as data:
            body = json.dumps({"pixels": data["x_test"][0].tolist()})
        stalled = stall(url, 100)
        assert request(url, "GET", "/healthz") == (200, {"status": "alive"})
        status, answer = request(url, "POST", "/predict", body)
        assert status == 200 and 0 <= answer["digit"] <= 9
        stalled += stall(url, 400)  # 500 stalled: still served
        assert request(url, "GET", "/healthz") == (200, {"status": "alive"})
        for sock in stalled:
            sock.close()
    finally:
        stop(process)


@pytest.mark.slow
def test_stalled_and_idle_connections_are_closed_after_the_channel_timeout(trained_model):
    process, url = serve(trained_model, "--channel-timeout", 1)
    try:
        wait_ready(url, process)
        (stalled,) = stall(url, 1)
        address = urllib.parse.urlsplit(url)
        idle = http.client.HTTPConnection(address.hostname, address.port, timeout=CLIENT_TIMEOUT)
        idle.request("GET", "/healthz")
        assert idle.getresponse().read()
        # closed cleanly (EOF), within the timeout plus one cleanup tick (waitress' default tick is 30 s)
        assert stalled.recv(1) == b"" and idle.sock.recv(1) == b""
    finally:
        stop(process)


def test_a_connection_limit_beyond_the_descriptor_limit_is_a_usage_error(trained_model):
    process, _ = serve(trained_model, "--connection-limit", 1000, nofile=(256, 256))
    try:
        _, stderr = process.communicate(timeout=60)
    finally:
        process.kill()
    assert process.returncode == 2, stderr
    assert stderr.strip().splitlines()[-1] == (
        "cnn-mnist: error: --connection-limit 1000 needs 1064 file descriptors, "
        "but at most 256 may be opened (ulimit -n; LimitNOFILE= under systemd)"
    )
