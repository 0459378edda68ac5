"""`cnn-mnist` as a real server process: the CLI, SIGHUP model swaps under load, SIGTERM drain, backends, .h5."""

import http.client
import json
import os
import re
import shutil
import signal
import subprocess
import threading
import time
import urllib.error
import urllib.parse
import urllib.request

import numpy as np
import pytest
from backend_hook import hook_env
from conftest import DATASET, ROOT, free_port, metric, start_server, wait_ready
from helpers import SERVE, Hammer, assert_usage_error, get, post, run_cli, stop, wait_until

from cnn_mnist.serving.inference import Predictor

URL_LINE = re.compile(r"cnn-mnist: serving model \S+ version (\d+) \((\w+)\) at (http://\S+/)")


@pytest.fixture(scope="module")
def digits():
    with np.load(DATASET) as data:
        return data["x_test"][:8], data["y_test"][:8]


@pytest.mark.parametrize(
    "args, env, words",
    [
        (["--backend", "theano"], {}, ["Theano", "tensorflow, jax, torch"]),
        ([], {"KERAS_BACKEND": "theano"}, ["Theano"]),
        ([], {"KERAS_BACKEND": "", "BACKEND": "mxnet"}, ["unknown backend 'mxnet'"]),
        (["--backend", "cntk"], {}, ["unknown backend 'cntk'"]),
        (["--port", "70000"], {}, ["--port"]),
        (["--threads", "0"], {}, ["--threads"]),
        ([], {"PORT": "abc"}, ["--port", "'abc'"]),
        ([], {"THREADS": "0"}, ["--threads"]),
        (["--model", "/nonexistent/model.keras"], {}, ["model not found: /nonexistent/model.keras"]),
    ],
)
def test_usage_errors_before_loading_anything(args, env, words, trained_model, tmp_path):
    """Found before the backend is imported: an import would exit 97 here (tests/backend_hook.py)."""
    forbid_import = hook_env(tmp_path, "forbid")
    assert_usage_error(run_cli("--model", trained_model, *args, env={**env, **forbid_import}), *words)


@pytest.mark.slow
def test_missing_or_wrong_model_is_a_one_line_error(tmp_path):
    assert_usage_error(run_cli("--model", tmp_path / "nowhere.keras", "--port", free_port()), "model not found")
    (tmp_path / "model.txt").write_text("not a model")
    assert_usage_error(run_cli("--model", tmp_path / "model.txt", "--port", free_port()), ".keras or .h5")
    (tmp_path / "bad.keras").write_bytes(os.urandom(2048))
    assert_usage_error(run_cli("--model", tmp_path / "bad.keras", "--port", free_port()), "corrupt or truncated")


