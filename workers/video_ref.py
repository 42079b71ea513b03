"""A reference to one video on a platform (or a local file), with the metadata its source
listed: the small record that sources produce and downloads, storage and alerts consume.

Metadata is kept as the platform gave it (only NUL characters, which Postgres cannot store,
are dropped, and sizes are capped); display and export pass it through
``workers.sanitize``. Nothing from metadata ever becomes a path.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

MAX_TEXT = 20_000  # characters of a caption or name kept (TikTok allows 4,000)


MAX_ID = 128  # the videos.platform_id column


MAX_HASHTAGS = 100


COUNT_FIELDS = ("views", "likes", "comments", "shares", "reposts", "saves")


_HASHTAG = re.compile(r"#(\w{1,100})", re.UNICODE)
_URL = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")


def is_url(source: str) -> bool:
    """Whether a video's source (as submitted) is a URL (any scheme), not a local path."""
    return bool(_URL.match(source))


def canonical_source(source: str) -> str:
    """The one rule for a submitted source's identity (``scan``, ``enqueue``, watches): a URL
    as given; a local path absolute, ``~`` expanded, ``..`` and symlinks resolved. So
    ``scan data/x.mp4`` and ``enqueue ./data/x.mp4`` are the same video."""
    if is_url(source):
        return source
    return str(Path(source).expanduser().resolve())


def source_key(source: str) -> str:
    """What makes a stored source unique (``videos.source_key``): SHA-256 of its canonical form
    as stored (a long URL or path does not fit a database index; its hash does)."""
    return hashlib.sha256(source.encode("utf-8", "surrogatepass")).hexdigest()


def clean_text(value: Any, limit: int = MAX_TEXT) -> str | None:
    """Metadata text as stored: a str without NUL characters, at most ``limit`` characters."""
    if value is None:
        return None
    text = value if isinstance(value, str) else str(value)
    text = text.replace("\x00", "")[:limit]
    return text or None


def clean_count(value: Any) -> int | None:
    """A non-negative integer count, or None (TikTok sends numbers, strings, or nothing)."""
    if isinstance(value, bool) or value is None:
        return None
    try:
        number = int(float(value))
    except (TypeError, ValueError, OverflowError):
        return None
    return number if 0 <= number < 2**63 else None


def parse_time(value: Any) -> datetime | None:
    """A posted time from a Unix timestamp (s or ms), ``YYYYMMDD`` or ISO text; UTC."""
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=timezone.utc)
    try:
        if isinstance(value, str) and re.fullmatch(r"\d{8}", value):
            return datetime.strptime(value, "%Y%m%d").replace(tzinfo=timezone.utc)
        if isinstance(value, (int, float)) or (isinstance(value, str) and re.fullmatch(r"\d+(\.\d+)?", value)):
            seconds = float(value)
            if seconds > 1e11:  # milliseconds
                seconds /= 1000
            return datetime.fromtimestamp(seconds, tz=timezone.utc)
        if isinstance(value, str):
            parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
            return parsed if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)
    except (ValueError, OverflowError, OSError):
        return None
    return None


def hashtags_in(caption: str | None) -> list[str]:
    """``#tags`` written in a caption, in order, without the ``#``, deduplicated."""
    return _unique(_HASHTAG.findall(caption or ""))


def _unique(tags) -> list[str]:
    out: list[str] = []
    for tag in tags:
        tag = clean_text(tag, 100)
        if tag and tag not in out:
            out.append(tag)
    return out[:MAX_HASHTAGS]


def stable_id(text: str) -> str:
    """A short stable id for things without one (a URL, a file)."""
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:32]


@dataclass
class VideoRef:
    """One video a source found, with its metadata.

    ``url`` is what a journalist opens (the post's page, or a file path);
    ``media_url`` a direct media URL when the listing gave one (downloads use
    ``download_url``: the media URL when known, else ``url``). ``key``
    (``platform:platform_id``) is the identity used to skip videos seen before.
    """

    platform: str
    platform_id: str
    url: str
    author: str | None = None
    caption: str | None = None
    hashtags: list[str] = field(default_factory=list)
    posted_at: datetime | None = None
    counts: dict[str, int] = field(default_factory=dict)
    media_url: str | None = None
    duration: float | None = None

    def __post_init__(self) -> None:
        self.platform = (clean_text(self.platform, 32) or "unknown").lower()
        self.platform_id = clean_text(self.platform_id, MAX_ID) or stable_id(self.url)
        self.url = clean_text(self.url, 4096) or ""
        self.author = clean_text(self.author, 512)
        self.caption = clean_text(self.caption)
        self.hashtags = _unique([*(self.hashtags or []), *hashtags_in(self.caption)])
        self.posted_at = parse_time(self.posted_at)
        self.counts = {k: n for k, v in (self.counts or {}).items() if (n := clean_count(v)) is not None}
        self.media_url = clean_text(self.media_url, 4096)
        try:
            self.duration = float(self.duration) if self.duration is not None else None
        except (TypeError, ValueError):
            self.duration = None

    @property
    def key(self) -> str:
        return f"{self.platform}:{self.platform_id}"

    @property
    def download_url(self) -> str:
        return self.media_url or self.url

    @property
    def local_path(self) -> Path | None:
        """The file of a folder source's video (platform ``file``); None for remote videos."""
        return Path(self.url) if self.platform == "file" else None

    def to_json(self) -> dict[str, Any]:
        """JSON-safe dict (for ``videos.ref`` and task messages); ``from_json`` reverses it."""
        data = asdict(self)
        data["posted_at"] = self.posted_at.isoformat() if self.posted_at else None
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> VideoRef:
        names = cls.__dataclass_fields__.keys()
        return cls(**{k: v for k, v in data.items() if k in names})


def ref_from_info(info: dict[str, Any], fallback_url: str | None = None) -> VideoRef:
    """A ``VideoRef`` from a yt-dlp info dict (full or ``extract_flat`` entry)."""
    extractor = info.get("extractor_key") or info.get("ie_key") or info.get("extractor") or "url"
    platform = str(extractor).split(":")[0].lower()
    if platform == "generic":
        platform = "url"
    url = info.get("webpage_url") or info.get("original_url") or info.get("url") or fallback_url or ""
    video_id = info.get("id") or stable_id(url)
    if platform == "url":
        video_id = stable_id(url)  # the generic extractor's id is the file name: not unique
    counts = {
        "views": info.get("view_count"),
        "likes": info.get("like_count"),
        "comments": info.get("comment_count"),
        "reposts": info.get("repost_count"),
        "saves": info.get("save_count"),
    }
    return VideoRef(
        platform=platform,
        platform_id=str(video_id),
        url=url,
        author=info.get("uploader") or info.get("channel") or info.get("creator") or info.get("uploader_id"),
        caption=info.get("description") or info.get("title"),
        hashtags=list(info.get("tags") or []),
        posted_at=info.get("timestamp") or info.get("upload_date"),
        counts=counts,
        duration=info.get("duration"),
    )
