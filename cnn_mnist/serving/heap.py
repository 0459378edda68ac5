"""Giving a retired model's memory back to the system, so that RSS does not climb with every reload.

Two things kept it (issue 8 §6: about 22 MB more RSS per reload with 32 server threads under traffic):
- the model and its compiled function hold each other, so they wait for a full garbage collection;
- glibc's *dynamic* mmap threshold: after the first large buffer is freed, glibc raises the threshold,
  and from then on weights and activations of several MB come from the heap arenas, where they
  fragment and are not returned. Pinning the threshold at its default (128 KiB) keeps every large
  buffer in its own mapping, unmapped when freed (a forward pass costs the same within noise, README).
"""

import ctypes
import ctypes.util
import gc

M_MMAP_THRESHOLD = -3  # mallopt parameter, from <malloc.h>
MMAP_THRESHOLD = 128 * 1024  # glibc's initial value; setting it explicitly turns the dynamic adjustment off

_name = ctypes.util.find_library("c")
_libc = ctypes.CDLL(_name) if _name else None
_GLIBC = _libc is not None and hasattr(_libc, "mallopt") and hasattr(_libc, "malloc_trim")


def pin_mmap_threshold() -> None:
    """Serve large allocations from their own mappings for the life of the process (glibc only)."""
    if _GLIBC:
        _libc.mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD)


def freeze_survivors() -> None:
    """Keep the collector's full passes off what lives as long as the process: the backend and the models.

    With TensorFlow and one model loaded the collector tracks some 400,000 objects, and one full
    collection takes 100-400 ms with the GIL held (measured here: 398 ms on a busy 2-core machine). CPython
    runs one once enough new objects survive, a few seconds into traffic: issue 15 §7's single ~100 ms
    stall in the second of five 8 s runs (here: 106 ms p99 against 31-36 ms p90, and 48 ms or less in
    the other runs; with this, 43-55 ms in all five). `gc.freeze()` moves every object alive now out of
    the collector's sight; what is allocated later is collected as before.
    """
    gc.collect()
    gc.freeze()


def release_memory() -> None:
    """Collect the retired model's reference cycles, then hand the heap's free pages back (glibc only).

    The retired model was frozen with everything else (freeze_survivors): unfreeze, collect, freeze again.
    """
    gc.unfreeze()
    gc.collect()
    gc.freeze()
    if _GLIBC:
        _libc.malloc_trim(0)
