"""What test modules share besides fixtures (conftest.py), so that no test module imports another.

A `cnn-mnist` process's clients (`post`, `get`, `Hammer`, `stop`, `run_cli`), and MNIST files written for
the dataset loader (`write_idx_dir`, `tiny_arrays`, `write_corrupt_file`).
"""

import gzip
import json
import os
import signal
import struct
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request

import numpy as np
import pytest
from conftest import DATASET, ROOT

from cnn_mnist.core.data import IDX_FILES

SERVE = [sys.executable, "-m", "cnn_mnist.serving.cli"]


def post(url, body, timeout=30):
    """POST JSON; returns (status, parsed body) for any HTTP status."""
    request = urllib.request.Request(url, json.dumps(body).encode(), {"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def get(url):
    with urllib.request.urlopen(url, timeout=10) as response:
        return response.read().decode()


def run_cli(*args, env=None):
    return subprocess.run(
        [*SERVE, *map(str, args)],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
        env={**os.environ, **(env or {})},
    )


def assert_usage_error(result, *words):
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr and result.stdout == ""
    errors = [line for line in result.stderr.splitlines() if line.startswith("cnn-mnist: error: ")]
    assert len(errors) == 1 and errors[0] == result.stderr.strip().splitlines()[-1], result.stderr
    for word in words:
        assert word in errors[0], errors[0]


def stop(process, log=None):
    """SIGTERM; asserts a clean exit and returns what the server logged (`log`: lines a reader already took)."""
    process.send_signal(signal.SIGTERM)
    try:
        code = process.wait(timeout=60)
    except subprocess.TimeoutExpired:
        process.kill()
        pytest.fail(f"no exit 60 s after SIGTERM; log: {''.join(log or [])[-3000:]}")
    text = "".join(log) if log is not None else process.stderr.read()
    assert code == 0, text
    return text


class Hammer:
    """Threads POSTing /predict without pause, recording (status, model version) of every answer."""

    def __init__(self, url, body, threads=4):
        self.url, self.body, self.done = url + "predict", body, threading.Event()
        self.results = [[] for _ in range(threads)]
        self.threads = [threading.Thread(target=self._run, args=(r,)) for r in self.results]
        for thread in self.threads:
            thread.start()

    def _run(self, results):
        while not self.done.is_set():
            try:
                status, answer = post(self.url, self.body)
                results.append((status, answer["model"]["version"] if status == 200 else answer))
            except Exception as error:  # a dropped connection is a failed request too
                results.append((None, repr(error)))

    def count(self):
        return sum(map(len, self.results))

    def wait_for(self, more, timeout=60):
        target, deadline = self.count() + more, time.monotonic() + timeout
        while self.count() < target and time.monotonic() < deadline:
            time.sleep(0.05)
        assert self.count() >= target, "the server stopped answering"

    def stop(self):
        self.done.set()
        for thread in self.threads:
            thread.join(timeout=60)
        return self.results


def wait_until(condition, timeout=90, step=0.2):
    """Poll `condition` every `step` seconds until it holds; fail after `timeout`."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(step)


def idx_bytes(array) -> bytes:
    """An IDX file of unsigned bytes: magic 0x00 0x00 0x08 ndim, big-endian dimensions, then the data."""
    array = np.ascontiguousarray(array, dtype=np.uint8)
    return bytes([0, 0, 0x08, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape) + array.tobytes()


def write_idx_dir(directory, arrays, gz=True, dotted=False):
    """Write the four MNIST IDX files for `arrays` into `directory` (as published: gzipped or raw, two spellings)."""
    os.makedirs(directory, exist_ok=True)
    for key, stem in IDX_FILES.items():
        name = stem.replace("-idx", ".idx") if dotted else stem
        data = idx_bytes(arrays[key])
        if gz:
            with gzip.open(os.path.join(directory, name + ".gz"), "wb") as stream:
                stream.write(data)
        else:
            with open(os.path.join(directory, name), "wb") as stream:
                stream.write(data)
    return directory


def tiny_arrays(n=8):
    rng = np.random.default_rng(0)
    return {
        "x_train": rng.integers(0, 256, (n, 28, 28), dtype=np.uint8),
        "y_train": np.arange(n, dtype=np.uint8) % 10,
        "x_test": rng.integers(0, 256, (n // 2, 28, 28), dtype=np.uint8),
        "y_test": np.arange(n // 2, dtype=np.uint8) % 10,
    }


def write_corrupt_file(path):
    rng = np.random.default_rng(1)
    contents = {
        "random-bytes.npz": rng.integers(0, 256, 4096, dtype=np.uint8).tobytes(),
        "truncated.npz": DATASET.read_bytes()[: DATASET.stat().st_size // 2],
        "empty.npz": b"",
        "text.npz": b"x_train,y_train\n1,2\n",
    }
    if path.name in contents:
        path.write_bytes(contents[path.name])
    else:  # a .npy holds one array, not a .npz archive
        np.save(path, np.zeros((3, 28, 28), np.uint8))
    return path
