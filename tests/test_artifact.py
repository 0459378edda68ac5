"""The output directory: written atomically, and model.keras made byte-for-byte reproducible."""

import json
import os
import signal
import subprocess
import threading
import zipfile

import pytest
from conftest import DATASET, ROOT, TRAIN, tree

from cnn_mnist import artifact


@pytest.fixture
def existing(tmp_path):
    out = tmp_path / "out"
    (out / "logs").mkdir(parents=True)
    (out / "model.keras").write_bytes(b"the old model")
    (out / "logs" / "events").write_text("old")
    return out


# ---- atomic_directory ---------------------------------------------------------------------------------------


def test_success_creates_the_directory(tmp_path):
    final = tmp_path / "deeper" / "out"
    with artifact.atomic_directory(str(final)) as staging:
        assert os.path.dirname(staging) == str(final.parent) and not final.exists()
        open(os.path.join(staging, "model.keras"), "w").write("new")
    assert tree(final) == {"model.keras": b"new"}
    assert oct(final.stat().st_mode & 0o777) == oct(0o755)
    assert sorted(os.listdir(final.parent)) == ["out"]


def test_success_replaces_an_existing_output(existing):
    with artifact.atomic_directory(str(existing)) as staging:
        open(os.path.join(staging, "accuracy.txt"), "w").write("0.99\n")
        assert tree(existing)["model.keras"] == b"the old model"  # the old output stays until the end
    assert tree(existing) == {"accuracy.txt": b"0.99\n"}  # nothing of the old output is left over
    assert sorted(os.listdir(existing.parent)) == ["out"]  # no staging or `.old` sibling


@pytest.mark.parametrize("error", [RuntimeError("training diverged"), KeyboardInterrupt()])
def test_failure_leaves_existing_output_untouched(existing, error):
    before = tree(existing)
    with pytest.raises(type(error)):
        with artifact.atomic_directory(str(existing)) as staging:
            open(os.path.join(staging, "model.keras"), "w").write("half a new model")
            raise error
    assert tree(existing) == before
    assert sorted(os.listdir(existing.parent)) == ["out"]


def test_failure_creates_nothing(tmp_path):
    with pytest.raises(OSError):
        with artifact.atomic_directory(str(tmp_path / "out")) as staging:
            os.mkdir(os.path.join(staging, "logs"))
            raise OSError("disk full")
    assert os.listdir(tmp_path) == []


def test_check_writable_parent(tmp_path):
    (tmp_path / "file").write_text("")
    artifact.check_writable_parent(str(tmp_path / "new" / "deeper" / "out"))  # parents made later: fine
    with pytest.raises(PermissionError, match="is not a directory"):
        artifact.check_writable_parent(str(tmp_path / "file" / "out"))
    with pytest.raises(PermissionError, match="it is a file"):
        artifact.check_writable_parent(str(tmp_path / "file"))
    assert sorted(os.listdir(tmp_path)) == ["file"]


@pytest.mark.slow
def test_ctrl_c_leaves_existing_output_untouched(tmp_path):
    work = tmp_path / "work"
    output = work / "out"
    output.mkdir(parents=True)
    (output / "model.keras").write_bytes(b"the model from last week")
    (output / "accuracy.txt").write_text("0.9912\n")
    before = tree(work)

    # Python turns SIGINT into KeyboardInterrupt only if SIGINT is not ignored when it starts (it is in `cmd &`).
    args = [*TRAIN, "--dataset", DATASET, "--epochs", 100, "--train-samples", 2048, "--test-samples", 256]
    with open(tmp_path / "stderr", "w+") as stderr:
        process = subprocess.Popen(
            [*map(str, args), "--output", str(output)],
            stdout=subprocess.PIPE,
            stderr=stderr,
            text=True,
            cwd=ROOT,
            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
        )
        watchdog = threading.Timer(300, process.kill)
        watchdog.start()
        try:
            first = process.stdout.readline()
            while first and not first.startswith("epoch "):
                first = process.stdout.readline()
            assert first.startswith("epoch 1/100: "), first
            process.send_signal(signal.SIGINT)
            rest, _ = process.communicate(timeout=120)
        finally:
            watchdog.cancel()
            process.kill()
        stderr.seek(0)
        message = stderr.read()
    assert process.returncode == 130, message
    assert f"interrupted; {output} left as it was" in message
    assert "epoch 100/100" not in rest
    assert tree(work) == before  # old output byte for byte, and no `.out.*` staging sibling


# ---- normalize_keras_zip ------------------------------------------------------------------------------------

