"""`cnn-mnist-corrections`: review and export, on SQLite and a real PostgreSQL server (slow, tests/postgres.py).

The export must be byte-identical for the same accepted corrections, whenever and in whatever order they
came, because a Nix build pins it by hash; usage errors are one line on stderr with exit status 2.
"""

import datetime
import hashlib
import json
import os
import subprocess
import sys
import time

import numpy as np
import pytest
from conftest import ROOT
from PIL import Image
from postgres import store_url

from cnn_mnist.corrections.cli import main
from cnn_mnist.corrections.store import open_store

LISTED = {"id", "label", "predicted", "model_version", "status", "created"}
ZIP_CLOCK_DEADLINE_S = 5  # zip times go in 2 s steps


@pytest.fixture
def url(backend, request, tmp_path):
    url = store_url(backend, request, tmp_path)
    open_store(url).close()
    return url


def images(count, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (count, 28, 28), dtype=np.uint8)


def fill(url, count=12, seed=0, accept=()):
    """`count` corrections labelled index % 10; the ids, and those at `accept` (indices) accepted."""
    with open_store(url) as store:
        ids = [
            store.add(image, index % 10, predicted=(index + 1) % 10)[0]
            for index, image in enumerate(images(count, seed))
        ]
        if accept:
            store.set_status([ids[i] for i in accept], "accepted")
    return ids


def cli(capsys, url, *args):
    """(exit status, stdout, stderr) of `cnn-mnist-corrections --store URL ARGS...`, run in this process."""
    try:
        main(["--store", url, *map(str, args)] if url is not None else list(map(str, args)))
        status = 0
    except SystemExit as exit:
        status = exit.code
    out, err = capsys.readouterr()
    return status, out, err


def assert_usage_error(result, *words):
    status, out, err = result
    assert (status, out) == (2, ""), result
    assert err.count("\n") == 1 and err.startswith("cnn-mnist-corrections"), err
    for word in words:
        assert word in err, err


def load(path):
    with np.load(path) as data:
        return {name: data[name] for name in data.files}


def test_stats_prints_one_json_line(capsys, url):
    ids = fill(url, accept=(0, 1, 2))
    assert cli(capsys, url, "reject", ids[3])[0] == 0
    status, out, _ = cli(capsys, url, "stats")
    assert status == 0 and out.count("\n") == 1
    assert json.loads(out) == {
        "pending": 8,
        "accepted": 3,
        "rejected": 1,
        "by_label": {str(d): 2 if d < 2 else 1 for d in range(10)},
    }


def test_list_prints_one_json_line_each_without_pixels(capsys, url):
    ids = fill(url, accept=(1,))
    status, out, _ = cli(capsys, url, "list")
    listed = [json.loads(line) for line in out.splitlines()]
    assert status == 0 and [c["id"] for c in listed] == ids
    assert all(set(c) == LISTED for c in listed)
    assert [(c["label"], c["predicted"], c["status"]) for c in listed[:3]] == [
        (0, 1, "pending"),
        (1, 2, "accepted"),
        (2, 3, "pending"),
    ]
    _, accepted, _ = cli(capsys, url, "list", "--status", "accepted")
    assert [json.loads(line)["id"] for line in accepted.splitlines()] == [ids[1]]


def test_accept_reject_and_accept_all(capsys, url):
    ids = fill(url)
    assert cli(capsys, url, "accept", ids[0], ids[1]) == (0, '{"status": "accepted", "changed": 2}\n', "")
    assert cli(capsys, url, "reject", ids[1], ids[2]) == (0, '{"status": "rejected", "changed": 2}\n', "")
    assert cli(capsys, url, "accept", "--all") == (0, '{"status": "accepted", "changed": 9}\n', "")
    with open_store(url) as store:
        assert [c.id for c in store.list("rejected")] == ids[1:3]  # --all takes the pending ones only
        assert [c.id for c in store.list("accepted")] == [ids[0], *ids[3:]]


def test_show_writes_the_image_as_a_png(capsys, url, tmp_path, monkeypatch):
    ids = fill(url, count=3)
    monkeypatch.chdir(tmp_path)
    assert cli(capsys, url, "show", ids[1]) == (0, f"{ids[1]}.png\n", "")
    chosen = tmp_path / "chosen.png"
    assert cli(capsys, url, "show", ids[2], "--output", chosen) == (0, f"{chosen}\n", "")
    for path, image in ((tmp_path / f"{ids[1]}.png", images(3)[1]), (chosen, images(3)[2])):
        with Image.open(path) as png:
            assert png.format == "PNG" and png.mode == "L"
            assert np.array_equal(np.asarray(png), image)


