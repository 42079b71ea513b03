"""Alerts: what they say (``message``), whether to send (``policy``), where they go
(``channels``) and how (``delivery``). No Celery, no database."""

from workers.alerts.channels import NO_CHANNEL
from workers.alerts.delivery import (
    ChannelResult,
    DeliveryReport,
    channels_from_settings,
    deliver,
    deliver_with_settings,
    delivery_deadline,
    send_test_alert,
)
from workers.alerts.message import Alert, Digest, jpeg_thumbnail, sample_alert, thumbnail_from_file
from workers.alerts.policy import AlertRecord, Decision, alert_decision, due_digests

__all__ = [
    "NO_CHANNEL",
    "Alert",
    "AlertRecord",
    "ChannelResult",
    "Decision",
    "DeliveryReport",
    "Digest",
    "alert_decision",
    "channels_from_settings",
    "deliver",
    "deliver_with_settings",
    "delivery_deadline",
    "due_digests",
    "jpeg_thumbnail",
    "sample_alert",
    "send_test_alert",
    "thumbnail_from_file",
]
