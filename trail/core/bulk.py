"""Building a trail's objects in bulk: the cyclic garbage collector held off meanwhile, the
memory the build dropped given back after."""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def bulk_build() -> Iterator[None]:
    """Hold off the cyclic garbage collector while the body builds a trail's objects, then
    give the heap's free memory back to the system.

    Serving a trail of 100,000 steps makes about a million objects and drops next to none;
    yet every few hundred made set off a collection, and the older generations' look
    through everything made so far again: a quarter of the time it takes. The collector
    runs again after the body (a collector the caller had turned off stays off). What the
    build dropped on the way (its working dicts, lists and text) stays in the process as
    free heap, megabytes at that size, unless given back.
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()
        trim_heap()


def trim_heap() -> None:
    """Give the heap's free pages back to the system (glibc's malloc_trim: a fraction of
    a millisecond; elsewhere nothing is done)."""
    import ctypes

    try:
        trim = ctypes.CDLL(None).malloc_trim
    except (OSError, AttributeError):  # not glibc
        return
    trim(0)
