"""The cyclic garbage collector around bulk steps and while runs are in flight."""

from __future__ import annotations

import contextlib
import gc
import threading
from collections.abc import Iterator

__all__ = ["IN_FLIGHT_THRESHOLD", "paused_gc", "runs_in_flight"]

# gen-0 trigger while runs are in flight (the interpreter's default is 700)
IN_FLIGHT_THRESHOLD = 10_000

_lock = threading.Lock()
_depth = 0
_saved: tuple[int, int, int] | None = None  # the thresholds before the first run
_ours: tuple[int, int, int] | None = None  # what we set, to know if anyone changed it


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


@contextlib.contextmanager
def runs_in_flight() -> Iterator[None]:
    """Raise the GC's gen-0 trigger to :data:`IN_FLIGHT_THRESHOLD` while any run is open.

    A run in flight holds a few hundred objects (its coroutines, the HTTP exchange,
    the store states it produced) for the length of one call. At the default trigger
    of 700 net allocations, fifty calls in flight meant a young collection every few
    sends that found nearly everything still alive, promoted it, and so paid again in
    the older generations: about a tenth of the client CPU per send. With the higher
    trigger most of those objects are freed by reference counting before a collection
    looks at them. Process-wide, so counted across sessions and threads: the first
    run to start raises it, the last to end puts the previous thresholds back. A
    threshold the user set at or above ours, or a collector turned off with
    ``gc.set_threshold(0)``, is left as it is; one changed while runs were in flight
    is not put back over.
    """
    global _depth, _saved, _ours
    with _lock:
        _depth += 1
        if _depth == 1:
            current = gc.get_threshold()
            if 0 < current[0] < IN_FLIGHT_THRESHOLD:
                _saved = current
                _ours = (IN_FLIGHT_THRESHOLD, current[1], current[2])
                gc.set_threshold(*_ours)
    try:
        yield
    finally:
        with _lock:
            _depth -= 1
            if _depth == 0 and _saved is not None:
                if gc.get_threshold() == _ours:
                    gc.set_threshold(*_saved)
                _saved = _ours = None
