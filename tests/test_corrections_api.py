"""POST /v1/corrections on the real app (a trained model, a real SQLite store): stored, refused, rate-limited.

Every refusal must leave the store as it was; the rate limit and the client address are also tested on
their own, on a clock the test moves (no sleeps, no timings).
"""

import base64
import io
import json
import threading

import numpy as np
import pytest
from conftest import metric
from helpers import assert_usage_error, run_cli
from PIL import Image

from cnn_mnist.corrections.store import StoreError, open_store
from cnn_mnist.serving.client_address import client_address, trusted_network
from cnn_mnist.serving.corrections_api import StoreCounts
from cnn_mnist.serving.rate_limit import RateLimiter, retry_after

ROUTE = "/v1/corrections"


def png_url(image: np.ndarray, mode="L", fmt="PNG") -> str:
    buffer = io.BytesIO()
    Image.fromarray(image).convert(mode).save(buffer, fmt)
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()


class Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


# --- the rate limit and the client address, alone ---------------------------------------------------


def test_a_bucket_lets_n_through_then_says_how_long_to_wait():
    clock = Clock()
    limiter = RateLimiter(3, clock=clock)
    assert [limiter.acquire("a") for _ in range(3)] == [0, 0, 0]
    assert limiter.acquire("a") == pytest.approx(20)  # one token every 60 / 3 s
    assert limiter.acquire("b") == 0, "another client has its own bucket"
    clock.now += 19
    assert limiter.acquire("a") == pytest.approx(1), "a refusal takes no token"
    clock.now += 1
    assert limiter.acquire("a") == 0
    assert limiter.acquire("a") == pytest.approx(20)
    clock.now += 3600
    assert [limiter.acquire("a") for _ in range(4)][-1] > 0, "an idle client's bucket holds N, not more"


def test_retry_after_is_whole_seconds_rounded_up():
    assert [retry_after(w) for w in (0.001, 1.0, 1.01, 19.99)] == ["1", "1", "2", "20"]


def test_the_limiter_forgets_the_least_recently_seen_clients_past_its_bound():
    clock = Clock()
    limiter = RateLimiter(1, max_clients=3, clock=clock)
    for client in "abcd":
        limiter.acquire(client)
    assert len(limiter) == 3
    assert limiter.acquire("a") == 0, "a, the oldest, was forgotten: a full bucket again"
    assert limiter.acquire("d") > 0, "d is remembered"


