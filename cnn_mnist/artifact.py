"""Writing the trainer's output directory atomically and byte-for-byte reproducibly."""

import contextlib
import json
import os
import shutil
import tempfile
import time
import zipfile

# Nix sets SOURCE_DATE_EPOCH (to 1980-01-01, the earliest date a zip can hold); we default to the same.
ZIP_EPOCH = 315532800


def build_time() -> time.struct_time:
    return time.gmtime(max(int(os.environ.get("SOURCE_DATE_EPOCH", ZIP_EPOCH)), ZIP_EPOCH))


@contextlib.contextmanager
def atomic_directory(final_path: str):
    """Yield a temporary sibling of `final_path` to fill; rename it into place only if the block succeeds.

    On any failure (including Ctrl-C) the sibling is removed and an existing `final_path` is untouched.
    """
    final_path = os.path.abspath(final_path)
    parent = os.path.dirname(final_path)
    os.makedirs(parent, exist_ok=True)
    staging = tempfile.mkdtemp(prefix=f".{os.path.basename(final_path)}.", dir=parent)
    try:
        yield staging
        os.chmod(staging, 0o755)  # mkdtemp makes it 0700
        if os.path.isdir(final_path):
            # Swap in two renames; a crash between them leaves the old output as `.old`, never half a new one.
            retired = staging + ".old"
            os.rename(final_path, retired)
            os.rename(staging, final_path)
            shutil.rmtree(retired)
        else:
            os.rename(staging, final_path)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


def check_writable_parent(path: str) -> None:
    """Fail before training, not after, when the output cannot be created."""
    parent = os.path.dirname(os.path.abspath(path)) or "."
    probe = parent
    while not os.path.exists(probe):
        probe = os.path.dirname(probe)
    if not os.path.isdir(probe) or not os.access(probe, os.W_OK | os.X_OK):
        raise PermissionError(f"cannot write the output directory {path}: {probe} is not writable")
    if os.path.exists(path) and not os.path.isdir(path):
        raise PermissionError(f"cannot write the output directory {path}: it is a file")


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