def test_export_writes_keras_mnist_layout_and_the_line_to_paste(capsys, url, tmp_path):
    fill(url, accept=(0, 2, 4, 6, 8))
    output = tmp_path / "corrections-2026-12-01.npz"
    status, out, err = cli(capsys, url, "export", "--output", output)
    assert status == 0, err
    digest, paste = out.splitlines()
    assert digest == f"{hashlib.sha256(output.read_bytes()).hexdigest()}  {output}"
    assert paste == "model.override { extraData = [ ./corrections-2026-12-01.npz ]; }"
    data = load(output)
    assert set(data) == {"x_train", "y_train"}
    assert (data["x_train"].dtype, data["x_train"].shape) == (np.uint8, (5, 28, 28))
    assert (data["y_train"].dtype, data["y_train"].shape) == (np.uint8, (5,))
    expected = {(images(12)[i].tobytes(), i % 10) for i in (0, 2, 4, 6, 8)}
    assert {(x.tobytes(), int(y)) for x, y in zip(data["x_train"], data["y_train"], strict=True)} == expected


def test_export_is_named_for_today_by_default(capsys, url, tmp_path, monkeypatch):
    fill(url, count=2, accept=(0, 1))
    (tmp_path / "here").mkdir()
    monkeypatch.chdir(tmp_path / "here")
    before = datetime.datetime.now(datetime.timezone.utc).date()
    status, out, _ = cli(capsys, url, "export")
    after = datetime.datetime.now(datetime.timezone.utc).date()
    names = {f"corrections-{day:%Y-%m-%d}.npz" for day in (before, after)}
    written = os.listdir(tmp_path / "here")
    assert status == 0 and len(written) == 1 and written[0] in names
    assert out.splitlines()[1] == f"model.override {{ extraData = [ ./{written[0]} ]; }}"