def test_the_limiter_holds_under_threads():
    limiter = RateLimiter(100, clock=Clock())  # the clock stands still: exactly 100 tokens in all
    allowed = []

    def hammer():
        allowed.append(sum(limiter.acquire("one") == 0 for _ in range(200)))

    threads = [threading.Thread(target=hammer) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sum(allowed) == 100


TRUSTED = [trusted_network("127.0.0.1"), trusted_network("10.0.0.0/8")]


@pytest.mark.parametrize(
    "peer, forwarded, client",
    [
        ("192.0.2.7", None, "192.0.2.7"),
        ("192.0.2.7", "203.0.113.9", "192.0.2.7"),  # not a trusted peer: its header is not believed
        ("127.0.0.1", None, "127.0.0.1"),
        ("127.0.0.1", "203.0.113.9", "203.0.113.9"),
        ("127.0.0.1", "1.1.1.1, 203.0.113.9", "203.0.113.9"),  # the left is the client's to invent
        ("127.0.0.1", "1.1.1.1, 203.0.113.9, 10.1.2.3", "203.0.113.9"),  # past a second trusted hop
        ("127.0.0.1", "10.1.2.3", "10.1.2.3"),  # every hop trusted: the farthest one
        ("127.0.0.1", "203.0.113.9, not-an-address", "127.0.0.1"),  # garbage ends the walk at the proxy
        ("::ffff:127.0.0.1", "203.0.113.9", "203.0.113.9"),  # an IPv4-mapped peer is that IPv4
        ("127.0.0.1", "2001:db8:1:2:3:4:5:6", "2001:db8:1:2::/64"),  # an IPv6 client is its /64
        ("2001:db8:1:2::9", None, "2001:db8:1:2::/64"),
    ],
)
def test_the_client_is_the_peer_or_what_trusted_proxies_say(peer, forwarded, client):
    assert client_address(peer, forwarded, TRUSTED) == client


def test_trusted_proxy_values_must_be_addresses():
    assert str(trusted_network(" ::1 ")) == "::1/128"
    with pytest.raises(ValueError, match="not an IP address"):
        trusted_network("nginx.local")


# --- the store's counts in /metrics -------------------------------------------------------------------


def test_the_stores_counts_are_read_at_most_every_max_age(tmp_path):
    clock = Clock()
    store = open_store(str(tmp_path / "c.sqlite"))
    counts = StoreCounts(store, max_age=5, clock=clock)

    def pending():
        return next(m for m in counts.collect() if m.name == "cnn_mnist_corrections_stored").samples[0].value

    image = np.zeros((28, 28), np.uint8)
    image[9:19, 13:15] = 255
    store.add(image, 1, None, None)
    assert pending() == 1
    store.add(image, 7, None, None)
    assert pending() == 1, "within max_age the count is reused"
    clock.now += 5
    assert pending() == 2
    store.close()


def test_a_store_that_fails_to_count_shows_as_down():
    class Failing:
        def counts(self):
            raise StoreError("the database is gone")

    names = {m.name: m.samples for m in StoreCounts(Failing()).collect()}
    assert list(names) == ["cnn_mnist_corrections_store_up"] and names["cnn_mnist_corrections_store_up"][0].value == 0


# --- the server's flags -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "flags, words",
    [
        (["--corrections", "{tmp}/no/such/dir/c.sqlite"], ["--corrections", "cannot open"]),
        (["--corrections", "mysql://host/db"], ["--corrections", "mysql://"]),
        (["--corrections", "postgresql://nobody@127.0.0.1:1/none"], ["--corrections", "cannot open"]),
        (["--corrections-per-minute", "-1"], ["--corrections-per-minute"]),
        (["--corrections-per-minute", "many"], ["--corrections-per-minute"]),
        (["--trusted-proxy", "nginx.local"], ["--trusted-proxy", "nginx.local"]),
    ],
)
def test_bad_corrections_flags_are_usage_errors_before_the_model_loads(tmp_path, flags, words):
    model = tmp_path / "model.keras"
    model.write_bytes(b"not a model: the backend never gets to read it")
    result = run_cli("--model", model, *[flag.format(tmp=tmp_path) for flag in flags])
    assert_usage_error(result, *words)  # one line about the flag: had the model been loaded, it would be about that


def test_trusted_proxy_comes_from_the_environment_and_flags_replace_it():
    from cnn_mnist.serving import cli

    model = __file__  # exists; parse_args does not load it
    env = {"TRUSTED_PROXY": "10.0.0.1, 192.168.0.0/16"}
    with pytest.MonkeyPatch.context() as patch:
        for key, value in env.items():
            patch.setenv(key, value)
        from_env = cli.parse_args(["--model", model]).trusted_proxy
        from_flags = cli.parse_args(["--model", model, "--trusted-proxy", "::1"]).trusted_proxy
    assert list(map(str, from_env)) == ["10.0.0.1/32", "192.168.0.0/16"]
    assert list(map(str, from_flags)) == ["::1/128"]
    assert cli.parse_args(["--model", model]).corrections_per_minute == 30


# --- the route, on the real app ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def corrections(trained_model, tmp_path_factory):
    """(app, its store): corrections on a fresh SQLite store, no rate limit."""
    from cnn_mnist.serving.app import create_app

    store = open_store(str(tmp_path_factory.mktemp("corrections") / "c.sqlite"))
    app = create_app({"MODEL": str(trained_model), "CORRECTIONS": store, "CORRECTIONS_PER_MINUTE": 0})
    yield app, store
    store.close()


