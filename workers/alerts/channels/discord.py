"""Discord webhook: an embed per alert, the thumbnail uploaded with the message.

Mentions are switched off (``allowed_mentions``), so a caption saying
``@everyone`` pings no one.
"""

from __future__ import annotations

import json
import uuid

from workers.alerts.channels.base import WebhookChannel, post, webhook_kind
from workers.alerts.message import Alert, AlertMessage, alerts_of
from workers.sanitize import sanitize

MAX_EMBEDS = 10  # Discord's limit per message


def _embed(alert: Alert, image_name: str | None) -> dict:
    embed = {
        "title": alert.title()[:256],
        "url": sanitize(alert.video_url, 2000),
        "description": sanitize(alert.caption, 1000),
        "fields": [
            {"name": alert.score_label(), "value": alert.confidence_text(), "inline": True},
            {"name": "Seen", "value": (alert.when() or "-")[:1024], "inline": True},
        ],
    }
    if image_name:
        embed["image"] = {"url": f"attachment://{image_name}"}
    elif alert.thumbnail_url:
        embed["image"] = {"url": sanitize(alert.thumbnail_url, 2000)}
    return embed


def discord_request(message: AlertMessage) -> tuple[bytes, str]:
    """The multipart body (``payload_json`` plus thumbnails as ``files[i]``) and its content type."""
    alerts = alerts_of(message)[:MAX_EMBEDS]
    files: list[tuple[str, bytes]] = []
    embeds = []
    for alert in alerts:
        name = None
        if alert.thumbnail:
            name = f"thumbnail{len(files)}.jpg"
            files.append((name, alert.thumbnail))
        embeds.append(_embed(alert, name))
    content = message.title() if not isinstance(message, Alert) else ""
    extra = len(alerts_of(message)) - len(alerts)
    if extra > 0:
        content += f" ({extra} more not shown)"
    payload = {"content": content[:2000], "embeds": embeds, "allowed_mentions": {"parse": []}}
    boundary = uuid.uuid4().hex
    parts = [
        f'--{boundary}\r\nContent-Disposition: form-data; name="payload_json"\r\nContent-Type: application/json\r\n\r\n'.encode()
        + json.dumps(payload).encode()
        + b"\r\n"
    ]
    for i, (name, data) in enumerate(files):
        parts.append(
            f'--{boundary}\r\nContent-Disposition: form-data; name="files[{i}]"; filename="{name}"\r\n'
            f"Content-Type: image/jpeg\r\n\r\n".encode()
            + data
            + b"\r\n"
        )
    parts.append(f"--{boundary}--\r\n".encode())
    return b"".join(parts), f"multipart/form-data; boundary={boundary}"


class DiscordWebhook(WebhookChannel):
    kind = "discord"

    def send(self, message: AlertMessage, timeout: float) -> None:
        body, content_type = discord_request(message)
        post(self.url, body, content_type, timeout, message.idempotency_key)


CHANNEL = webhook_kind(DiscordWebhook, "alert_discord_webhook_urls", "Discord webhook (thumbnail attached)")
