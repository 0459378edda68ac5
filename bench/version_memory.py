"""Memory per served version, and how long the canary check takes.

    .venv/bin/python bench/version_memory.py [--model out/model.keras] [--versions 4]

For k = 1 … `--versions`, starts `cnn-mnist` on a versions directory in which k versions are labelled
(v1 -> 1, v2 -> 2, …; each a copy of the model with one output bias shifted, so each is loaded on its
own), sends every served version a few requests, and reads the server's RSS. The cost of one more
version is the slope between consecutive k. The server logs the canary scoring time of every model it
loads ("scores … on the canary set (1000 digits, X s)"); the report gives their range.
"""

import argparse
import atexit
import http.client
import json
import os
import re
import signal
import sys
import tempfile

from loadgen import HOST, memory
from serve import ROOT, free_port, start_server, stop_servers

SCORED = re.compile(r"scores (\S+) on the canary set \((\d+) digits, (\S+) s\)")


def make_versions(model, directory, count):
    import keras

    for version in range(1, count + 1):
        loaded = keras.saving.load_model(model, compile=False)
        weights = loaded.get_weights()
        weights[-1][0] += 0.01 * version
        loaded.set_weights(weights)
        os.makedirs(os.path.join(directory, str(version)))
        loaded.save(os.path.join(directory, str(version), "model.keras"))


def label(directory, count):
    for name in os.listdir(directory):
        if name.startswith("v"):
            os.remove(os.path.join(directory, name))
    for version in range(1, count + 1):
        os.symlink(str(version), os.path.join(directory, f"v{version}"))


def exercise(port, count):
    body = json.dumps({"instances": [[[[0.0]] * 28] * 28]})
    conn = http.client.HTTPConnection(HOST, port, timeout=60)
    for version in range(1, count + 1):
        for _ in range(10):
            conn.request(
                "POST", f"/v1/models/cnn-mnist/versions/{version}:predict", body, {"Content-Type": "application/json"}
            )
            response = conn.getresponse()
            response.read()
            assert response.status == 200, (version, response.status)
    conn.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=os.path.join(ROOT, "out", "model.keras"))
    parser.add_argument("--versions", type=int, default=4)
    args = parser.parse_args()
    atexit.register(stop_servers)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))
    rows, timings = [], []
    with tempfile.TemporaryDirectory() as tmp:
        versions = os.path.join(tmp, "versions")
        make_versions(args.model, versions, args.versions)
        for count in range(1, args.versions + 1):
            label(versions, count)
            port, log_path = free_port(), os.path.join(tmp, f"server-{count}.log")
            argv = [sys.executable, "-m", "cnn_mnist.serving.cli", "--model", versions, "--port", str(port)]
            process, ready = start_server("cnn-mnist", argv, port, log_path, 600)
            exercise(port, count)
            rows.append((count, memory(process.pid), ready))
            stop_servers()
            with open(log_path) as log:
                timings += [float(match.group(3)) for match in SCORED.finditer(log.read())]
    print(f"cnn-mnist memory per served version ({os.path.basename(args.model)})")
    print(f"{'versions':>8} {'RSS MB':>8} {'anon MB':>8} {'+ per version':>14} {'ready s':>8}")
    for index, (count, mem, ready) in enumerate(rows):
        step = f"{mem['VmRSS'] - rows[index - 1][1]['VmRSS']:+.0f}" if index else ""
        print(f"{count:8d} {mem['VmRSS']:8.0f} {mem['RssAnon']:8.0f} {step:>14} {ready:8.1f}")
    if len(rows) > 1:
        slope = (rows[-1][1]["VmRSS"] - rows[0][1]["VmRSS"]) / (len(rows) - 1)
        print(f"mean cost of one more version: {slope:.0f} MB")
    print(
        f"canary scoring (1,000 digits) of {len(timings)} loads: "
        f"{min(timings):.2f}-{max(timings):.2f} s, median {sorted(timings)[len(timings) // 2]:.2f} s"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
