"""Keep the batch engine's large temporary arrays out of the kernel's page-fault path.

The engine evaluates a pool of curves at once: every model evaluation makes
a few dozen temporary arrays of ``pool x points`` floats (5 MiB for 2,048
curves of 321 points). With glibc's default tuning these are mapped from the
kernel and zeroed page by page on each allocation, then returned on free
(its dynamic mmap threshold does not settle, because the heap top is trimmed
as soon as 2 such arrays lie free there). On cube (a) of the tail benchmark
that was about 750,000 minor page faults per 4,096-curve fit: half its time.

:func:`tune_malloc` raises glibc's mmap threshold to its maximum (32 MiB) and
its trim threshold to 256 MiB, so such arrays come from the heap and are
reused: the fit of cube (a) runs about twice as fast and the peak resident
memory is unchanged (the memory is the same working set, kept instead of
handed back and faulted in again; freed memory above 256 MiB at the heap's
top is still returned). It is called once per process by ``fit_batch``, does
nothing off glibc (macOS, Windows, musl), and nothing when the environment
variable ``BATCHFIT_TUNE_MALLOC`` is ``0``, when glibc's own
``MALLOC_MMAP_THRESHOLD_`` / ``MALLOC_TRIM_THRESHOLD_`` are set (the user's
tuning, or dask's nanny's in a worker, wins), or when the process was tuned
already: batchfit's own dask workers are, with thresholds bounded by their
memory limit and a trim after each task (:mod:`batchfit.stack.cluster`).
"""

from __future__ import annotations

import ctypes
import functools
import os
import platform

M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3
"""glibc's ``mallopt`` parameter numbers (``malloc.h``)."""
MMAP_THRESHOLD = 32 * 2**20
"""Allocations below this come from the heap (glibc's largest allowed value on 64-bit)."""
TRIM_THRESHOLD = 256 * 2**20
"""Free memory kept at the heap's top before it is returned to the system."""
USER_SETTINGS = ("MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_", "MALLOC_TOP_PAD_")

_state: dict[str, bool] = {}


def tune_malloc() -> bool:
    """Set glibc's thresholds once per process (see the module docstring); True if set."""
    if "done" not in _state:
        _state["done"] = _apply()
    return _state["done"]


def mark_tuned() -> None:
    """Record that this process's allocator is tuned already (by a worker plugin)."""
    _state["done"] = True


@functools.cache
def _glibc() -> ctypes.CDLL | None:
    """The process's C library if it is glibc (looked up once: ``libc_ver`` reads a file)."""
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return None
    try:
        libc = ctypes.CDLL(None)
        libc.mallopt.argtypes, libc.mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
        libc.malloc_trim.argtypes, libc.malloc_trim.restype = [ctypes.c_size_t], ctypes.c_int
    except (OSError, AttributeError):
        return None
    return libc


def set_thresholds(mmap_threshold: int, trim_threshold: int) -> bool:
    """Set the mmap and trim thresholds (bytes) with glibc's ``mallopt``; False off glibc."""
    libc = _glibc()
    if libc is None:
        return False
    ok = libc.mallopt(M_MMAP_THRESHOLD, mmap_threshold) == 1
    return libc.mallopt(M_TRIM_THRESHOLD, trim_threshold) == 1 and ok


def trim_heap() -> None:
    """Give freed heap memory back to the system (glibc ``malloc_trim(0)``); no-op elsewhere."""
    libc = _glibc()
    if libc is not None:
        libc.malloc_trim(0)


def _apply() -> bool:
    if os.environ.get("BATCHFIT_TUNE_MALLOC", "1") == "0":
        return False
    if any(name in os.environ for name in USER_SETTINGS):
        return False
    return set_thresholds(MMAP_THRESHOLD, TRIM_THRESHOLD)
