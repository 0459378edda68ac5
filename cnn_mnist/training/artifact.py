"""Writing the trainer's output directory atomically and byte-for-byte reproducibly."""

import contextlib
import fcntl
import json
import os
import re
import shutil
import tempfile
import time
import zipfile

# Nix sets SOURCE_DATE_EPOCH (to 1980-01-01, the earliest date a zip can hold); we default to the same.
ZIP_EPOCH = 315532800
RETIRED_SUFFIX = ".old"  # the previous output, between the two renames of a swap


def build_time() -> time.struct_time:
    return time.gmtime(max(int(os.environ.get("SOURCE_DATE_EPOCH", ZIP_EPOCH)), ZIP_EPOCH))


@contextlib.contextmanager
def atomic_directory(final_path: str, log=print):
    """Yield a temporary sibling of `final_path` to fill; rename it into place only if the block succeeds.

    On any failure (Ctrl-C and SIGTERM included) the sibling is removed and an existing `final_path` is
    untouched. The sibling is flock()ed while in use, so a later run can tell a SIGKILLed run's
    leftovers (which it removes first) from a live run's (which it never touches): the kernel drops the
    lock when its process dies, whatever happens to its PID afterwards.
    """
    final_path = os.path.abspath(final_path)
    parent = os.path.dirname(final_path)
    created = _missing_directories(parent)
    os.makedirs(parent, exist_ok=True)
    for line in remove_stale_staging(final_path):
        log(line)
    staging, lock = _locked_staging_directory(final_path)
    retired = staging + RETIRED_SUFFIX
    try:
        yield staging
        os.chmod(staging, 0o755)  # mkdtemp makes it 0700
        if os.path.isdir(final_path):
            # Swap in two renames; a crash between them leaves the old output as `.old`, never half a new one
            # (and the next run puts it back). Locked until removed, so no other run takes it for a leftover.
            with _lock(final_path):
                os.rename(final_path, retired)
                os.rename(staging, final_path)
                shutil.rmtree(retired)
        else:
            os.rename(staging, final_path)
    except BaseException:
        if os.path.lexists(staging):  # not swapped in: undo everything
            if os.path.isdir(retired) and not os.path.lexists(final_path):
                os.rename(retired, final_path)
            shutil.rmtree(staging, ignore_errors=True)
            for directory in created:  # the parents this run made, if still empty
                with contextlib.suppress(OSError):
                    os.rmdir(directory)
        else:  # swapped in, interrupted while removing the old output
            shutil.rmtree(retired, ignore_errors=True)
        raise
    finally:
        os.close(lock)


def _missing_directories(path: str) -> list:
    """`path` and those of its ancestors that do not exist yet, deepest first."""
    missing = []
    while not os.path.lexists(path):
        missing.append(path)
        path = os.path.dirname(path)
    return missing


def _staging_pattern(final_path: str) -> re.Pattern:
    """The names `tempfile.mkdtemp` gives our staging siblings (8 random characters), and their `.old`."""
    name = re.escape(f".{os.path.basename(final_path)}.")
    return re.compile(rf"{name}[a-z0-9_]{{8}}(?:{re.escape(RETIRED_SUFFIX)})?")


def _locked_staging_directory(final_path: str):
    """mkdtemp + flock; if a concurrent cleanup removed it between the two, make another."""
    while True:
        staging = tempfile.mkdtemp(prefix=f".{os.path.basename(final_path)}.", dir=os.path.dirname(final_path))
        descriptor = os.open(staging, os.O_RDONLY | os.O_DIRECTORY)
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX)
        except OSError:
            pass  # a file system without flock (some NFS): unlocked, so a cleanup never removes it
        if _same_directory(descriptor, staging):
            return staging, descriptor
        os.close(descriptor)


@contextlib.contextmanager
def _lock(path: str):
    descriptor = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        with contextlib.suppress(OSError):
            fcntl.flock(descriptor, fcntl.LOCK_EX)
        yield
    finally:
        os.close(descriptor)


def _same_directory(descriptor: int, path: str) -> bool:
    try:
        return os.path.samestat(os.fstat(descriptor), os.lstat(path))
    except FileNotFoundError:
        return False