@pytest.fixture(scope="module")
def corrections_client(corrections):
    return corrections[0].test_client()


def seen_by_the_model(client, image: np.ndarray) -> dict:
    answer = client.post("/predict", json={"pixels": image.tolist(), "include_input": True})
    assert answer.status_code == 200, answer.json
    return answer.json


def test_a_correction_is_stored_pending_and_a_repeat_adds_nothing(corrections, corrections_client, test_set):
    app, store = corrections
    images, labels = test_set
    image, label = images[3], int(labels[3])
    seen = seen_by_the_model(corrections_client, image)
    before = store.counts()
    body = {"input": seen["input"], "label": label, "predicted": seen["digit"], "model_version": "1"}
    first = corrections_client.post(ROUTE, json=body)
    assert first.status_code == 201 and first.json == {"id": first.json["id"], "status": "pending"}, first.json
    again = corrections_client.post(ROUTE, json=body)
    assert again.status_code == 200 and again.json == first.json
    # the same image as pixels (as the model saw it) is the same correction
    as_pixels = corrections_client.post(ROUTE, json={"pixels": image.tolist(), "label": label})
    assert as_pixels.status_code == 200 and as_pixels.json["id"] == first.json["id"]
    stored = store.get(first.json["id"])
    np.testing.assert_array_equal(stored.image, image)  # the model's input, byte for byte
    assert (stored.label, stored.predicted, stored.model_version, stored.status) == (
        label,
        seen["digit"],
        "1",
        "pending",
    )
    assert store.counts()["pending"] == before["pending"] + 1
    text = corrections_client.get("/metrics").text
    assert metric(text, "cnn_mnist_corrections_received_total", label=str(label), result="created") >= 1
    assert metric(text, "cnn_mnist_corrections_received_total", label=str(label), result="repeat") >= 2
    assert metric(text, "cnn_mnist_corrections_stored", status="pending") == store.counts()["pending"]


def test_pixels_in_any_of_the_image_shapes_and_scales_are_kept_as_the_model_saw_them(corrections, corrections_client):
    _, store = corrections
    image = np.zeros((28, 28), np.uint8)
    image[4:24, 12:16] = 200
    image[4, 12] = 255
    for i, pixels in enumerate([image.reshape(784), image.reshape(28, 28, 1), image / 255]):
        answer = corrections_client.post(ROUTE, json={"pixels": pixels.tolist(), "label": i})
        assert answer.status_code == 201, answer.json
        np.testing.assert_array_equal(store.get(answer.json["id"]).image, image)


DIGIT = np.zeros((28, 28), np.uint8)
DIGIT[6:22, 12:16] = 255
GOOD = DIGIT.tolist()


def body_with(**fields):
    return json.dumps({"pixels": GOOD, "label": 1, **fields}).encode()


def without(key):
    body = {"pixels": GOOD, "label": 1}
    del body[key]
    return json.dumps(body).encode()


