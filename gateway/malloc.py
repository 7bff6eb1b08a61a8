"""Giving memory back to the system after large bodies (glibc only; elsewhere a no-op).

glibc raises its mmap threshold each time a large block is freed (up to 32 MiB), so after a
few megabyte-sized bodies every later buffer of that size comes from the heap, where freed
space is fragmented and stays in the process: RSS stays at its peak. A fixed threshold keeps
large buffers in their own mappings, returned as soon as they are freed; fewer arenas keep the
threads that parse mail from each holding a heap of its own; ``trim`` hands back free heap
pages after a burst.
"""

from __future__ import annotations

import asyncio
import ctypes
import ctypes.util
import gc
import logging

log = logging.getLogger(__name__)

# mallopt parameters (glibc malloc.h)
M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3
M_ARENA_MAX = -8

MMAP_THRESHOLD = 256 * 1024  # bytes: larger blocks get a mapping of their own
TRIM_THRESHOLD = 1024 * 1024  # free heap above this at the top is given back at once
ARENAS = 2


def _libc() -> ctypes.CDLL | None:
    name = ctypes.util.find_library("c")
    if not name:
        return None
    try:
        libc = ctypes.CDLL(name)
        libc.mallopt, libc.malloc_trim  # noqa: B018  (both exist: glibc)
    except (OSError, AttributeError):
        return None
    return libc


_LIBC = _libc()


def tune() -> bool:
    """Set the allocator for a long-running server; call once, before threads start."""
    if _LIBC is None:
        return False
    ok = all(
        _LIBC.mallopt(param, value)
        for param, value in (
            (M_MMAP_THRESHOLD, MMAP_THRESHOLD),
            (M_TRIM_THRESHOLD, TRIM_THRESHOLD),
            (M_ARENA_MAX, ARENAS),
        )
    )
    if not ok:
        log.warning("malloc tuning was refused; memory may be returned to the system late")
    return ok


def trim() -> None:
    """Collect cycles, then return free heap pages of every arena to the system."""
    gc.collect()
    if _LIBC is not None:
        _LIBC.malloc_trim(0)


_pending: asyncio.TimerHandle | None = None


def trim_later(delay: float = 1.0) -> None:
    """``trim`` once nothing has asked again for ``delay`` seconds (after a burst, not in it)."""
    global _pending
    if _pending is not None:
        _pending.cancel()
    _pending = asyncio.get_running_loop().call_later(delay, _trim_pending)


def _trim_pending() -> None:
    global _pending
    _pending = None
    trim()