def zip_clock():
    """The local time as a zip entry would hold it (2 s steps)."""
    now = time.localtime()
    return (*now[:5], now.tm_sec // 2)


def wait_for_the_zip_clock_to_move(start):
    deadline = time.monotonic() + ZIP_CLOCK_DEADLINE_S
    while zip_clock() == start:
        assert time.monotonic() < deadline, "the clock did not move"
        time.sleep(0.05)


def test_export_is_byte_identical_at_another_time(capsys, url, tmp_path):
    fill(url, accept=range(12))
    first, second = tmp_path / "first.npz", tmp_path / "second.npz"
    start = zip_clock()
    assert cli(capsys, url, "export", "--output", first, "--holdout", "0.25")[0] == 0
    wait_for_the_zip_clock_to_move(start)
    assert cli(capsys, url, "export", "--output", second, "--holdout", "0.25")[0] == 0
    assert first.read_bytes() == second.read_bytes()


def test_export_is_the_same_for_the_same_corrections_however_they_came(capsys, backend, request, url, tmp_path):
    other = store_url(backend, request, tmp_path, name="other")
    fill(url, accept=(1, 3, 5, 7))
    with open_store(other) as store:
        ids = {i: store.add(images(12)[i], i % 10)[0] for i in (7, 5, 3, 1, 0, 2)}  # another order, fewer pending
        store.set_status([ids[i] for i in (7, 5, 3, 1)], "accepted")
        store.set_status([ids[0]], "rejected")
    digests = []
    for where, name in ((url, "one.npz"), (other, "two.npz")):
        status, out, err = cli(capsys, where, "export", "--output", tmp_path / name, "--holdout", "0.5")
        assert status == 0, err
        digests.append(out.split()[0])
    assert digests[0] == digests[1]


def holdout_score(image):
    """Independently of the exporter: the first 8 bytes of the image's sha256 as a fraction of 2**64."""
    return int.from_bytes(hashlib.sha256(image.tobytes()).digest()[:8], "big") / 2**64


def test_holdout_takes_the_images_whose_hash_falls_under_the_fraction(capsys, url, tmp_path):
    fill(url, count=60, accept=range(60))
    assert cli(capsys, url, "export", "--output", tmp_path / "split.npz", "--holdout", "0.3")[0] == 0
    data = load(tmp_path / "split.npz")
    assert set(data) == {"x_train", "y_train", "x_test", "y_test"}
    assert data["x_test"].dtype == np.uint8 and data["y_test"].dtype == np.uint8
    everything = images(60)
    held = {everything[i].tobytes() for i in range(60) if holdout_score(everything[i]) < 0.3}
    assert 0 < len(held) < 60
    assert {x.tobytes() for x in data["x_test"]} == held
    assert {x.tobytes() for x in data["x_train"]} == {x.tobytes() for x in everything} - held
    assert len(data["y_test"]) == len(held) and len(data["y_train"]) == 60 - len(held)

    with open_store(url) as store:  # more corrections move none of the first ones across the split
        store.set_status([store.add(image, 1)[0] for image in images(20, seed=5)], "accepted")
    assert cli(capsys, url, "export", "--output", tmp_path / "more.npz", "--holdout", "0.3")[0] == 0
    assert held <= {x.tobytes() for x in load(tmp_path / "more.npz")["x_test"]}


def test_backup_of_a_sqlite_store_is_a_store(capsys, tmp_path):
    url = str(tmp_path / "live.sqlite")
    fill(url, accept=(0,))
    status, out, err = cli(capsys, url, "backup", tmp_path / "copy.sqlite")
    assert (status, out) == (0, ""), err
    assert cli(capsys, str(tmp_path / "copy.sqlite"), "stats")[1] == cli(capsys, url, "stats")[1]


@pytest.mark.slow
def test_backup_of_a_postgresql_store_names_pg_dump(capsys, postgres, tmp_path):
    url = postgres.new_database()
    open_store(url).close()
    assert_usage_error(cli(capsys, url, "backup", tmp_path / "copy"), "pg_dump")


@pytest.mark.parametrize(
    "args, words",
    [
        (["accept", "999999"], ["no correction with id 999999"]),
        (["accept", "FIRST", "999999"], ["999999"]),
        (["reject", "abc"], ["no correction with id abc"]),
        (["show", "999999"], ["no correction with id 999999"]),
        (["list", "--status", "approved"], ["invalid choice: 'approved'"]),
        (["accept"], ["give IDs or --all"]),
        (["accept", "--all", "FIRST"], ["not both"]),
        (["reject"], ["required: ID"]),
        (["export", "--holdout", "1.5"], ["between 0 and 1"]),
        (["export", "--holdout", "-0.1"], ["between 0 and 1"]),
        (["export", "--holdout", "nan"], ["between 0 and 1"]),
        (["export", "--holdout", "half"], ["--holdout"]),
        (["export", "--holdout", "1"], ["holds out all"]),
        (["export", "--output", "MISSING/x.npz"], ["cannot write"]),
        (["show", "FIRST", "--output", "MISSING/x.png"], ["cannot write"]),
        (["frobnicate"], ["invalid choice"]),
        ([], ["required"]),
    ],
)
def test_usage_errors_are_one_line_with_exit_status_2_and_change_nothing(capsys, url, tmp_path, args, words):
    ids = fill(url, count=3, accept=(1,))
    args = [ids[0] if a == "FIRST" else a.replace("MISSING", str(tmp_path / "missing")) for a in args]
    before = cli(capsys, url, "list")
    assert_usage_error(cli(capsys, url, *args), *words)
    assert cli(capsys, url, "list") == before
    assert not (tmp_path / "missing").exists()


def test_nothing_accepted_to_export_is_an_error(capsys, url, tmp_path):
    ids = fill(url, count=3)
    cli(capsys, url, "reject", ids[0])
    assert_usage_error(cli(capsys, url, "export", "--output", tmp_path / "x.npz"), "no accepted corrections")
    assert not (tmp_path / "x.npz").exists()


def test_stores_that_are_not_there_are_usage_errors(capsys, tmp_path, monkeypatch):
    monkeypatch.delenv("CORRECTIONS", raising=False)
    assert_usage_error(cli(capsys, None, "stats"), "no store", "CORRECTIONS")
    missing = tmp_path / "typo.sqlite"
    assert_usage_error(cli(capsys, str(missing), "stats"), f"no such store: {missing}")
    assert not missing.exists()  # not created by the attempt
    notes = tmp_path / "notes.txt"
    notes.write_text("not a database\n" * 100)
    assert_usage_error(cli(capsys, str(notes), "stats"), "file is not a database")
    assert_usage_error(cli(capsys, str(tmp_path), "stats"), f"no such store: {tmp_path}")
    assert_usage_error(cli(capsys, f"postgresql:///db?host={tmp_path / 'no-server'}", "stats"), "cannot open")


def test_the_console_script_reads_the_store_from_the_environment(tmp_path):
    url = str(tmp_path / "corrections.sqlite")
    fill(url, count=4, accept=(0,))
    result = subprocess.run(
        [sys.executable, "-m", "cnn_mnist.corrections.cli", "stats"],
        cwd=ROOT,
        env={**os.environ, "CORRECTIONS": url},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["accepted"] == 1 and json.loads(result.stdout)["pending"] == 3
