"""Memory of one server process per Keras backend: what each of `services.cnn-mnist.instances` costs.

    .venv/bin/python bench/backend_memory.py [--model out/model.keras] [--backends tensorflow jax torch]

For each backend, starts `cnn-mnist --backend B` on the model (default settings, the single-model
shorthand), sends it `--requests` predictions of one and of 32 digits (so that both batch shapes are
compiled and the allocator has seen a batch), and reads the process's RSS. N instances hold N times
this: the processes share no model memory (each loads the model and its backend on its own).
"""

import argparse
import atexit
import http.client
import json
import os
import signal
import subprocess
import sys
import tempfile

from loadgen import HOST, memory
from serve import ROOT, free_port, start_server, stop_servers


def warm_up(port, requests):
    one = json.dumps({"pixels": [[0.0] * 28] * 28})
    batch = json.dumps({"pixels": [[[0.0] * 28] * 28] * 32})
    conn = http.client.HTTPConnection(HOST, port, timeout=60)
    for i in range(requests):
        conn.request("POST", "/predict", batch if i % 2 else one, {"Content-Type": "application/json"})
        response = conn.getresponse()
        body = response.read()
        if response.status != 200:
            raise SystemExit(f"bench: HTTP {response.status} during warm-up: {body[:200]!r}")
    conn.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=os.path.join(ROOT, "out", "model.keras"))
    parser.add_argument("--backends", nargs="+", default=["tensorflow", "jax", "torch"])
    parser.add_argument("--requests", type=int, default=200)
    args = parser.parse_args()
    atexit.register(stop_servers)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for backend in args.backends:
            port, log_path = free_port(), os.path.join(tmp, f"server-{backend}.log")
            argv = [sys.executable, "-m", "cnn_mnist.serving.cli", "--model", args.model, "--port", str(port)]
            argv += ["--backend", backend]
            process, ready = start_server(f"cnn-mnist --backend {backend}", argv, port, log_path, 600)
            warm_up(port, args.requests)
            rows.append((backend, memory(process.pid), ready))
            stop_servers()
    cpu = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
    model_name = next((line.split(":", 1)[1].strip() for line in cpu.splitlines() if "Model name" in line), "?")
    model = os.path.basename(args.model)
    print(f"RSS of one cnn-mnist process after {args.requests} predictions ({model}; {model_name})")
    print(f"{'backend':>10} {'RSS MB':>8} {'anon MB':>8} {'file MB':>8} {'ready s':>8}")
    for backend, mem, ready in rows:
        print(f"{backend:>10} {mem['VmRSS']:8.0f} {mem['RssAnon']:8.0f} {mem['RssFile']:8.0f} {ready:8.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
