"""Memory of one server process per Keras backend: what each of `services.cnn-mnist.instances` costs.

    .venv/bin/python bench/backend_memory.py [--model out/model.keras] [--backends tensorflow jax torch]

For each backend, starts `cnn-mnist --backend B` on the model (default settings, the single-model
shorthand), sends it `--requests` predictions of one and of 32 digits (so that both batch shapes are
compiled and the allocator has seen a batch), and reads the process's RSS. Then it starts a second
process beside the first, warms it the same way, and reads both processes' PSS (each shared page
counted once across them, /proc/PID/smaps_rollup): the sum is what two processes take together, and
the second one's real cost is that sum minus the first's PSS alone (PSS on both sides, as other
programs on the machine may share some of the same libraries' pages). The processes share no model
memory (each loads the model and its backend on its own); they share the backend's libraries' pages.
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


def pss(pid):
    """Proportional set size in MB: each page shared with other processes counted as its share."""
    with open(f"/proc/{pid}/smaps_rollup") as rollup:
        return next(int(line.split()[1]) for line in rollup if line.startswith("Pss:")) / 1024


def start(backend, model, requests, log_path):
    port = free_port()
    argv = [sys.executable, "-m", "cnn_mnist.serving.cli", "--model", model, "--port", str(port)]
    process, ready = start_server(f"cnn-mnist --backend {backend}", [*argv, "--backend", backend], port, log_path, 600)
    warm_up(port, requests)
    return process, ready


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
            first, ready = start(backend, args.model, args.requests, os.path.join(tmp, f"{backend}-1.log"))
            alone = memory(first.pid) | {"Pss": pss(first.pid)}
            second, _ = start(backend, args.model, args.requests, os.path.join(tmp, f"{backend}-2.log"))
            both = pss(first.pid) + pss(second.pid)
            rows.append((backend, alone, ready, both))
            stop_servers()
    cpu = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
    model_name = next((line.split(":", 1)[1].strip() for line in cpu.splitlines() if "Model name" in line), "?")
    model = os.path.basename(args.model)
    print(f"RSS of one cnn-mnist process after {args.requests} predictions ({model}; {model_name})")
    header = f"{'backend':>10} {'RSS MB':>8} {'anon MB':>8} {'file MB':>8} {'ready s':>8}"
    print(f"{header} {'2 processes, PSS MB':>20} {'the 2nd adds MB':>16}")
    for backend, mem, ready, both in rows:
        line = f"{backend:>10} {mem['VmRSS']:8.0f} {mem['RssAnon']:8.0f} {mem['RssFile']:8.0f} {ready:8.1f}"
        print(f"{line} {both:20.0f} {both - mem['Pss']:16.0f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
