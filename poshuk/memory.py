"""Giving freed memory back to the system (glibc; elsewhere these do nothing).

Building the BM25 postings (``poshuk.index.postings``) allocates a few hundred MB of numpy
temporaries and frees them. glibc keeps freed blocks for reuse; measured over 107,560
passages, RSS stayed 112 MB above the start when the build ran in the service's upkeep
thread, for 41 MB of postings. With a fixed trim threshold (``trim_promptly``, as
``poshuk serve`` sets) it was 72 MB; a build in the main thread followed by ``malloc_trim``
(``release_free_memory``), 65 MB.
"""

from __future__ import annotations

import ctypes
import ctypes.util
from typing import Any

M_TRIM_THRESHOLD = -1  # glibc's mallopt parameter
TRIM_THRESHOLD_BYTES = 128 * 1024  # glibc's own initial value, kept instead of raised as blocks are freed


def _libc() -> Any:
    name = ctypes.util.find_library("c")
    return ctypes.CDLL(name) if name else None


def release_free_memory() -> bool:
    """Return the free memory at the top of malloc's heaps now (``malloc_trim``); False without glibc."""
    trim = getattr(_libc(), "malloc_trim", None)
    if trim is None:
        return False
    trim(0)
    return True


def trim_promptly() -> bool:
    """Make glibc give freed memory back at once, in every thread's arena, instead of raising its
    thresholds as large blocks come and go (which also keeps every later block below 32 MB in
    the heap); for the whole process. False without glibc."""
    mallopt = getattr(_libc(), "mallopt", None)
    return mallopt is not None and mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD_BYTES) == 1
