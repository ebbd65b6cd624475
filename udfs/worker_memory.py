"""Hand a Python worker's freed memory back to the system once a task is done.

A task of the stream holds its partition several times over while it scores it and builds the
tables' rows (about 3 KB a record at its peak). Freed, that memory stays with the process: glibc's
malloc keeps its arenas' free pages, and pyarrow's mimalloc pool keeps its segments for reuse. A
worker's resident size then ratchets up to its largest partition and stays there, between batches
and while the other worker runs. Measured on an 80,000-record partition: 546 MB resident after the
task, 466 MB after ``malloc_trim``, 356 MB once mimalloc released its unused segments too.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import logging

log = logging.getLogger(__name__)

_LIBC: ctypes.CDLL | None = None


def _libc() -> ctypes.CDLL | None:
    global _LIBC
    if _LIBC is None:
        name = ctypes.util.find_library("c")
        try:
            _LIBC = ctypes.CDLL(name) if name else None
        except OSError:
            _LIBC = None
    return _LIBC if _LIBC is not None and hasattr(_LIBC, "malloc_trim") else None


def release_memory() -> None:
    """Return the memory freed by the task to the system: pyarrow's pool's unused segments, then
    the C heap's free pages (``malloc_trim``: glibc only; elsewhere nothing to do)."""
    import pyarrow as pa

    pa.default_memory_pool().release_unused()
    libc = _libc()
    if libc is not None:
        libc.malloc_trim(0)
