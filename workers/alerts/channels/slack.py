"""Slack incoming webhook: a short mrkdwn message; the thumbnail as an image block when it has a URL.

(Incoming webhooks cannot upload files, so an image without a URL is left out.)
"""

from __future__ import annotations

from workers.alerts.channels.base import WebhookChannel, post_json, webhook_kind
from workers.alerts.message import Alert, AlertMessage, alerts_of
from workers.sanitize import sanitize

MAX_DIGEST_LINES = 20


def slack_escape(text: str) -> str:
    """Slack's three control characters; keeps ``<!channel>``-style pings and links out of captions."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _link(alert: Alert) -> str:
    url = sanitize(alert.video_url, 2000)
    safe_url = url.replace("|", "%7C").replace("<", "%3C").replace(">", "%3E")
    return f"<{safe_url}|{slack_escape(alert.title())}>"


def slack_payload(message: AlertMessage) -> dict:
    if isinstance(message, Alert):
        lines = [f"*{_link(message)}*", f"{message.score_label()} {message.confidence_text()} {message.when()}".strip()]
        if message.caption:
            lines.append(f"> {slack_escape(sanitize(message.caption, 500))}")
        blocks: list[dict] = [{"type": "section", "text": {"type": "mrkdwn", "text": "\n".join(lines)}}]
        if message.thumbnail_url:
            blocks.append(
                {"type": "image", "image_url": sanitize(message.thumbnail_url, 2000), "alt_text": slack_escape(message.title())[:200]}
            )
        return {"text": slack_escape(message.title()), "blocks": blocks, "unfurl_links": False}
    alerts = alerts_of(message)
    lines = [f"*{slack_escape(message.title())}*"]
    lines += [f"• {_link(a)} ({a.confidence_text()})" for a in alerts[:MAX_DIGEST_LINES]]
    if len(alerts) > MAX_DIGEST_LINES:
        lines.append(f"… and {len(alerts) - MAX_DIGEST_LINES} more")
    return {
        "text": slack_escape(message.title()),
        "blocks": [{"type": "section", "text": {"type": "mrkdwn", "text": "\n".join(lines)[:2900]}}],
        "unfurl_links": False,
    }


class SlackWebhook(WebhookChannel):
    kind = "slack"

    def send(self, message: AlertMessage, timeout: float) -> None:
        post_json(self.url, slack_payload(message), timeout, message.idempotency_key)


CHANNEL = webhook_kind(SlackWebhook, "alert_slack_webhook_urls", "Slack incoming webhook")
