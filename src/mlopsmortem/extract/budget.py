"""A wall-clock budget for CPU-bound library code running in the current thread.

trafilatura has no deadline and some page shapes make it superlinear (a 4.2 MB page of 100k
short blocks ran for minutes), while the crawler runs it in a worker thread that cannot be
killed. `time_budget` arms a timer that, once the budget is spent, raises `OutOfTime` inside
the thread that is still in the block (CPython's PyThreadState_SetAsyncExc, delivered at the
next bytecode boundary, so a long C call finishes first). `OutOfTime` derives from
BaseException so that the library's own `except Exception` handlers cannot swallow it.

Contract: `OutOfTime` is raised only inside the `with` block or as it exits, never later; a
block that ends before the budget is left alone. The caller must catch `OutOfTime` around
the whole `with` statement.
"""

from __future__ import annotations

import ctypes
import threading
from collections.abc import Iterator
from contextlib import contextmanager


class OutOfTime(BaseException):  # noqa: N818 - a control-flow signal, not an error
    """The block ran past its time budget."""


def _set_async_exc(thread_id: int, exc: type[BaseException] | None) -> None:
    # NULL withdraws an exception that was set but not delivered yet.
    target = ctypes.py_object(exc) if exc is not None else None
    ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(thread_id), target)


# An exception delivered where Python cannot raise it (a __del__, a weakref or GC callback) is
# reported as "unraisable" and lost; the budget then raises it again this often until the
# block has ended.
REFIRE_SECONDS = 0.05


@contextmanager
def time_budget(seconds: float) -> Iterator[None]:
    """Raise OutOfTime in this thread if the block is still running after `seconds`, and
    again every REFIRE_SECONDS until it lands (one delivery can be swallowed)."""
    thread_id = threading.get_ident()
    lock = threading.Lock()
    state = {"inside": True, "fired": False}
    timers: list[threading.Timer] = []

    def arm(delay: float) -> None:
        timer = threading.Timer(delay, fire)
        timer.daemon = True
        timers.append(timer)
        timer.start()

    def fire() -> None:
        with lock:
            if state["inside"]:
                state["fired"] = True
                _set_async_exc(thread_id, OutOfTime)
                arm(REFIRE_SECONDS)

    with lock:
        arm(seconds)
    try:
        yield
    finally:
        with lock:
            state["inside"] = False
            fired = state["fired"]
            for timer in timers:
                timer.cancel()
        if fired:
            # Still pending if the block ended right at the deadline: withdraw it so it
            # cannot surface in unrelated code run later by this thread.
            _set_async_exc(thread_id, None)
