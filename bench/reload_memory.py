"""Reload memory: does RSS come back after many SIGHUP swaps? (issue 8 §6)

    .venv/bin/python bench/reload_memory.py [--model out/model.keras] [--reloads 50] [--clients 2]

Builds a versions directory holding the model twice (1/ and 2/, the second with a shifted output bias
so that its file differs), starts `cnn-mnist` on it (default settings), starts `--clients`
threads sending requests without pause, and after `--settle` seconds of that traffic takes the fresh
server's RSS (so the reference has seen the same traffic, and only the reloads differ). Then,
`--reloads` times: repoint the `current` label to the other version, send SIGHUP, and wait until
/readyz shows the new version (each reload loads, warms and canary-scores a model and retires the old
one). RSS is sampled every 20 ms throughout. The report gives the fresh RSS, the peak, RSS after every
10th reload and at the end, and their ratio to the fresh server (the goal: within 10 %).
"""

import argparse
import atexit
import http.client
import json
import os
import signal
import sys
import tempfile
import threading
import time

from loadgen import HOST, RssSampler, memory
from serve import ROOT, free_port, start_server, stop_servers


def make_versions(model, directory):
    """versions 1/ (the model) and 2/ (the same with one output bias shifted: another file, same quality)."""
    import keras

    for version, shift in (("1", 0.0), ("2", 0.25)):
        os.makedirs(os.path.join(directory, version))
        loaded = keras.saving.load_model(model, compile=False)
        weights = loaded.get_weights()
        weights[-1][0] += shift
        loaded.set_weights(weights)
        loaded.save(os.path.join(directory, version, "model.keras"))
    os.symlink("1", os.path.join(directory, "current"))


def get_json(port, path):
    conn = http.client.HTTPConnection(HOST, port, timeout=30)
    conn.request("GET", path)
    body = json.loads(conn.getresponse().read())
    conn.close()
    return body


def predict(port, count=None, until=None):
    """Send `count` requests (or until the event `until` is set) on one keep-alive connection; any failure raises."""
    body = json.dumps({"pixels": [[0.0] * 28] * 28})
    conn = http.client.HTTPConnection(HOST, port, timeout=30)
    sent = 0
    while (until is None and sent < count) or (until is not None and not until.is_set()):
        sent += 1
        conn.request("POST", "/predict", body, {"Content-Type": "application/json"})
        response = conn.getresponse()
        response.read()
        assert response.status == 200, response.status
    conn.close()


def repoint(directory, version):
    link = os.path.join(directory, "current")
    os.symlink(version, link + ".new")
    os.replace(link + ".new", link)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=os.path.join(ROOT, "out", "model.keras"))
    parser.add_argument("--reloads", type=int, default=50)
    parser.add_argument("--clients", type=int, default=2, help="threads sending requests during the reloads")
    parser.add_argument("--settle", type=float, default=20, help="seconds of traffic before the reference RSS")
    parser.add_argument("--timeout", type=float, default=120, help="seconds one reload may take")
    args = parser.parse_args()
    atexit.register(stop_servers)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))
    with tempfile.TemporaryDirectory() as tmp:
        versions = os.path.join(tmp, "versions")
        make_versions(args.model, versions)
        port = free_port()
        argv = [sys.executable, "-m", "cnn_mnist.serving.cli", "--model", versions, "--port", str(port)]
        process, ready = start_server("cnn-mnist", argv, port, os.path.join(tmp, "server.log"), 300)
        stop = threading.Event()
        clients = [threading.Thread(target=predict, args=(port, None, stop), daemon=True) for _ in range(args.clients)]
        for client in clients:
            client.start()
        time.sleep(args.settle)
        fresh = memory(process.pid)["VmRSS"]
        sampler = RssSampler(process.pid)
        sampler.start()
        rows, seconds = [], []
        for reload in range(1, args.reloads + 1):
            target = "2" if reload % 2 else "1"
            repoint(versions, target)
            started = time.monotonic()
            process.send_signal(signal.SIGHUP)
            while get_json(port, "/readyz")["model"]["version"] != target:
                if time.monotonic() - started > args.timeout:
                    raise SystemExit(f"bench: reload {reload} did not finish in {args.timeout} s")
                time.sleep(0.05)
            seconds.append(time.monotonic() - started)
            predict(port, 5)
            if reload % 10 == 0 or reload == args.reloads:
                rows.append((reload, memory(process.pid)["VmRSS"]))
        stop.set()
        for client in clients:
            client.join()
        peak = sampler.overall["VmRSS"]
        sampler.stopped = True
    print(
        f"cnn-mnist reload memory, {args.reloads} SIGHUP swaps between two versions, {args.clients} clients "
        f"(ready in {ready:.1f} s; a reload took {min(seconds):.1f}-{max(seconds):.1f} s)"
    )
    print(f"{'after':>14} {'RSS MB':>8} {'vs fresh':>9}")
    print(f"{'fresh server':>14} {fresh:8.0f} {'1.00':>9}")
    for reload, rss in rows:
        print(f"{f'{reload} reloads':>14} {rss:8.0f} {rss / fresh:9.2f}")
    print(f"{'peak':>14} {peak:8.0f} {peak / fresh:9.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