def truncated_png():
    url = png_url(DIGIT)
    data = base64.b64decode(url.split(",", 1)[1])
    return "data:image/png;base64," + base64.b64encode(data[: len(data) // 2]).decode()


def jpeg_as_png():
    buffer = io.BytesIO()
    Image.fromarray(DIGIT).save(buffer, "JPEG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()


BAD = {
    "label 10": body_with(label=10),
    "label -1": body_with(label=-1),
    "label 7.0": body_with(label=7.0),
    'label "7"': body_with(label="7"),
    "label true": body_with(label=True),
    "label null": body_with(label=None),
    "no label": without("label"),
    "predicted 10": body_with(predicted=10),
    "predicted 1.5": body_with(predicted=1.5),
    "predicted null": body_with(predicted=None),
    "model_version a number": body_with(model_version=3),
    "model_version empty": body_with(model_version=""),
    "model_version too long": body_with(model_version="v" * 65),
    "model_version with a space": body_with(model_version="1 2"),
    "model_version null": body_with(model_version=None),
    "pixels 27x28": body_with(pixels=GOOD[:27]),
    "pixels 785": body_with(pixels=sum(GOOD, []) + [0]),
    "pixels ragged": body_with(pixels=GOOD[:27] + [GOOD[0][:27]]),
    "pixels a batch of one": body_with(pixels=[GOOD]),
    "pixels a batch of two": body_with(pixels=[GOOD, GOOD]),
    "pixels 256": body_with(pixels=[[256] * 28] + GOOD[1:]),
    "pixels -1": body_with(pixels=[[-1] * 28] + GOOD[1:]),
    "pixels strings": body_with(pixels=[["0"] * 28] + GOOD[1:]),
    "pixels booleans": body_with(pixels=[[True] * 28] + GOOD[1:]),
    "pixels null": body_with(pixels=[[None] * 28] + GOOD[1:]),
    "pixels NaN": b'{"label": 1, "pixels": [' + b", ".join([b"[NaN" + b", 0" * 27 + b"]"] * 28) + b"]}",
    "pixels blank": body_with(pixels=[[0] * 28] * 28),
    "pixels and input": body_with(input=png_url(DIGIT)),
    "neither pixels nor input": json.dumps({"label": 1}).encode(),
    "input not a data URL": json.dumps({"input": "iVBORw0KGgo=", "label": 1}).encode(),
    "input bad base64": json.dumps({"input": "data:image/png;base64,@@@", "label": 1}).encode(),
    "input not an image": json.dumps({"input": "data:image/png;base64,aGVsbG8=", "label": 1}).encode(),
    "input 29x28": json.dumps({"input": png_url(np.zeros((28, 29), np.uint8) + 9), "label": 1}).encode(),
    "input RGB": json.dumps({"input": png_url(DIGIT, "RGB"), "label": 1}).encode(),
    "input a JPEG": json.dumps({"input": jpeg_as_png(), "label": 1}).encode(),
    "input truncated": json.dumps({"input": truncated_png(), "label": 1}).encode(),
    "input a number": json.dumps({"input": 7, "label": 1}).encode(),
    "broken JSON": b'{"pixels": [[0, 0], "label": 1',
    "a JSON list": b"[1, 2, 3]",
    "an empty body": b"",
    "nested too deeply": b"[" * 100_000 + b"]" * 100_000,
}


@pytest.mark.parametrize("name", BAD)
def test_every_bad_input_is_a_json_4xx_and_stores_nothing(corrections, corrections_client, name):
    _, store = corrections
    before = store.counts()
    rejected = metric(corrections_client.get("/metrics").text, "cnn_mnist_corrections_rejected_total", reason="invalid")
    answer = corrections_client.post(ROUTE, data=BAD[name], content_type="application/json")
    assert 400 <= answer.status_code < 500, (answer.status_code, answer.data[:200])
    assert isinstance(answer.json["error"], str) and answer.json["error"], answer.json
    assert store.counts() == before
    after = metric(corrections_client.get("/metrics").text, "cnn_mnist_corrections_rejected_total", reason="invalid")
    assert after == (rejected or 0) + 1


def test_an_oversized_body_is_a_413_and_stores_nothing(trained_model, tmp_path):
    from cnn_mnist.serving.app import create_app

    with open_store(str(tmp_path / "c.sqlite")) as store:
        app = create_app({"MODEL": str(trained_model), "CORRECTIONS": store, "MAX_BODY_BYTES": 10_000})
        answer = app.test_client().post(
            ROUTE, data=body_with(model_version="v" * 20_000), content_type="application/json"
        )
        assert answer.status_code == 413 and "limit" in answer.json["error"]
        assert store.list() == []


def test_without_corrections_the_route_is_a_404_and_readyz_says_off(client):
    answer = client.post(ROUTE, json={"pixels": GOOD, "label": 1})
    assert answer.status_code == 404 and "--corrections" in answer.json["error"]
    assert client.get("/readyz").json["corrections"] is False
    assert metric(client.get("/metrics").text, "cnn_mnist_corrections_store_up") is None


def test_readyz_says_corrections_are_on(corrections_client):
    assert corrections_client.get("/readyz").json["corrections"] is True


@pytest.fixture
def limited(trained_model, tmp_path):
    """A client factory for an app allowing 3 corrections a minute, behind a trusted proxy at 127.0.0.1."""
    from cnn_mnist.serving.app import create_app

    store = open_store(str(tmp_path / "c.sqlite"))
    config = {"CORRECTIONS_PER_MINUTE": 3, "TRUSTED_PROXIES": [trusted_network("127.0.0.1")]}
    app = create_app({"MODEL": str(trained_model), "CORRECTIONS": store, **config})
    client = app.test_client()

    def send(label, peer, forwarded=None):
        headers = {"X-Forwarded-For": forwarded} if forwarded else {}
        body = {"pixels": GOOD, "label": label}
        return client.post(ROUTE, json=body, headers=headers, environ_base={"REMOTE_ADDR": peer})

    yield send, store, client
    store.close()


def test_over_the_rate_a_client_gets_429_with_retry_after_and_nothing_is_stored(limited):
    send, store, client = limited
    assert [send(label, "192.0.2.1").status_code for label in (1, 2, 3)] == [201, 201, 201]
    refused = send(4, "192.0.2.1")
    assert refused.status_code == 429 and "3 corrections a minute" in refused.json["error"]
    assert 1 <= int(refused.headers["Retry-After"]) <= 20  # one token every 60 / 3 s
    assert send(10, "192.0.2.1").status_code == 429, "a request over the rate is refused before it is read"
    assert sorted(c.label for c in store.list()) == [1, 2, 3]
    assert send(4, "192.0.2.2").status_code == 201, "another client is not limited by the first"
    assert metric(client.get("/metrics").text, "cnn_mnist_corrections_rejected_total", reason="rate") == 2


def test_x_forwarded_for_counts_only_from_a_trusted_proxy(limited):
    send, _, _ = limited

    def statuses(answers):
        return ["kept" if answer.status_code in (200, 201) else answer.status_code for answer in answers]

    # through the trusted proxy: each forwarded client has its own bucket
    for client in ("198.51.100.1", "198.51.100.2"):
        assert statuses(send(label, "127.0.0.1", client) for label in (1, 2, 3, 4)) == ["kept"] * 3 + [429]
    # from an untrusted peer, a different X-Forwarded-For on every request changes nothing
    answers = [send(label, "192.0.2.9", f"198.51.100.{10 + label}") for label in (5, 6, 7, 8)]
    assert statuses(answers) == ["kept"] * 3 + [429]
    # a client cannot escape its bucket by prefixing addresses of its own
    assert send(0, "127.0.0.1", "203.0.113.1, 198.51.100.1").status_code == 429


def test_a_store_that_fails_under_the_server_is_a_503_with_retry_after(trained_model, tmp_path):
    from cnn_mnist.serving.app import create_app

    store = open_store(str(tmp_path / "c.sqlite"))
    app = create_app({"MODEL": str(trained_model), "CORRECTIONS": store})
    client = app.test_client()
    assert client.post(ROUTE, json={"pixels": GOOD, "label": 1}).status_code == 201
    store.close()  # as a database gone away: every query raises StoreError
    answer = client.post(ROUTE, json={"pixels": GOOD, "label": 2})
    assert answer.status_code == 503 and answer.headers["Retry-After"] == "5" and "unavailable" in answer.json["error"]
    assert metric(client.get("/metrics").text, "cnn_mnist_corrections_store_up") == 0
