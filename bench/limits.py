"""Slow clients: how many stalled connections the server bears, and how fast it sheds them.

    .venv/bin/python bench/limits.py --model out/ [--stalled 0,100,500,900] [--connection-limit N] [--channel-timeout S]

Starts `cnn-mnist` on a free loopback port, then for each count N opens N connections that send half a
request header and stall (slowloris), and times a normal client that connects afresh: GET /healthz and a
POST /predict of one test digit (the worst of 5 each, 10 s client timeout). It also reports the
server's RSS and CPU with the stalled connections open, and how long until the server closes a stalled
connection (`--channel-timeout` plus waitress' cleanup tick). Only loopback is contacted; the server
is killed on exit.
"""

import argparse
import atexit
import http.client
import json
import os
import signal
import socket
import sys
import tempfile
import time

import numpy as np
from loadgen import HEADERS, HOST, cpu_seconds, memory
from serve import ROOT, free_port, start_server, stop_servers

HALF_HEADER = b"POST /predict HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Ty"


def stall(port, count):
    """`count` connections that sent half a header and say nothing more."""
    sockets = []
    for _ in range(count):
        sock = socket.create_connection((HOST, port), timeout=10)
        sock.sendall(HALF_HEADER)
        sockets.append(sock)
    return sockets


def worst_latency(port, method, path, body=None, repeats=5, timeout=10.0):
    """Seconds for the slowest of `repeats` requests, each on a new connection; None if one got no answer."""
    worst = 0.0
    for _ in range(repeats):
        started = time.monotonic()
        connection = http.client.HTTPConnection(HOST, port, timeout=timeout)
        try:
            connection.request(method, path, body, HEADERS if body else {})
            response = connection.getresponse()
            response.read()
            if response.status != 200:
                return None
        except (OSError, http.client.HTTPException):
            return None
        finally:
            connection.close()
        worst = max(worst, time.monotonic() - started)
    return worst


def seconds_until_closed(sock, limit):
    """How long until the server closes `sock` (b"" or a reset), or None within `limit` seconds."""
    started = time.monotonic()
    sock.settimeout(limit)
    try:
        sock.recv(1)
    except TimeoutError:
        return None
    except OSError:
        pass
    return time.monotonic() - started


def drain(process, port, idle=16, stalled=100):
    """Time from SIGTERM to exit with idle keep-alive and stalled connections open (nothing in flight)."""
    connections = [http.client.HTTPConnection(HOST, port, timeout=10) for _ in range(idle)]
    for connection in connections:
        connection.request("GET", "/healthz")
        connection.getresponse().read()
    sockets = stall(port, stalled)
    signalled = time.monotonic()
    process.send_signal(signal.SIGTERM)
    code = process.wait(60)
    closed_cleanly = sum(connection.sock.recv(1) == b"" for connection in connections)
    return (
        f"SIGTERM with {idle} idle keep-alive and {len(sockets)} stalled connections open: exit {code} "
        f"{time.monotonic() - signalled:.2f} s later; {closed_cleanly}/{idle} keep-alive connections closed cleanly"
    )


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=os.path.join(ROOT, "out"))
    parser.add_argument("--stalled", default="0,100,500,900", help="comma-separated counts of stalled connections")
    parser.add_argument("--connection-limit", type=int, help="passed on to cnn-mnist (default: its own)")
    parser.add_argument("--channel-timeout", type=int, help="passed on to cnn-mnist (default: its own)")
    parser.add_argument("--close-wait", type=float, default=45, help="how long to wait for a stalled one to be closed")
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    atexit.register(stop_servers)
    with np.load(os.path.join(ROOT, "data", "mnist-small.npz")) as data:
        body = json.dumps({"pixels": data["x_test"][0].tolist()})
    port = free_port()
    argv = [sys.executable, "-m", "cnn_mnist.serving.cli", "--model", args.model, "--port", str(port)]
    for flag in ("connection_limit", "channel_timeout"):
        if getattr(args, flag) is not None:
            argv += ["--" + flag.replace("_", "-"), str(getattr(args, flag))]
    with tempfile.TemporaryDirectory() as tmp:
        process, _ = start_server("cnn-mnist", argv, port, os.path.join(tmp, "server.log"), 120)
        print(f"# {' '.join(argv[1:])}")
        print(
            "| stalled | GET /healthz worst of 5 | POST /predict worst of 5 | server RSS MB "
            "| server CPU s per s | server fds |"
        )
        print("|--:|--:|--:|--:|--:|--:|")
        for count in map(int, args.stalled.split(",")):
            sockets = stall(port, count)
            time.sleep(0.5)
            cpu_before, t_before = cpu_seconds(process.pid), time.monotonic()
            time.sleep(2)
            cpu = (cpu_seconds(process.pid) - cpu_before) / (time.monotonic() - t_before)
            health = worst_latency(port, "GET", "/healthz")
            predict = worst_latency(port, "POST", "/predict", body)
            shown = [f"{x * 1000:.0f} ms" if x is not None else "no answer in 10 s" for x in (health, predict)]
            print(
                f"| {count} | {shown[0]} | {shown[1]} | {memory(process.pid)['VmRSS']:.0f} | {cpu:.3f} | "
                f"{len(os.listdir(f'/proc/{process.pid}/fd'))} |",
                flush=True,
            )
            for sock in sockets:
                sock.close()
            time.sleep(0.5)  # let the server notice the closes before the next count
        closed = seconds_until_closed(stall(port, 1)[0], args.close_wait)
        print(
            f"# a stalled connection was closed by the server after "
            f"{f'more than {args.close_wait:g} s' if closed is None else f'{closed:.1f} s'}"
        )
        print(f"# {drain(process, port)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
