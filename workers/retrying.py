"""Retry with exponential backoff: downloads, source listings and alert channels share it."""

from __future__ import annotations

import logging
import time
from typing import Callable, TypeVar

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
