"""The output directory: written atomically, and model.keras made byte-for-byte reproducible."""

import json
import os
import signal
import subprocess
import sys
import threading
import zipfile

import pytest
from conftest import DATASET, ROOT, TRAIN, tree

from cnn_mnist.training import artifact


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
        with artifact.atomic_directory(str(tmp_path / "new" / "deeper" / "out")) as staging:
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


def test_interrupted_between_the_two_renames_puts_the_old_output_back(existing, monkeypatch):
    before, renames, rename = tree(existing), [], os.rename

    def rename_then_interrupt(source, target):
        rename(source, target)
        renames.append(target)
        if len(renames) == 1:  # the old output is now `.out.xxxxxxxx.old`, the new one not yet in place
            raise KeyboardInterrupt

    monkeypatch.setattr(os, "rename", rename_then_interrupt)
    with pytest.raises(KeyboardInterrupt):
        with artifact.atomic_directory(str(existing)) as staging:
            open(os.path.join(staging, "model.keras"), "w").write("new")
    assert renames[0].endswith(".old")
    assert tree(existing) == before
    assert sorted(os.listdir(existing.parent)) == ["out"]


# ---- staging directories left by killed runs ----------------------------------------------------------------

HOLD_LOCK = """
import fcntl, os, sys, time
descriptor = os.open(sys.argv[1], os.O_RDONLY | os.O_DIRECTORY)
fcntl.flock(descriptor, fcntl.LOCK_EX)
print("locked", flush=True)
time.sleep(300)
"""


@pytest.fixture
def lock_holder():
    """Start a process that holds the lock of a directory as a live run does; kill it to make that run die."""
    processes = []

    def hold(path):
        process = subprocess.Popen([sys.executable, "-c", HOLD_LOCK, str(path)], stdout=subprocess.PIPE, text=True)
        processes.append(process)
        assert process.stdout.readline() == "locked\n"
        return process

    yield hold
    for process in processes:
        process.kill()
        process.wait()


def test_stale_staging_is_removed_and_live_staging_kept(tmp_path, lock_holder):
    output = tmp_path / "out"
    output.mkdir()
    (output / "model.keras").write_bytes(b"the model")
    for name in (".out.killed01", ".out.live0001", ".out.killed01.old", ".other.abcdefgh", ".out.probe.abcdefgh"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "model.keras").write_bytes(b"half a model")
    (tmp_path / ".out.afile001").write_text("a file, not ours")
    live = lock_holder(tmp_path / ".out.live0001")

    done = artifact.remove_stale_staging(str(output))
    assert sorted(done) == sorted(
        f"removed {tmp_path / name}, left by a run that was killed" for name in (".out.killed01", ".out.killed01.old")
    )
    kept = [".other.abcdefgh", ".out.afile001", ".out.live0001", ".out.probe.abcdefgh", "out"]
    assert sorted(os.listdir(tmp_path)) == kept
    assert tree(tmp_path / ".out.live0001") == {"model.keras": b"half a model"}

    live.kill()
    live.wait()  # the kernel drops its lock: whatever its PID becomes, the directory is now a leftover
    removed = f"removed {tmp_path / '.out.live0001'}, left by a run that was killed"
    assert artifact.remove_stale_staging(str(output)) == [removed]
    assert tree(output) == {"model.keras": b"the model"}


def test_an_old_output_left_between_the_two_renames_is_put_back(tmp_path):
    """A run killed after moving the old output aside and before moving the new one in."""
    (tmp_path / ".out.killed01.old").mkdir()
    (tmp_path / ".out.killed01.old" / "model.keras").write_bytes(b"the old model")
    (tmp_path / ".out.killed01").mkdir()
    (tmp_path / ".out.killed01" / "model.keras").write_bytes(b"the new model, never put in place")
    lines = []
    with pytest.raises(RuntimeError):
        with artifact.atomic_directory(str(tmp_path / "out"), log=lines.append):
            raise RuntimeError("this run fails too")
    assert lines == [
        f"restored {tmp_path / 'out'} from .out.killed01.old, left by a run killed while replacing it",
        f"removed {tmp_path / '.out.killed01'}, left by a run that was killed",
    ]
    assert tree(tmp_path) == {"out": None, "out/model.keras": b"the old model"}


# ---- interrupting and killing a real training ----------------------------------------------------------------


def start_training(output, epochs=100):
    """A real training that outlasts the test; returned once its first epoch is done."""
    # Python turns SIGINT into KeyboardInterrupt only if SIGINT is not ignored when it starts (it is in `cmd &`).
    args = [*TRAIN, "--dataset", DATASET, "--epochs", epochs, "--train-samples", 1024, "--test-samples", 256]
    process = subprocess.Popen(
        [*map(str, args), "--output", str(output)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=ROOT,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    watchdog = threading.Timer(300, process.kill)
    watchdog.start()
    line = process.stdout.readline()
    while line and not line.startswith("epoch "):
        line = process.stdout.readline()
    watchdog.cancel()
    assert line.startswith(f"epoch 1/{epochs}: "), process.communicate()
    return process


def staging_siblings(output):
    return sorted(name for name in os.listdir(output.parent) if name.startswith(f".{output.name}."))


@pytest.mark.slow
@pytest.mark.parametrize("signum, status", [(signal.SIGINT, 130), (signal.SIGTERM, 143)], ids=["SIGINT", "SIGTERM"])
def test_interrupt_leaves_existing_output_untouched(tmp_path, signum, status):
    work = tmp_path / "work"
    output = work / "out"
    output.mkdir(parents=True)
    (output / "model.keras").write_bytes(b"the model from last week")
    (output / "accuracy.txt").write_text("0.9912\n")
    before = tree(work)

    process = start_training(output)
    try:
        assert len(staging_siblings(output)) == 1
        process.send_signal(signum)
        rest, message = process.communicate(timeout=120)
    finally:
        process.kill()
    assert process.returncode == status, message
    assert message == f"cnn-mnist-train: interrupted by {signum.name}; {output} left as it was\n"
    assert "epoch 100/100" not in rest
    assert tree(work) == before  # old output byte for byte, and no `.out.*` staging sibling


@pytest.mark.slow
def test_a_live_runs_staging_is_kept_and_a_killed_runs_removed_by_the_next_run(tmp_path):
    output = tmp_path / "out"
    output.mkdir()
    (output / "model.keras").write_bytes(b"the model from last week")

    process = start_training(output)
    try:
        [staging] = staging_siblings(output)
        assert artifact.remove_stale_staging(str(output)) == []  # what the next run does first: the live one is kept
        assert staging_siblings(output) == [staging]
        process.kill()
        process.communicate(timeout=60)
    finally:
        process.kill()
    assert staging_siblings(output) == [staging]  # SIGKILL cannot clean up; the next run must

    result = subprocess.run(
        [
            *map(str, [*TRAIN, "--dataset", DATASET, "--epochs", 1, "--train-samples", 256, "--test-samples", 64]),
            "--output",
            str(output),
        ],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    assert f"removed {tmp_path / staging}, left by a run that was killed\n" in result.stdout
    assert sorted(os.listdir(tmp_path)) == ["out"]
    assert (output / "model.keras").read_bytes() != b"the model from last week"


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
