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


def release_memory() -> None:
    """Collect the retired model's reference cycles, then hand the heap's free pages back (glibc only)."""
    gc.collect()
    if _GLIBC:
        _libc.malloc_trim(0)
