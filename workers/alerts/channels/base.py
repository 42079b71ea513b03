"""The channel API, the entry each channel module declares (``ChannelKind``), and the HTTP
POST the webhook channels share."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar
from urllib.parse import urlsplit

from workers.alerts.message import IDEMPOTENCY_HEADER, AlertMessage

USER_AGENT = "tiktok-tracker-alerts/1"


class ChannelFailed(Exception):
    """A delivery attempt failed; ``permanent`` ones (bad URL, 4xx, refused login) are not retried."""

    def __init__(self, message: str, permanent: bool = False):
        super().__init__(message)
        self.permanent = permanent


class Channel(ABC):
    """Somewhere alerts go. ``send`` delivers one message or raises."""

    kind: ClassVar[str]

    @property
    def name(self) -> str:
        """Shown in reports: the kind, plus where (without secrets)."""
        return self.kind

    @abstractmethod
    def send(self, message: AlertMessage, timeout: float) -> None:
        """Deliver ``message`` (an ``Alert`` or a ``Digest``); raise ``ChannelFailed`` (or anything) on failure."""


class WebhookChannel(Channel):
    """A channel that POSTs to a URL (the URL's path is a secret: shown redacted)."""

    def __init__(self, url: str):
        self.url = url

    @property
    def name(self) -> str:
        return f"{self.kind} {redacted(self.url)}"


@dataclass(frozen=True)
class ChannelKind:
    """What a channel module declares about itself (its ``CHANNEL``), so that settings, delivery, the
    ``alerts test`` hint and the README's channel table all come from ``workers.alerts.channels.CHANNELS``."""

    channel: type[Channel]  # its ``kind`` is the channel's name in reports
    description: str  # one line for the README's channel table
    settings: tuple[str, ...]  # every setting it reads; the first turns it on (a flag set, a URL list not empty)
    build: Callable[[Any], list[Channel]]  # Settings -> its channels; ``AlertError`` when its settings are incomplete

    @property
    def key(self) -> str:
        return self.channel.kind

    def configured(self, settings) -> bool:
        return bool(getattr(settings, self.settings[0]))

    def channels(self, settings) -> list[Channel]:
        """Its channels in ``settings`` ([] when it is off)."""
        return self.build(settings) if self.configured(settings) else []


def webhook_kind(channel: type[WebhookChannel], urls_setting: str, description: str) -> ChannelKind:
    """The entry of a webhook channel: one channel per URL of the list setting ``urls_setting``."""
    return ChannelKind(channel, description, (urls_setting,), lambda settings: [channel(url) for url in getattr(settings, urls_setting)])


def redacted(url: str) -> str:
    """``https://hooks.slack.com/services/T0/B0/secret`` -> ``https://hooks.slack.com/…``: webhook paths are secrets."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.hostname or '?'}{f':{parts.port}' if parts.port else ''}/…"


def post(url: str, body: bytes, content_type: str, timeout: float, key: str | None = None) -> int:
    """POST ``body`` (``key``: sent as the ``Idempotency-Key`` header); the HTTP status on 2xx,
    ``ChannelFailed`` otherwise (429 and 5xx are retryable)."""
    if urlsplit(url).scheme not in ("http", "https"):
        raise ChannelFailed(f"webhook URL must be http(s): {redacted(url)}", permanent=True)
    headers = {"Content-Type": content_type, "User-Agent": USER_AGENT}
    if key:
        headers[IDEMPOTENCY_HEADER] = key
    request = urllib.request.Request(url, data=body, method="POST", headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status
    except urllib.error.HTTPError as err:
        retryable = err.code == 429 or err.code >= 500
        raise ChannelFailed(f"HTTP {err.code} {err.reason} from {redacted(url)}", permanent=not retryable) from None
    except (urllib.error.URLError, OSError) as err:
        reason = getattr(err, "reason", err)
        raise ChannelFailed(f"cannot reach {redacted(url)}: {reason}") from None


def post_json(url: str, payload: dict[str, Any], timeout: float, key: str | None = None) -> int:
    return post(url, json.dumps(payload, ensure_ascii=False).encode("utf-8"), "application/json", timeout, key)
