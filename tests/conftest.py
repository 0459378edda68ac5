"""Shared fixtures: a model trained once per test session on the bundled data, and a live server."""

import os
import pathlib
import re
import socket
import subprocess
import sys
import time
import urllib.request

import numpy as np
import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent
DATASET = ROOT / "data" / "mnist-small.npz"
TRAIN = [sys.executable, "-m", "cnn_mnist.training.cli"]
# A test that needs one of these is `slow` whether or not it says so: the quick loop (`make check`) and
# the package's check phase (package.nix) leave it out. Training the shared model alone takes about a minute.
SLOW_FIXTURES = {"trained_model", "live_server"}


def pytest_collection_modifyitems(items):
    for item in items:
        if SLOW_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.slow)


def run_trainer(*args, env=None, timeout=600):
    """Run `cnn-mnist-train` in a subprocess (each backend needs a fresh interpreter)."""
    return subprocess.run(
        [*TRAIN, *map(str, args)],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **(env or {})},
        cwd=ROOT,
    )


@pytest.fixture(scope="session")
def trained_model(tmp_path_factory):
    """A real model: 3 epochs on the 10,000 bundled training digits (about 97-98 % on the test set)."""
    output = tmp_path_factory.mktemp("model") / "out"
    result = run_trainer("--dataset", DATASET, "--epochs", 3, "--output", output)
    assert result.returncode == 0, result.stderr
    return output


def tree(path):
    """{relative path: bytes} for every file under `path`, and the directories as None."""
    found = {}
    for directory, dirs, files in os.walk(path):
        for name in dirs:
            found[os.path.relpath(os.path.join(directory, name), path)] = None
        for name in files:
            full = os.path.join(directory, name)
            with open(full, "rb") as stream:
                found[os.path.relpath(full, path)] = stream.read()
    return found


@pytest.fixture(scope="session")
def test_set():
    """The official MNIST test set (in the bundled data): images (N, 28, 28) uint8 and labels."""
    with np.load(DATASET) as data:
        return data["x_test"], data["y_test"]


@pytest.fixture(scope="session")
def postgres():
    """One real PostgreSQL server (tests/postgres.py) for the whole run; each store takes a new database in it."""
    from postgres import PostgresServer

    with PostgresServer() as server:
        yield server


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.slow)])
def backend(request):
    """The corrections store's back end: SQLite (quick), or PostgreSQL (slow: it starts a server)."""
    return request.param


@pytest.fixture(scope="module")
def app(trained_model):
    """The app in-process on `trained_model` (one per test module, so counters start afresh)."""
    from cnn_mnist.serving.app import create_app

    return create_app({"MODEL": str(trained_model)})


@pytest.fixture(scope="module")
def client(app):
    return app.test_client()


def metric(text, name, **labels):
    """The value of one sample in Prometheus text, or None."""
    for line in text.splitlines():
        match = re.fullmatch(rf"{name}(?:\{{(.*)\}})? (\S+)", line)
        if match and all(f'{k}="{v}"' in (match.group(1) or "") for k, v in labels.items()):
            return float(match.group(2))
    return None


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_ready(url: str, process, timeout=60.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited with {process.returncode}: {process.stderr.read()}")
        try:
            with urllib.request.urlopen(url + "readyz", timeout=1) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.1)
    raise TimeoutError(f"{url} not ready after {timeout} s")


def start_server(model, *extra, env=None):
    """Start `cnn-mnist` on a free loopback port; returns (process, base URL)."""
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "cnn_mnist.serving.cli", "--model", str(model), "--port", str(port), *map(str, extra)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, **(env or {})},
        cwd=ROOT,
    )
    url = f"http://127.0.0.1:{port}/"
    try:
        wait_ready(url, process)
    except BaseException:
        process.kill()
        raise
    return process, url


@pytest.fixture(scope="session")
def live_server(trained_model):
    """Base URL of a running `cnn-mnist` serving `trained_model`."""
    process, url = start_server(trained_model / "model.keras")
    yield url
    process.terminate()
    process.wait(timeout=30)
