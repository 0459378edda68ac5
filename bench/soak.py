"""Soak: minutes of mixed traffic from many keep-alive clients; counts errors and samples the server's RSS.

    .venv/bin/python bench/soak.py --model out/ [--minutes 3] [--clients 32]

The traffic: valid pixels, PNG uploads (multipart and base64), TF Serving requests, and malformed
requests (broken JSON, wrong shapes, booleans, 100,000-deep nesting, bad base64, wrong methods, unknown
models). An error is an answer whose status is not the one that request must get (a malformed request
answered 400 is a success), a connection reset, or a timeout. The clients run in spawned processes so
they share no GIL with the sampling. Only loopback is contacted; the server is killed on exit.
"""

import argparse
import atexit
import base64
import collections
import http.client
import io
import json
import multiprocessing
import os
import sys
import tempfile
import threading
import time

import numpy as np
from loadgen import HOST, memory
from PIL import Image
from serve import ROOT, free_port, start_server, stop_servers

TF = "/v1/models/cnn-mnist:predict"
PROCESSES = 4


def requests_to_send(digits):
    """(name, method, path, body, content type, the status it must get) for every kind of traffic."""
    png = io.BytesIO()
    Image.fromarray(digits[0]).save(png, "PNG")
    png = png.getvalue()
    boundary = "soakboundary"
    multipart = (
        (
            f'--{boundary}\r\nContent-Disposition: form-data; name="image"; filename="d.png"\r\n'
            f"Content-Type: image/png\r\n\r\n"
        ).encode()
        + png
        + f"\r\n--{boundary}--\r\n".encode()
    )
    pixels = json.dumps({"pixels": digits[1].tolist()})
    batch = json.dumps({"pixels": digits[:8].tolist()})
    instances = json.dumps({"instances": (digits[:4, ..., None] / 255).round(4).tolist()})
    deep = '{"pixels": ' + "[" * 100_000 + "]" * 100_000 + "}"
    as_json = "application/json"
    return [
        ("pixels", "POST", "/predict", pixels, as_json, 200),
        ("pixels batch of 8", "POST", "/predict", batch, as_json, 200),
        ("PNG multipart", "POST", "/predict", multipart, f"multipart/form-data; boundary={boundary}", 200),
        ("PNG base64", "POST", "/predict", json.dumps({"image": base64.b64encode(png).decode()}), as_json, 200),
        ("TF Serving instances", "POST", TF, instances, as_json, 200),
        ("broken JSON", "POST", "/predict", '{"pixels": [1, 2', as_json, 400),
        ("wrong shape", "POST", "/predict", json.dumps({"pixels": [0] * 783}), as_json, 400),
        ("booleans", "POST", "/predict", json.dumps({"pixels": [[True] * 28] * 28}), as_json, 400),
        ("nested 100,000 deep", "POST", "/predict", deep, as_json, 400),
        ("bad base64", "POST", "/predict", json.dumps({"image": "not base64!"}), as_json, 400),
        ("TF 0-255 values", "POST", TF, json.dumps({"instances": [[255] * 784]}), as_json, 400),
        ("GET /predict", "GET", "/predict", None, None, 405),
        ("unknown model", "POST", "/v1/models/other:predict", instances, as_json, 404),
    ]


def _client(port, kinds, first, t_end, counts, errors):
    connection = http.client.HTTPConnection(HOST, port, timeout=30)
    i = first
    while time.monotonic() < t_end:
        name, method, path, body, content_type, expected = kinds[i % len(kinds)]
        i += 1
        try:
            connection.request(method, path, body, {"Content-Type": content_type} if content_type else {})
            response = connection.getresponse()
            response.read()
            if response.status != expected:
                errors.append(f"{name}: HTTP {response.status}, expected {expected}")
        except (OSError, http.client.HTTPException) as error:
            connection.close()
            errors.append(f"{name}: {error!r}")
        counts[name] += 1
    connection.close()


def _worker(port, kinds, threads, offset, t_end, queue):
    counts, errors = collections.Counter(), []
    clients = [
        threading.Thread(target=_client, args=(port, kinds, offset + 7 * k, t_end, counts, errors))
        for k in range(threads)
    ]
    for client in clients:
        client.start()
    for client in clients:
        client.join()
    queue.put((counts, errors))


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=os.path.join(ROOT, "out"))
    parser.add_argument("--minutes", type=float, default=3)
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--sample-seconds", type=float, default=10, help="RSS sampling period")
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    atexit.register(stop_servers)
    with np.load(os.path.join(ROOT, "data", "mnist-small.npz")) as data:
        kinds = requests_to_send(data["x_test"][:8])
    port = free_port()
    argv = [sys.executable, "-m", "cnn_mnist.serving.cli", "--model", args.model, "--port", str(port)]
    context = multiprocessing.get_context("spawn")
    with tempfile.TemporaryDirectory() as tmp:
        process, _ = start_server("cnn-mnist", argv, port, os.path.join(tmp, "server.log"), 120)
        started = time.monotonic()
        t_end = started + args.minutes * 60
        queue = context.Queue()
        workers = [
            context.Process(
                target=_worker,
                daemon=True,
                args=(port, kinds, args.clients // PROCESSES + (n < args.clients % PROCESSES), 1000 * n, t_end, queue),
            )
            for n in range(PROCESSES)
        ]
        for worker in workers:
            worker.start()
        samples = [(0.0, memory(process.pid)["VmRSS"])]
        while time.monotonic() < t_end:
            time.sleep(min(args.sample_seconds, max(t_end - time.monotonic(), 0)))
            samples.append((time.monotonic() - started, memory(process.pid)["VmRSS"]))
        results = [queue.get(timeout=120) for _ in workers]
    counts = sum((c for c, _ in results), collections.Counter())
    errors = [e for _, errs in results for e in errs]
    print(
        f"# {args.clients} clients, {args.minutes:g} min, {sum(counts.values())} requests, "
        f"{sum(counts.values()) / (args.minutes * 60):.0f}/s; errors: {len(errors)}"
    )
    print("| request | sent | expected status |")
    print("|---|--:|--:|")
    for name, *_, expected in kinds:
        print(f"| {name} | {counts[name]} | {expected} |")
    print("# RSS MB over time: " + ", ".join(f"{t:.0f}s {rss:.0f}" for t, rss in samples))
    warm = [rss for t, rss in samples if t >= 30]  # after the first forward passes and allocator warm-up
    if warm:
        print(
            f"# RSS after 30 s: min {min(warm):.0f}, max {max(warm):.0f}, last {warm[-1]:.0f} MB "
            f"(growth {warm[-1] - warm[0]:+.0f} MB)"
        )
    for error in collections.Counter(errors).most_common(10):
        print(f"# error x{error[1]}: {error[0]}")
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
