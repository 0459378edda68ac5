"""The corrections store against real SQLite and a real PostgreSQL server (tests/postgres.py).

Every test that applies to both runs on both; the PostgreSQL ones are slow (they start a server), so the
Nix check phase, which has none, runs the SQLite half.
"""

import datetime
import json
import os
import signal
import sqlite3
import subprocess
import sys
import threading

import numpy as np
import pytest
from conftest import ROOT
from postgres import store_url

from cnn_mnist.core.errors import UsageError
from cnn_mnist.corrections import schema
from cnn_mnist.corrections.store import open_store

PROCESS_TIMEOUT_S = 120


@pytest.fixture
def url(backend, request, tmp_path):
    return store_url(backend, request, tmp_path)


@pytest.fixture
def store(url):
    with open_store(url) as opened:
        yield opened


def images(count, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (count, 28, 28), dtype=np.uint8)


def schema_versions(url):
    query = "SELECT version FROM schema_version ORDER BY version"
    if url.startswith("postgresql://"):
        import psycopg

        with psycopg.connect(url) as connection:
            return [row[0] for row in connection.execute(query)]
    with sqlite3.connect(url) as connection:
        return [row[0] for row in connection.execute(query)]


def child(code, *args):
    """A Python process running `code` with the store's modules importable; its stdin and stdout are pipes."""
    return subprocess.Popen(
        [sys.executable, "-c", code, *map(str, args)],
        cwd=ROOT,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_a_new_correction_is_pending_and_a_repeat_returns_its_id(store):
    image = images(1)[0]
    first, created = store.add(image, 3, predicted=5, model_version="v1")
    assert created
    again, created_again = store.add(image.copy(), 3, predicted=8, model_version="v2")
    assert (again, created_again) == (first, False)
    (kept,) = store.list()
    assert (kept.id, kept.label, kept.predicted, kept.model_version, kept.status) == (first, 3, 5, "v1", "pending")
    assert np.array_equal(kept.image, image) and kept.image.dtype == np.uint8
    created_at = datetime.datetime.fromisoformat(kept.created.replace("Z", "+00:00"))
    assert created_at.utcoffset() == datetime.timedelta(0)
    assert abs(datetime.datetime.now(datetime.timezone.utc) - created_at) < datetime.timedelta(minutes=5)


def test_the_same_image_with_another_label_is_another_correction(store):
    image = images(1)[0]
    three, _ = store.add(image, 3)
    eight, created = store.add(image, 8)
    assert created and eight != three
    assert store.counts()["by_label"] == {str(d): int(d in (3, 8)) for d in range(10)}


@pytest.mark.parametrize(
    "image, label, predicted, model_version",
    [
        (np.zeros((28, 27), np.uint8), 1, None, None),
        (np.zeros((28, 28), np.float32), 1, None, None),
        (np.zeros((28, 28), np.uint8).tolist(), 1, None, None),
        (np.zeros((28, 28), np.uint8), 10, None, None),
        (np.zeros((28, 28), np.uint8), -1, None, None),
        (np.zeros((28, 28), np.uint8), True, None, None),
        (np.zeros((28, 28), np.uint8), 1.0, None, None),
        (np.zeros((28, 28), np.uint8), 1, 10, None),
        (np.zeros((28, 28), np.uint8), 1, None, "v" * 257),
        (np.zeros((28, 28), np.uint8), 1, None, 7),
    ],
)
def test_bad_input_is_refused_and_stores_nothing(store, image, label, predicted, model_version):
    with pytest.raises(ValueError):
        store.add(image, label, predicted, model_version)
    assert store.list() == []


def test_statuses_and_counts(store):
    ids = [store.add(image, label)[0] for label, image in enumerate(images(6))]
    assert store.set_status(ids[:3], "accepted") == 3
    assert store.set_status(ids[:3], "accepted") == 0  # already accepted
    assert store.set_status([ids[2], ids[3]], "rejected") == 2
    counts = store.counts()
    assert counts == {
        "pending": 2,
        "accepted": 2,
        "rejected": 2,
        "by_label": {str(d): int(d < 6) for d in range(10)},
    }
    assert [c.id for c in store.list("accepted")] == ids[:2]
    assert [c.id for c in store.list("rejected")] == ids[2:4]
    assert [c.id for c in store.list("pending")] == ids[4:]
    assert [c.id for c in store.list()] == ids
    assert store.get(ids[4]).status == "pending"


def test_unknown_ids_change_nothing(store):
    known, _ = store.add(images(1)[0], 1)
    for unknown in ("999999", "abc", "-1", "", "1.0"):
        with pytest.raises(KeyError):
            store.set_status([known, unknown], "accepted")
        with pytest.raises(KeyError):
            store.get(unknown)
    assert store.get(known).status == "pending"
    with pytest.raises(ValueError):
        store.set_status([known], "approved")
    with pytest.raises(ValueError):
        store.list("approved")


def test_accepted_order_depends_on_the_corrections_not_on_their_arrival(backend, request, url, tmp_path):
    pairs = [(image, label % 10) for label, image in enumerate(images(30))]
    other_url = store_url(backend, request, tmp_path, name="other")
    orders = []
    for where, arrival in ((url, pairs), (other_url, pairs[::-1])):
        with open_store(where) as store:
            ids = [store.add(image, label)[0] for image, label in arrival]
            store.set_status(ids, "accepted")
            orders.append([(c.image.tobytes(), c.label) for c in store.accepted()])
    assert orders[0] == orders[1]
    assert sorted(orders[0]) == sorted((image.tobytes(), label) for image, label in pairs)


def test_eight_threads_writing_the_same_200_at_once_lose_none_and_duplicate_none(store):
    corrections = [(image, index % 10) for index, image in enumerate(images(200))]
    start = threading.Barrier(8)
    results = [None] * 8
    errors = []

    def write(worker):
        try:
            order = np.random.default_rng(worker).permutation(len(corrections))
            start.wait()
            results[worker] = {int(i): store.add(*corrections[i]) for i in order}
        except BaseException as error:  # reported below, with the worker that raised it
            errors.append((worker, error))

    threads = [threading.Thread(target=write, args=(worker,)) for worker in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    for index in range(200):
        answers = [result[index] for result in results]
        assert len({id for id, _ in answers}) == 1, answers  # every thread got the same id
        assert sum(created for _, created in answers) == 1, answers  # and exactly one created it
    stored = store.list()
    assert len(stored) == 200
    assert sorted(c.id for c in stored) == sorted(results[0][i][0] for i in range(200))
    by_id = {c.id: c for c in stored}
    for index, (image, label) in enumerate(corrections):
        kept = by_id[results[0][index][0]]
        assert np.array_equal(kept.image, image) and kept.label == label


WRITER = """
import json, sys
import numpy as np
from cnn_mnist.corrections.store import open_store
url, seed = sys.argv[1], int(sys.argv[2])
store = open_store(url)
corrections = np.random.default_rng(0).integers(0, 256, (200, 28, 28), dtype=np.uint8)
order = np.random.default_rng(seed).permutation(200)
print("ready", flush=True)
sys.stdin.readline()
results = {int(i): store.add(corrections[i], int(i) % 10) for i in order}
print(json.dumps(results), flush=True)
store.close()
"""


def test_two_processes_writing_the_same_200_at_once_lose_none_and_duplicate_none(url):
    open_store(url).close()  # the schema exists, so this measures the writes (startup has its own test)
    writers = [child(WRITER, url, seed) for seed in (1, 2)]
    for writer in writers:
        assert writer.stdout.readline() == "ready\n", writer.stderr.read()
    for writer in writers:
        writer.stdin.write("go\n")
        writer.stdin.flush()
    results = []
    for writer in writers:
        out, err = writer.communicate(timeout=PROCESS_TIMEOUT_S)
        assert writer.returncode == 0, err
        results.append({int(k): tuple(v) for k, v in json.loads(out).items()})
    for index in range(200):
        (first_id, first_created), (second_id, second_created) = results[0][index], results[1][index]
        assert first_id == second_id and first_created != second_created
    with open_store(url) as store:
        stored = store.list()
    expected = images(200)
    assert len(stored) == 200
    by_id = {c.id: c for c in stored}
    for index in range(200):
        kept = by_id[results[0][index][0]]
        assert np.array_equal(kept.image, expected[index]) and kept.label == index % 10


OPENER = """
import sys
from cnn_mnist.corrections.store import open_store
print("ready", flush=True)
sys.stdin.readline()
open_store(sys.argv[1]).close()
"""


def test_processes_starting_at_once_migrate_the_schema_once(url):
    openers = [child(OPENER, url) for _ in range(4)]
    for opener in openers:
        assert opener.stdout.readline() == "ready\n", opener.stderr.read()
    for opener in openers:
        opener.stdin.write("go\n")
        opener.stdin.flush()
    for opener in openers:
        _, err = opener.communicate(timeout=PROCESS_TIMEOUT_S)
        assert opener.returncode == 0, err
    assert schema_versions(url) == [version for version, _ in schema.MIGRATIONS]


def test_an_empty_database_is_migrated_and_reopening_changes_nothing(url):
    with open_store(url) as store:
        id, _ = store.add(images(1)[0], 4)
    assert schema_versions(url) == [version for version, _ in schema.MIGRATIONS]
    with open_store(url) as store:
        assert [(c.id, c.label) for c in store.list()] == [(id, 4)]
    assert schema_versions(url) == [version for version, _ in schema.MIGRATIONS]


def test_a_store_from_a_newer_program_is_refused(url):
    open_store(url).close()
    newer = schema.LATEST + 1
    statement = f"INSERT INTO schema_version (version, applied) VALUES ({newer}, 'later')"
    if url.startswith("postgresql://"):
        import psycopg

        with psycopg.connect(url) as connection:
            connection.execute(statement)
    else:
        with sqlite3.connect(url) as connection:
            connection.execute(statement)
    with pytest.raises(UsageError, match=f"schema version {newer}, newer than this program's {schema.LATEST}"):
        open_store(url)


KEEPS_WRITING = """
import sys
import numpy as np
from cnn_mnist.corrections.store import open_store
store = open_store(sys.argv[1])
rng = np.random.default_rng(0)
while True:
    id, created = store.add(rng.integers(0, 256, (28, 28), dtype=np.uint8), 7)
    print(id, flush=True)
"""


def test_every_acknowledged_correction_survives_kill_9(url):
    writer = child(KEEPS_WRITING, url)
    acknowledged = [writer.stdout.readline().strip() for _ in range(100)]
    writer.send_signal(signal.SIGKILL)  # while it goes on writing
    writer.wait(timeout=PROCESS_TIMEOUT_S)
    assert writer.returncode == -signal.SIGKILL, writer.stderr.read()
    assert "" not in acknowledged, writer.stderr.read()
    with open_store(url) as store:
        kept = {c.id: c for c in store.list()}
    assert set(acknowledged) <= set(kept)
    expected = np.random.default_rng(0).integers(0, 256, (100, 28, 28), dtype=np.uint8)
    for id, image in zip(acknowledged, expected, strict=True):
        assert np.array_equal(kept[id].image, image) and kept[id].label == 7


def test_sqlite_store_is_in_wal_mode(tmp_path):
    path = tmp_path / "corrections.sqlite"
    with open_store(str(path)):
        with sqlite3.connect(path) as other:
            assert other.execute("PRAGMA journal_mode").fetchone() == ("wal",)


def test_sqlite_backup_is_a_store_with_the_same_corrections(tmp_path):
    with open_store(str(tmp_path / "live.sqlite")) as store:
        ids = [store.add(image, 2)[0] for image in images(5)]
        store.set_status(ids[:2], "accepted")
        store.backup(str(tmp_path / "copy.sqlite"))
        store.add(images(1, seed=9)[0], 3)  # after the backup: not in it
        expected = [(c.id, c.status, c.image.tobytes()) for c in store.list()][:5]
    assert sorted(os.listdir(tmp_path)) == ["copy.sqlite", "live.sqlite"]  # no partial file left
    with open_store(str(tmp_path / "copy.sqlite")) as copy:
        assert [(c.id, c.status, c.image.tobytes()) for c in copy.list()] == expected


@pytest.mark.slow
def test_postgresql_backup_names_pg_dump(postgres, tmp_path):
    with open_store(postgres.new_database()) as store, pytest.raises(UsageError, match="pg_dump"):
        store.backup(str(tmp_path / "copy"))


def test_bad_stores_are_one_line_usage_errors(tmp_path):
    not_a_database = tmp_path / "notes.txt"
    not_a_database.write_text("not a database\n" * 100)
    missing_socket = tmp_path / "no-server"
    for url, message in [
        ("", "no corrections store given"),
        ("mysql://localhost/db", "unknown corrections store mysql://"),
        (str(tmp_path / "missing" / "c.sqlite"), "unable to open database file"),
        (str(tmp_path), "unable to open database file"),
        (str(not_a_database), "file is not a database"),
        (f"postgresql:///db?host={missing_socket}", "cannot open the corrections store"),
        ("postgresql://user:secret@localhost/db?nonsense=1", "bad corrections store URL"),
    ]:
        with pytest.raises(UsageError, match=message) as raised:
            open_store(url)
        assert "\n" not in str(raised.value) and "secret" not in str(raised.value)


def test_a_sqlite_store_does_not_import_psycopg(tmp_path):
    code = "import sys; from cnn_mnist.corrections.store import open_store; open_store(sys.argv[1]).close()"
    code += "; print(sorted(m for m in sys.modules if m.startswith('psycopg')))"
    result = subprocess.run(
        [sys.executable, "-c", code, tmp_path / "c.sqlite"], cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert (result.returncode, result.stdout) == (0, "[]\n"), result.stderr
