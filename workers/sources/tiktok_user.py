"""A TikTok user's videos, newest first, through yt-dlp's ``tiktok:user`` extractor."""

from __future__ import annotations

import re
from collections.abc import Container

from workers.errors import SourceError
from workers.sources.base import BLOCKED_WARNING, Listing, Source
from workers.sources.ytdlp_url import list_with_ytdlp

_PROFILE_URL = re.compile(r"https?://(?:www\.|m\.)?tiktok\.com/@([\w.-]+)/?(?:[?#].*)?$", re.IGNORECASE)
_NAME = re.compile(r"[\w.-]{1,64}")
_SEC_UID = re.compile(r"MS4wLjABAAAA[\w-]{64}")


def user_name(spec: str) -> str | None:
    """The user a spec names (``@name``, ``tiktok:user:name``, a profile URL), or None."""
    spec = spec.strip()
    match = _PROFILE_URL.match(spec)
    if match:
        return match.group(1)
    lower = spec.lower()
    for prefix in ("tiktok:user:", "tiktokuser:", "@"):
        if lower.startswith(prefix):
            name = spec[len(prefix) :].lstrip("@")
            return name if _NAME.fullmatch(name) or _SEC_UID.fullmatch(name) else None
    return None


class TikTokUser(Source):
    name = "tiktok-user"
    description = "A TikTok user's videos (yt-dlp; a secUid works too for hard-to-find accounts)."
    examples = ("@someone", "tiktok:user:some.one", "https://www.tiktok.com/@some_one", "https://tiktok.com/@x?lang=en")
    not_examples = ("https://www.tiktok.com/@someone/video/7312345678901234567", "@", "@bad/name")

    @classmethod
    def suitable(cls, spec: str) -> bool:
        return user_name(spec) is not None

    @classmethod
    def canonical(cls, spec: str) -> str:
        return f"tiktok:user:{user_name(spec)}"

    def list_videos(self, spec: str, settings, limit: int | None = None, *, seen: Container[str] = ()) -> Listing:
        name = user_name(spec)
        if name is None:
            raise SourceError(f"not a TikTok user: {spec!r}")
        url = f"tiktokuser:{name}" if _SEC_UID.fullmatch(name) else f"https://www.tiktok.com/@{name}"
        refs, listed = list_with_ytdlp(url, settings, limit or settings.source_limit, seen)
        listing = Listing(source=f"tiktok:user:{name}", videos=refs, listed=listed)
        if not listed:
            listing.warnings.append(BLOCKED_WARNING)
        return listing
