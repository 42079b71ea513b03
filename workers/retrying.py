"""Retry with exponential backoff: downloads, source listings and alert channels share it."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")
log = logging.getLogger(__name__)


def backoff_delays(retries: int, backoff: float) -> list[float]:
    """Seconds to wait before each retry: ``backoff``, ``2*backoff``, ``4*backoff`` ..."""
    return [backoff * 2**i for i in range(max(0, retries))]


def call_with_retries(
    fn: Callable[[], T],
    *,
    retries: int,
    backoff: float,
    retry_on: tuple[type[BaseException], ...],
    what: str = "call",
    sleep: Callable[[float], None] = time.sleep,
) -> T:
    """``fn()``, tried again up to ``retries`` times while it raises one of ``retry_on``.

    The last error is raised as it is once the retries are spent; any other
    exception is raised at once.
    """
    delays = backoff_delays(retries, backoff)
    for attempt in range(len(delays) + 1):
        try:
            return fn()
        except retry_on as err:
            if attempt == len(delays):
                raise
            log.info("%s failed (%s); retry %d/%d in %.1fs", what, err, attempt + 1, len(delays), delays[attempt])
            sleep(delays[attempt])
    raise AssertionError("unreachable")


def jittered_backoff(retry: int, first: float, longest: float, draw: Callable[[], float]) -> float:
    """Seconds before retry number ``retry`` (0-based) of a pipeline stage: ``first * 2**retry``,
    at most ``longest``, scaled by a jitter factor between 0.5 and 1 (``draw()`` in [0, 1)).
    Half the nominal delay is guaranteed, so a number of retries has a known minimum span."""
    nominal = min(longest, first * 2 ** min(retry, 64))
    return nominal * (0.5 + 0.5 * draw())


def retries_spanning(window: float, first: float, longest: float) -> int:
    """How many stage retries (``jittered_backoff``) are needed for their waits to add up to at
    least ``window`` seconds even with the smallest jitter: the retry budget when the time of
    the first failure is not known."""
    total, count = 0.0, 0
    while total < window:
        total += min(longest, first * 2 ** min(count, 64)) * 0.5
        count += 1
    return count
