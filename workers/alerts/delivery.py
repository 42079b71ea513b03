"""Send a message through every channel: each retried with backoff, in parallel, none blocking another.

``deliver`` never raises for a failing channel: it reports, per channel,
whether it got through, after how many attempts, and the last error. The
pipeline records the report (an alert that reached any channel counts as
sent) and moves on.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from workers.alerts.channels import CHANNELS, NO_CHANNEL, Channel, ChannelFailed
from workers.alerts.message import AlertMessage, sample_alert
from workers.errors import AlertError
from workers.retrying import backoff_delays

log = logging.getLogger(__name__)


@dataclass
class ChannelResult:
    channel: str
    ok: bool
    attempts: int
    error: str | None = None

    def to_json(self) -> dict:
        return {"channel": self.channel, "ok": self.ok, "attempts": self.attempts, "error": self.error}


@dataclass
class DeliveryReport:
    results: list[ChannelResult] = field(default_factory=list)

    @property
    def delivered(self) -> bool:
        """At least one channel got the message (so it counts as sent)."""
        return any(r.ok for r in self.results)

    @property
    def failures(self) -> list[ChannelResult]:
        return [r for r in self.results if not r.ok]

    def to_json(self) -> list[dict]:
        return [r.to_json() for r in self.results]


def channels_from_settings(settings) -> list[Channel]:
    """The configured channels, in ``CHANNELS`` order; ``AlertError`` when a channel's settings are incomplete."""
    return [channel for kind in CHANNELS for channel in kind.channels(settings)]


def send_with_retries(
    channel: Channel,
    message: AlertMessage,
    *,
    retries: int,
    backoff: float,
    timeout: float,
    sleep: Callable[[float], None] = time.sleep,
) -> ChannelResult:
    """One channel: tried up to ``retries + 1`` times (permanent failures once); never raises."""
    delays = backoff_delays(retries, backoff)
    error = None
    for attempt in range(1, len(delays) + 2):
        try:
            channel.send(message, timeout)
            return ChannelResult(channel.name, True, attempt)
        except ChannelFailed as err:
            error = str(err)
            if err.permanent:
                break
        except Exception as err:  # noqa: BLE001 - a broken channel must not break the others
            error = f"{type(err).__name__}: {err}"
        if attempt <= len(delays):
            log.info("alert channel %s failed (%s); retry %d/%d", channel.name, error, attempt, len(delays))
            sleep(delays[attempt - 1])
    log.warning("alert channel %s gave up after %d attempt(s): %s", channel.name, attempt, error)
    return ChannelResult(channel.name, False, attempt, error)


def deliver(
    message: AlertMessage,
    channels: Sequence[Channel],
    *,
    retries: int = 3,
    backoff: float = 2.0,
    timeout: float = 10.0,
    sleep: Callable[[float], None] = time.sleep,
) -> DeliveryReport:
    """Send ``message`` through every channel in parallel; a report per channel, in channel order."""
    if not channels:
        return DeliveryReport()
    with ThreadPoolExecutor(max_workers=min(8, len(channels)), thread_name_prefix="alert") as pool:
        futures = [
            pool.submit(send_with_retries, c, message, retries=retries, backoff=backoff, timeout=timeout, sleep=sleep) for c in channels
        ]
        return DeliveryReport([f.result() for f in futures])


def deliver_with_settings(message: AlertMessage, settings, sleep: Callable[[float], None] = time.sleep) -> DeliveryReport:
    """``deliver`` through the channels and retry policy in ``settings``."""
    return deliver(
        message,
        channels_from_settings(settings),
        retries=settings.alert_retries,
        backoff=settings.alert_retry_backoff,
        timeout=settings.alert_timeout,
        sleep=sleep,
    )


def delivery_deadline(settings) -> float:
    """Seconds one delivery can take at most (the channels run side by side, each attempt limited
    to ``alert_timeout``, plus the waits between retries): a row still ``pending`` after this long
    (with a margin for the bookkeeping) was left by a worker that died while sending."""
    retries = settings.alert_retries
    return (retries + 1) * settings.alert_timeout + sum(backoff_delays(retries, settings.alert_retry_backoff))


def send_test_alert(settings) -> DeliveryReport:
    """``tiktok-tracker alerts test``: a sample alert through every configured channel."""
    channels = channels_from_settings(settings)
    if not channels:
        raise AlertError(NO_CHANNEL)
    return deliver_with_settings(sample_alert(), settings)
