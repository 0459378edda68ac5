"""Writing model.h5, Keras' legacy HDF5 format, byte-for-byte reproducibly.

HDF5 can stamp each object with the time it was written, in two ways (measured with h5py 3.14, HDF5 1.14.6):
a version-2 object header holds four times (access, modification, change, birth), and a dataset made with
`track_times=True` gets an 8-byte modification-time message (type 0x12) even in a version-1 header. Writing a
tiny file twice 1.1 s apart, `libver="latest"` changed 16 bytes (the root group's and a group's times, and both
headers' checksums) and `track_times=True` the dataset's message; h5py's defaults changed none. Keras' saver,
saving the ConvNet twice 2 s apart and from two processes, wrote the same 14,441,024 bytes, every object's four
times 0 and every header version 1: h5py opens files as libver "earliest" (version-1 headers have no room for
times) and makes datasets with `track_times=False`. We pin libver, and h5py's global `track_order` off (set,
it makes every new group a version-2 header, with times, even under "earliest"), then check the file, so that
a change of defaults fails the build here rather than `nix-build --check` later.

Import this only after `backends.select_backend`: it imports Keras.
"""

import contextlib

import h5py
from keras.src.legacy.saving import legacy_h5_format


def save_model_h5(model, path: str) -> None:
    """What `model.save("model.h5")` writes (optimizer state included), with no time in it."""
    with _no_creation_order(), h5py.File(path, "w", libver="earliest", track_order=False) as file:
        legacy_h5_format.save_model_to_hdf5(model, file)
    stamped = timestamped_objects(path)
    if stamped:
        raise RuntimeError(f"{path}: HDF5 stamped a time on {', '.join(stamped)}; the file would not be reproducible")


def timestamped_objects(path: str) -> list:
    """The objects of an HDF5 file that carry a time (any of the four HDF5 reports is not 0), root as "/"."""
    with h5py.File(path, "r") as file:
        objects = [("/", file.id)]
        file.visititems(lambda name, item: objects.append((name, item.id)))
        infos = [(name, h5py.h5o.get_info(identifier)) for name, identifier in objects]
    return [name for name, info in infos if (info.atime, info.mtime, info.ctime, info.btime) != (0, 0, 0, 0)]


@contextlib.contextmanager
def _no_creation_order():
    config = h5py.get_config()
    saved, config.track_order = config.track_order, False
    try:
        yield
    finally:
        config.track_order = saved
