"""Generic JSON webhook: the alert as JSON, thumbnail inline (base64 JPEG).

One alert::

    {"event": "alert", "target": ..., "video_url": ..., "author": ..., "caption": ...,
     "confidence": 0.93, "positive_timestamps": [3.0, 4.0], "thumbnail":
     {"content_type": "image/jpeg", "base64": "...", "url": null}, ...}

A digest: ``{"event": "digest", "target": ..., "count": n, "alerts": [...]}``.
Both carry ``idempotency_key`` (also the ``Idempotency-Key`` header): the same on every
delivery of one alert, so a receiver drops a repeat (delivery is at least once).
(thumbnails inline for the first ``DIGEST_THUMBNAILS``).
"""

from __future__ import annotations

from workers.alerts.channels.base import WebhookChannel, post_json, webhook_kind
from workers.alerts.message import Alert, AlertMessage
from workers.sanitize import sanitize

DIGEST_THUMBNAILS = 10


def webhook_payload(message: AlertMessage) -> dict:
    if isinstance(message, Alert):
        return {"event": "alert", "app": "tiktok-tracker", **message.to_json()}
    return {
        "event": "digest",
        "app": "tiktok-tracker",
        "target": sanitize(message.target, 100),
        "count": len(message.alerts),
        "idempotency_key": message.idempotency_key,
        "alerts": [a.to_json(thumbnail=i < DIGEST_THUMBNAILS) for i, a in enumerate(message.alerts)],
    }


class JsonWebhook(WebhookChannel):
    kind = "webhook"

    def send(self, message: AlertMessage, timeout: float) -> None:
        post_json(self.url, webhook_payload(message), timeout, message.idempotency_key)


CHANNEL = webhook_kind(JsonWebhook, "alert_webhook_urls", "generic JSON webhook (thumbnail base64 inline)")