def launch(*args, env):
    """Start the server with `env` and read its one 'serving … at URL' line; returns (process, match)."""
    process = subprocess.Popen(
        [*SERVE, *map(str, args)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=ROOT,
        env={**os.environ, **env},
    )
    line = process.stdout.readline()
    match = URL_LINE.fullmatch(line.strip())
    if not match:
        process.kill()
        pytest.fail(f"no URL line: {line!r} {process.stderr.read()}")
    wait_ready(match.group(3), process)
    return process, match


def read_log(process):
    """Keep reading the server's stderr (a full pipe would block its logging); returns the growing list of lines."""
    lines = []
    threading.Thread(target=lambda: lines.extend(iter(process.stderr.readline, "")), daemon=True).start()
    return lines


@pytest.mark.slow
def test_settings_from_the_environment_and_an_h5_model(tmp_path, trained_model, digits):
    """MODEL, PORT, HOST, THREADS from the environment; and a legacy .h5 file serves like the .keras one."""
    import keras

    keras.saving.load_model(trained_model / "model.keras", compile=False).save(tmp_path / "model.h5")
    port = free_port()
    process, match = launch(
        env={
            "MODEL": str(tmp_path / "model.h5"),
            "PORT": str(port),
            "HOST": "127.0.0.1",
            "THREADS": "2",
            "KERAS_BACKEND": "",
        }
    )
    try:
        assert match.group(3) == f"http://127.0.0.1:{port}/" and match.group(2) == "tensorflow"
        status, answers = post(match.group(3) + "predict", {"pixels": digits[0].tolist()})
        assert status == 200
        assert (np.array([a["digit"] for a in answers]) == digits[1]).mean() >= 0.75
        assert (
            answers[0]["model"]["sha256"]
            == __import__("hashlib").sha256((tmp_path / "model.h5").read_bytes()).hexdigest()
        )
    finally:
        stop(process)


@pytest.mark.slow
def test_flags_win_over_the_environment_and_jax_serves(trained_model, digits):
    """Env says a missing model, another port and Theano; the flags say otherwise and win (on JAX)."""
    env_port, flag_port = free_port(), free_port()
    env = {"MODEL": "/nowhere/model.keras", "PORT": str(env_port), "KERAS_BACKEND": "theano", "THREADS": "1"}
    process, match = launch("--model", trained_model, "--port", flag_port, "--backend", "jax", "--threads", 4, env=env)
    try:
        assert match.group(3) == f"http://127.0.0.1:{flag_port}/" and match.group(2) == "jax"
        body = {"pixels": digits[0].tolist()}
        status, on_jax = post(match.group(3) + "predict", body)
        assert status == 200
        on_tensorflow = Predictor(str(trained_model / "model.keras"), "1").predict(
            digits[0][..., None].astype(np.float32) / 255
        )
        assert [a["digit"] for a in on_jax] == on_tensorflow.argmax(axis=1).tolist()
        np.testing.assert_allclose([a["probabilities"] for a in on_jax], on_tensorflow, atol=1e-4)
        status, tf_serving = post(
            match.group(3) + "v1/models/cnn-mnist:predict", {"instances": (digits[0][:2, ..., None] / 255).tolist()}
        )
        assert status == 200 and len(tf_serving["predictions"]) == 2
    finally:
        stop(process)


def add_version(versions, number, write):
    """Write version `number` beside the others, appearing all at once (a rename)."""
    staging = versions / f"staging-{number}"
    staging.mkdir()
    write(staging / "model.keras")
    staging.rename(versions / str(number))


def five_class_model(path):
    import keras

    model = keras.Sequential([keras.Input((28, 28, 1)), keras.layers.Flatten(), keras.layers.Dense(5, "softmax")])
    model.save(path)


@pytest.mark.slow
def test_sighup_swaps_versions_under_load_and_refuses_bad_models(tmp_path, trained_model, digits):
    versions = tmp_path / "versions"
    versions.mkdir()
    add_version(versions, 1, lambda path: shutil.copy(trained_model / "model.keras", path))
    process, url = start_server(versions, "--threads", 8)
    server_log = read_log(process)
    status_url, metrics_url = url + "v1/models/cnn-mnist", url + "metrics"
    hammer = Hammer(url, {"pixels": digits[0][0].tolist()})
    try:
        hammer.wait_for(20)
        add_version(versions, 2, lambda path: shutil.copy(trained_model / "model.keras", path))
        process.send_signal(signal.SIGHUP)
        # the swap is one assignment; the metrics are updated just after it
        wait_until(lambda: metric(get(metrics_url), "cnn_mnist_model_swaps_total", result="swapped") == 1)
        newest = json.loads(get(status_url))["model_version_status"][0]
        assert newest["version"] == "2" and newest["state"] == "AVAILABLE"
        hammer.wait_for(20)
        text = get(metrics_url)
        assert metric(text, "cnn_mnist_model_swaps_total", result="swapped") == 1
        assert metric(text, "cnn_mnist_model_version") == 2

        add_version(versions, 3, lambda path: path.write_bytes(os.urandom(8192)))  # not a model at all
        process.send_signal(signal.SIGHUP)
        wait_until(lambda: metric(get(metrics_url), "cnn_mnist_model_swaps_total", result="refused") == 1)
        hammer.wait_for(20)
        add_version(versions, 4, five_class_model)  # a model, but with 5 classes
        process.send_signal(signal.SIGHUP)
        wait_until(lambda: metric(get(metrics_url), "cnn_mnist_model_swaps_total", result="refused") == 2)
        hammer.wait_for(20)
    finally:
        results = hammer.stop()
        text, status = get(metrics_url), json.loads(get(status_url))
        log = stop(process, server_log)

    failures = [result for thread in results for result in thread if result[0] != 200]
    assert failures == [] and hammer.count() >= 80
    for thread in results:
        seen = [version for _, version in thread]
        switch = seen.index("2") if "2" in seen else len(seen)
        assert seen[0] == "1" and set(seen[switch:]) == {"2"}, seen  # 1 … 1 2 … 2, never back
    assert any("2" in [v for _, v in thread] for thread in results)
    assert metric(text, "cnn_mnist_model_swaps_total", result="swapped") == 1
    assert metric(text, "cnn_mnist_model_version") == 2
    available = [entry["version"] for entry in status["model_version_status"] if entry["state"] == "AVAILABLE"]
    assert available == ["2"]
    assert {entry["version"] for entry in status["model_version_status"]} >= {"1", "2"}
    refusals = [line for line in log.splitlines() if "reload refused, still serving version 2" in line]
    assert len(refusals) == 2 and "corrupt or truncated" in refusals[0] and "(None, 5)" in refusals[1], log


def refused_unread(request) -> bool:
    """waitress answers 413 and closes without reading the rest of the body: the client reads the 413 or,
    when the close wins the race with its upload, sees a broken pipe or a reset. Either is a refusal."""
    try:
        urllib.request.urlopen(request, timeout=30)
    except urllib.error.HTTPError as error:
        return error.code == 413
    except urllib.error.URLError as error:
        return isinstance(error.reason, (BrokenPipeError, ConnectionResetError))
    return False


def queues(local_port, remote_port):
    """(send, receive) queue bytes of the loopback TCP socket local_port -> remote_port (/proc/net/tcp), or None."""
    with open("/proc/net/tcp") as table:
        for line in list(table)[1:]:
            local, remote, _, queue = line.split()[1:5]
            if (int(local.split(":")[1], 16), int(remote.split(":")[1], 16)) == (local_port, remote_port):
                return tuple(int(side, 16) for side in queue.split(":"))
    return None


@pytest.mark.slow
def test_body_limit_then_sigterm_drains_the_request_in_flight_and_exits_0(trained_model, digits):
    # A lone request waits 1 s for others to share its batch: SIGTERM comes once waitress has read all of it.
    process, url = start_server(trained_model, "--max-batch-delay-ms", 1000, "--max-body-bytes", 8000)
    status, error = post(url + "predict", {"pixels": [255] * 784 + [0] * 4000})  # ~16 kB
    assert status == 413 and "8000-byte limit" in error["error"]
    huge = urllib.request.Request(url + "predict", b"[" + b"0," * 500_000 + b"0]", {"Content-Type": "application/json"})
    assert refused_unread(huge)  # past waitress' own limit
    port, answers = urllib.parse.urlsplit(url).port, []
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    connection.request(
        "POST", "/predict", json.dumps({"pixels": digits[0][0].tolist()}), {"Content-Type": "application/json"}
    )

    def receive():
        response = connection.getresponse()
        answers.append((response.status, json.loads(response.read()), time.monotonic()))

    client = threading.Thread(target=receive)
    client.start()
    ours = connection.sock.getsockname()[1]
    # in flight: the server's kernel has every byte (none unacknowledged here), and waitress has read them all
    wait_until(lambda: queues(ours, port)[0] == 0 and queues(port, ours)[1] == 0, timeout=30, step=0.01)
    signalled = time.monotonic()
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=60) == 0
    client.join(timeout=30)
    ((status, answer, answered),) = answers
    assert status == 200 and answer["digit"] == digits[1][0], answer
    assert answered > signalled, "answered before SIGTERM: the drain was not tested"
    with pytest.raises(urllib.error.URLError) as refused:
        urllib.request.urlopen(url + "healthz", timeout=5)
    assert isinstance(refused.value.reason, ConnectionRefusedError)
    assert "drained" in process.stderr.read()


@pytest.mark.slow
def test_sigterm_under_load_exits_0_and_fails_no_request(trained_model, digits):
    """SIGTERM lands while waitress is busy with sockets: it must still drain and exit (it once got swallowed)."""
    process, url = start_server(trained_model)
    done, statuses = threading.Event(), []

    def hammer():
        while not done.is_set():
            try:
                statuses.append(post(url + "predict", {"pixels": digits[0][0].tolist()})[0])
            except Exception as error:  # a reset or a connection closed unanswered is a failed request
                if not isinstance(getattr(error, "reason", None), ConnectionRefusedError):
                    statuses.append(repr(error))
                return  # refused: the server stopped listening, as it does once it drains

    clients = [threading.Thread(target=hammer) for _ in range(6)]
    for client in clients:
        client.start()
    deadline = time.monotonic() + 60
    while len(statuses) < 50 and time.monotonic() < deadline:
        time.sleep(0.05)
    process.send_signal(signal.SIGTERM)
    try:
        code = process.wait(timeout=60)
    finally:
        done.set()
        for client in clients:
            client.join(timeout=30)
    assert code == 0
    assert len(statuses) >= 50 and set(statuses) == {200}, sorted(set(statuses))
