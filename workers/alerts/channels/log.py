"""The log channel: one line per alert in the workers' log (always works; handy in development)."""

from __future__ import annotations

import logging

from workers.alerts.channels.base import Channel, ChannelKind
from workers.alerts.message import AlertMessage, alerts_of
from workers.sanitize import sanitize

log = logging.getLogger("workers.alerts")


class LogChannel(Channel):
    kind = "log"

    def send(self, message: AlertMessage, timeout: float) -> None:
        for alert in alerts_of(message):
            log.warning(
                "ALERT target=%s %s=%s %s url=%s author=%s caption=%s",
                alert.shown_target,
                "match" if alert.match_tolerance is not None else "confidence",
                alert.confidence_text(),
                alert.when() or "-",
                sanitize(alert.video_url, 500),
                alert.shown_author or "-",
                sanitize(alert.caption, 200) or "-",
            )


CHANNEL = ChannelKind(LogChannel, "log (the worker's log)", ("alert_log",), lambda settings: [LogChannel()])
