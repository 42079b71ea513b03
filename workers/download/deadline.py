"""A wall-clock deadline for a block of code, enforced from outside it.

yt-dlp checks our ``max_download_seconds`` only in its progress hook, which
a slow server (one byte a second, never silent long enough for the socket
timeout) calls too rarely, and never while it extracts. ``deadline`` runs a
watchdog thread instead: when the time is up it raises ``DeadlinePassed`` in
the thread running the block (``PyThreadState_SetAsyncExc``), and again every
``REPEAT`` seconds until the block ends, in case a library swallowed it. The
exception arrives as soon as that thread runs Python code again: at once for a
trickling socket, within the socket timeout for a silent one. It works in any
thread (unlike SIGALRM), so in Celery's pool processes and in threads alike.
``DeadlinePassed`` derives from ``BaseException`` so that ``except Exception``
blocks inside yt-dlp let it through.
"""

from __future__ import annotations

import ctypes
import threading
from collections.abc import Iterator
from contextlib import contextmanager

REPEAT = 1.0  # seconds between two raises once the deadline has passed


class DeadlinePassed(BaseException):
    """Raised inside a ``deadline`` block whose time is up."""


def _raise_in(thread_id: int, exc: type[BaseException] | None) -> None:
    target = ctypes.py_object(exc) if exc is not None else ctypes.c_void_p(0)  # NULL clears a pending one
    ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(thread_id), target)


@contextmanager
def deadline(seconds: float) -> Iterator[None]:
    """Run the block for at most ``seconds`` (wall clock); ``DeadlinePassed`` when it takes longer."""
    thread_id = threading.get_ident()
    lock = threading.Lock()
    state = {"over": False, "timer": None}

    def fire() -> None:
        with lock:
            if state["over"]:
                return
            _raise_in(thread_id, DeadlinePassed)
            state["timer"] = _timer(REPEAT, fire)

    def stop() -> None:
        with lock:
            state["over"] = True
            if state["timer"] is not None:
                state["timer"].cancel()
            _raise_in(thread_id, None)

    with lock:
        state["timer"] = _timer(seconds, fire)
    late = False
    try:
        yield
    finally:
        while True:  # the exception may land while we stop the watchdog: stop it anyway
            try:
                stop()
                break
            except DeadlinePassed:
                late = True
    if late:
        raise DeadlinePassed()


def _timer(seconds: float, fn) -> threading.Timer:
    timer = threading.Timer(max(0.0, seconds), fn)
    timer.daemon = True
    timer.start()
    return timer