CONFIG = {
    "class_name": "Sequential",
    "config": {
        "dtype": {"class_name": "DTypePolicy", "shared_object_id": 140234567891234},
        "layers": [
            {"class_name": "Conv2D", "config": {"dtype": {"shared_object_id": 140234567891234}}},
            {"class_name": "Dense", "config": {"dtype": {"shared_object_id": 139998877665544}}},
            {"class_name": "Dense", "config": {"dtype": {"shared_object_id": 140234567891234}}},
        ],
    },
}


def write_keras_like_zip(path, config=CONFIG):
    with zipfile.ZipFile(path, "w") as archive:
        for name, data in [
            ("model.weights.h5", b"\x89HDF weights"),
            ("metadata.json", json.dumps({"keras_version": "3.x", "date_saved": "2031-07-04@12:34:56"})),
            ("config.json", json.dumps(config)),
        ]:
            entry = zipfile.ZipInfo(name, date_time=(2031, 7, 4, 12, 34, 56))
            entry.compress_type = zipfile.ZIP_DEFLATED  # normalising must keep each entry's compression
            archive.writestr(entry, data)


def shared_object_ids(node):
    if isinstance(node, dict):
        return [v for k, v in node.items() if k == "shared_object_id"] + [
            i for k, v in node.items() if k != "shared_object_id" for i in shared_object_ids(v)
        ]
    if isinstance(node, list):
        return [i for v in node for i in shared_object_ids(v)]
    return []


def assert_normalized(path, date_time):
    with zipfile.ZipFile(path) as archive:
        infos = archive.infolist()
        names = [info.filename for info in infos]
        assert names == sorted(names) and "config.json" in names
        assert {info.date_time for info in infos} == {date_time}
        metadata = json.loads(archive.read("metadata.json"))
        assert metadata["date_saved"] == "{:04}-{:02}-{:02}@{:02}:{:02}:{:02}".format(*date_time)
        ids = shared_object_ids(json.loads(archive.read("config.json")))
    assert sorted(set(ids)) == list(range(1, len(set(ids)) + 1))  # 1..n, not Python id()s
    return ids


def test_normalize_pins_dates_order_and_ids(tmp_path, monkeypatch):
    monkeypatch.delenv("SOURCE_DATE_EPOCH", raising=False)
    path = tmp_path / "model.keras"
    write_keras_like_zip(path)
    artifact.normalize_keras_zip(str(path))
    ids = assert_normalized(path, (1980, 1, 1, 0, 0, 0))
    assert ids == [1, 1, 2, 1]  # the same object keeps one number; numbering follows appearance
    with zipfile.ZipFile(path) as archive:
        assert archive.read("model.weights.h5") == b"\x89HDF weights"
        assert all(info.compress_type == zipfile.ZIP_DEFLATED for info in archive.infolist())
    assert sorted(os.listdir(tmp_path)) == ["model.keras"]  # no .tmp left behind


def test_normalize_uses_source_date_epoch(tmp_path, monkeypatch):
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1700000000")  # 2023-11-14 22:13:20 UTC
    path = tmp_path / "model.keras"
    write_keras_like_zip(path)
    artifact.normalize_keras_zip(str(path))
    assert_normalized(path, (2023, 11, 14, 22, 13, 20))
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "0")  # before 1980: a zip cannot hold it, clamp
    artifact.normalize_keras_zip(str(path))
    assert_normalized(path, (1980, 1, 1, 0, 0, 0))


def test_normalize_is_independent_of_ids_and_save_time(tmp_path, monkeypatch):
    """Two saves of the same model differ in Python ids and save time, then normalise to the same bytes."""
    monkeypatch.delenv("SOURCE_DATE_EPOCH", raising=False)
    other = json.loads(json.dumps(CONFIG).replace("140234567891234", "4444").replace("139998877665544", "5555"))
    write_keras_like_zip(tmp_path / "a.keras")
    write_keras_like_zip(tmp_path / "b.keras", other)
    for name in ("a.keras", "b.keras"):
        artifact.normalize_keras_zip(str(tmp_path / name))
    assert (tmp_path / "a.keras").read_bytes() == (tmp_path / "b.keras").read_bytes()


@pytest.mark.slow
def test_trained_model_archive_is_normalized(trained_model):
    expected = artifact.build_time()[:6]  # 1980-01-01 unless SOURCE_DATE_EPOCH says otherwise
    ids = assert_normalized(trained_model / "model.keras", expected)
    assert ids, "a Keras 3 config shares its dtype policy objects"
    with zipfile.ZipFile(trained_model / "model.keras") as archive:
        assert {"config.json", "metadata.json", "model.weights.h5"} <= set(archive.namelist())