def remove_stale_staging(final_path: str) -> list:
    """Remove the staging siblings of `final_path` whose run is gone; returns one line per thing done.

    A sibling is stale when nobody holds its lock (a live run always does). A stale `.old` is a previous
    output whose run died between its two renames: it is put back when `final_path` is missing.
    """
    parent, pattern, done = os.path.dirname(final_path), _staging_pattern(final_path), []
    for name in sorted(os.listdir(parent), key=lambda name: not name.endswith(RETIRED_SUFFIX)):
        path = os.path.join(parent, name)
        if not pattern.fullmatch(name) or os.path.islink(path) or not os.path.isdir(path):
            continue
        try:
            descriptor = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
        except FileNotFoundError:
            continue  # its run finished meanwhile
        try:
            try:
                fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:  # BlockingIOError: a live run's; anything else: no flock here, so no way to tell
                continue
            if not _same_directory(descriptor, path):
                continue
            try:
                if name.endswith(RETIRED_SUFFIX) and not os.path.lexists(final_path):
                    os.rename(path, final_path)
                    done.append(f"restored {final_path} from {name}, left by a run killed while replacing it")
                else:
                    shutil.rmtree(path)
                    done.append(f"removed {path}, left by a run that was killed")
            except OSError as error:
                done.append(f"could not remove {path}, left by a run that was killed: {error}")
        finally:
            os.close(descriptor)
    return done


def check_writable_parent(path: str) -> None:
    """Fail before training (and before importing a backend), not after, when the output cannot be made.

    Permission bits are not enough (root passes them in /proc, a read-only mount passes them), so make
    and remove a directory where the first one would be made.
    """
    absolute = os.path.abspath(path)
    if os.path.lexists(absolute) and not os.path.isdir(absolute):
        raise PermissionError(f"cannot write the output directory {path}: it is a file")
    probe = os.path.dirname(absolute)
    while not os.path.lexists(probe):
        probe = os.path.dirname(probe)
    if not os.path.isdir(probe):
        raise PermissionError(f"cannot write the output directory {path}: {probe} is not a directory")
    try:
        os.rmdir(tempfile.mkdtemp(prefix=f".{os.path.basename(absolute)}.probe.", dir=probe))
    except OSError as error:
        reason = f"cannot create a directory in {probe} ({error.strerror or error})"
        raise PermissionError(f"cannot write the output directory {path}: {reason}") from None


def normalize_keras_zip(path: str) -> None:
    """Rewrite a `.keras` archive so that it depends only on its contents.

    Keras stamps the save time into metadata.json and each zip entry; we pin both to the build epoch
    and store the entries in a fixed order, which is what makes `nix-build --check` pass.
    """
    stamp = build_time()
    with zipfile.ZipFile(path) as source:
        entries = [(info, source.read(info.filename)) for info in source.infolist()]
    staging = path + ".tmp"
    with zipfile.ZipFile(staging, "w") as target:
        for info, data in sorted(entries, key=lambda entry: entry[0].filename):
            if info.filename == "metadata.json":
                metadata = json.loads(data)
                metadata["date_saved"] = time.strftime("%Y-%m-%d@%H:%M:%S", stamp)
                data = json.dumps(metadata, sort_keys=True).encode()
            elif info.filename == "config.json":
                data = json.dumps(_renumber_shared_objects(json.loads(data), {})).encode()
            entry = zipfile.ZipInfo(info.filename, date_time=stamp[:6])
            entry.compress_type = info.compress_type
            entry.external_attr = 0o644 << 16
            target.writestr(entry, data)
    os.replace(staging, path)


def _renumber_shared_objects(node, numbers: dict):
    """Replace the `shared_object_id`s (Python `id()`s, new every run) by 1, 2, … in order of appearance."""
    if isinstance(node, dict):
        return {
            key: numbers.setdefault(value, len(numbers) + 1)
            if key == "shared_object_id"
            else _renumber_shared_objects(value, numbers)
            for key, value in node.items()
        }
    if isinstance(node, list):
        return [_renumber_shared_objects(value, numbers) for value in node]
    return node


def write_json(path: str, value) -> None:
    with open(path, "w") as stream:
        json.dump(value, stream, indent=2, sort_keys=True)
        stream.write("\n")
