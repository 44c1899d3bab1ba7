"""Pausing the cyclic garbage collector around short, synchronous bulk steps."""

from __future__ import annotations

import contextlib
import gc
from collections.abc import Iterator

__all__ = ["paused_gc"]


@contextlib.contextmanager
def paused_gc() -> Iterator[None]:
    """Pause the cyclic GC while a step that never suspends builds many small objects.

    A bulk step (a sweep's batch of cells, a re-score of 10,000 runs) allocates far more
    than the collector's 700-object trigger, so it would run many collections, and every
    tenth of those scans the older generations again: with many results alive that is
    most of the cost. The objects built form no cycles, so nothing is lost by collecting
    once afterwards. Only for code with no ``await`` inside: nothing else runs meanwhile
    on this thread. A GC the user turned off stays off.
    """
    was = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was:
            gc.enable()
