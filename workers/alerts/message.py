"""What an alert says: the ``Alert`` (one video, one target) and the ``Digest`` (several, one target).

Text fields come from scraped metadata and are hostile until proven
otherwise: every rendering here goes through ``workers.sanitize``.
"""

from __future__ import annotations

import base64
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

import cv2
import numpy as np

from workers.images import jpeg_thumbnail
from workers.sanitize import sanitize
from workers.verdict_text import match_distance, score_text

# Namespace of the alerts' idempotency keys (UUID 5 of what the alert is about).
IDEMPOTENCY_NAMESPACE = uuid.UUID("6b1c3f0e-5d2a-4c1e-9f7a-7474616c6572")
IDEMPOTENCY_HEADER = "Idempotency-Key"
CAPTION_LIMIT = 1000
MAX_TIMESTAMPS = 50
THUMBNAIL_SIDE = 480


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


def idempotency_key(*parts: str) -> str:
    """A stable key for what an alert is about (same parts, same key, on every delivery and
    every host), so that a receiver can drop a repeat: alerts are delivered at least once."""
    return str(uuid.uuid5(IDEMPOTENCY_NAMESPACE, "\x1f".join(parts)))


def clock(seconds: float) -> str:
    """``75.4`` -> ``"1:15"``; hours when needed."""
    whole = int(max(0.0, seconds))
    h, rest = divmod(whole, 3600)
    m, s = divmod(rest, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"


def thumbnail_from_file(path, max_side: int = THUMBNAIL_SIDE) -> bytes | None:
    """A JPEG thumbnail of an image file (the best frame in the media store); None if unreadable."""
    data = np.fromfile(str(path), dtype=np.uint8)
    image = cv2.imdecode(data, cv2.IMREAD_COLOR) if data.size else None
    if image is None:
        return None
    return jpeg_thumbnail(cv2.cvtColor(image, cv2.COLOR_BGR2RGB), max_side)


@dataclass
class Alert:
    """A target found in a video, with its evidence."""

    target: str
    video_url: str
    confidence: float | None  # best frame score, 0..1 (a face target's: 1 - its match distance)
    positive_timestamps: list[float] = field(default_factory=list)  # seconds into the video
    author: str | None = None
    caption: str | None = None
    platform: str | None = None
    platform_id: str | None = None
    posted_at: datetime | None = None
    thumbnail: bytes | None = None  # JPEG of the best frame
    thumbnail_url: str | None = None  # where the same image can be fetched, when served
    best_timestamp: float | None = None
    video_key: str | None = None  # what "one alert per (video, target)" counts
    repost_of: str | None = None  # URL of the earlier video with the same content, when this is a repost
    reposts_since: int = 0  # reposts of earlier alerted videos of this target since its previous alert (not alerted)
    found_at: datetime = field(default_factory=utcnow)
    key: str | None = None  # the idempotency key: stable for one (job, target); see ``idempotency_key``
    # A face target: ``confidence`` is 1 - a distance, shown as the distance against this tolerance
    # (``workers.verdict_text.score_text``), never as a percentage. None: a classifier's score.
    match_tolerance: float | None = None
    partial_note: str | None = None  # "partial: 19 of 523 frames decoded" when the video was truncated

    @property
    def idempotency_key(self) -> str:
        return self.key or idempotency_key("alert", self.video_key or self.video_url, self.target)

    @property
    def shown_target(self) -> str:
        return sanitize(self.target, 100)

    @property
    def shown_author(self) -> str:
        return sanitize(self.author, 100)

    def title(self) -> str:
        who = f" by @{self.shown_author.lstrip('@')}" if self.shown_author else ""
        return f"{self.shown_target} found in a video{who}"

    def when(self) -> str:
        """``"at 0:03, 0:04, 0:07"`` (first few positive moments)."""
        stamps = sorted(self.positive_timestamps)
        if not stamps:
            return ""
        shown = ", ".join(clock(t) for t in stamps[:10])
        more = f" (+{len(stamps) - 10} more)" if len(stamps) > 10 else ""
        return f"at {shown}{more}"

    def confidence_text(self) -> str:
        """The best frame's score in words: a face target's match distance against its tolerance
        ("distance 0.31 (match at or below 0.40)"), a classifier's score as a percentage."""
        if self.match_tolerance is not None:
            return score_text(self.confidence, 1.0 - self.match_tolerance, is_distance=True)
        return "unknown" if self.confidence is None else f"{self.confidence:.0%}"

    def score_label(self) -> str:
        return "Face match" if self.match_tolerance is not None else "Confidence"

    def text_lines(self) -> list[str]:
        """Plain-text body lines (sanitized), for e-mail, chat and the log."""
        lines = [self.title(), f"Video: {sanitize(self.video_url, 2000)}", f"{self.score_label()}: {self.confidence_text()}"]
        if self.partial_note:
            lines.append(f"Video truncated ({self.partial_note}): found in the part that decoded")
        if self.positive_timestamps:
            lines.append(f"Seen {self.when()}")
        if self.posted_at:
            lines.append(f"Posted: {self.posted_at.isoformat(timespec='minutes')}")
        if self.repost_of:
            lines.append(f"Repost of: {sanitize(self.repost_of, 2000)}")
        if self.reposts_since:
            lines.append(f"Also: {self.reposts_since} repost(s) of videos alerted earlier, since the previous alert")
        if self.caption:
            lines.append(f"Caption: {sanitize(self.caption, CAPTION_LIMIT)}")
        return lines

    def to_json(self, *, thumbnail: bool = True) -> dict[str, Any]:
        """The alert as JSON-safe data (sanitized text; thumbnail base64 when asked and present)."""
        stamps = sorted(float(t) for t in self.positive_timestamps)
        data: dict[str, Any] = {
            "target": self.shown_target,
            "video_url": sanitize(self.video_url, 2000),
            "platform": sanitize(self.platform, 32) or None,
            "platform_id": sanitize(self.platform_id, 128) or None,
            "author": self.shown_author or None,
            "caption": sanitize(self.caption, CAPTION_LIMIT) or None,
            "posted_at": self.posted_at.isoformat() if self.posted_at else None,
            # A face target's best score is a match distance (``match_distance``/``match_tolerance``), not a confidence.
            "confidence": None if self.confidence is None or self.match_tolerance is not None else round(float(self.confidence), 4),
            "match_distance": None
            if self.confidence is None or self.match_tolerance is None
            else round(match_distance(float(self.confidence)), 4),
            "match_tolerance": self.match_tolerance,
            "partial": self.partial_note is not None,
            "partial_note": self.partial_note,
            "positive_timestamps": [round(t, 2) for t in stamps[:MAX_TIMESTAMPS]],
            "positive_count": len(stamps),
            "best_timestamp": None if self.best_timestamp is None else round(float(self.best_timestamp), 2),
            "found_at": self.found_at.isoformat(),
            "repost_of": sanitize(self.repost_of, 2000) or None,
            "idempotency_key": self.idempotency_key,
            "reposts_since": self.reposts_since,
            "thumbnail": None,
        }
        if self.thumbnail or self.thumbnail_url:
            data["thumbnail"] = {
                "content_type": "image/jpeg",
                "url": sanitize(self.thumbnail_url, 2000) or None,
                "base64": base64.b64encode(self.thumbnail).decode("ascii") if thumbnail and self.thumbnail else None,
            }
        return data


@dataclass
class Digest:
    """Alerts for one target held back by the cooldown, sent together."""

    target: str
    alerts: list[Alert]

    def title(self) -> str:
        return f"{sanitize(self.target, 100)} found in {len(self.alerts)} videos"

    @property
    def idempotency_key(self) -> str:
        return idempotency_key("digest", self.target, *sorted(a.idempotency_key for a in self.alerts))


AlertMessage = Alert | Digest


def alerts_of(message: AlertMessage) -> list[Alert]:
    return message.alerts if isinstance(message, Digest) else [message]


def sample_alert() -> Alert:
    """A made-up alert with a real JPEG thumbnail: what ``alerts test`` sends."""
    image = np.zeros((240, 320, 3), np.uint8)
    image[:, :, 0] = np.linspace(30, 200, 320, dtype=np.uint8)[None, :]
    image[:, :, 2] = np.linspace(200, 30, 240, dtype=np.uint8)[:, None]
    cv2.putText(image, "tiktok-tracker", (40, 110), cv2.FONT_HERSHEY_SIMPLEX, 0.9, (255, 255, 255), 2)
    cv2.putText(image, "test alert", (90, 150), cv2.FONT_HERSHEY_SIMPLEX, 0.8, (255, 255, 255), 2)
    return Alert(
        target="test-target",
        video_url="https://www.tiktok.com/@example/video/7000000000000000000",
        confidence=0.93,
        positive_timestamps=[3.0, 4.0, 7.0],
        author="example",
        caption="This is a test alert from tiktok-tracker: if you read this, the channel works. #test",
        platform="tiktok",
        platform_id="7000000000000000000",
        thumbnail=jpeg_thumbnail(image, THUMBNAIL_SIDE),
        best_timestamp=4.0,
        video_key="test:7000000000000000000",
    )
