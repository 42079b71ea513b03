"""A TikTok hashtag's videos: TikTokApi when configured, yt-dlp's (unmaintained) tag extractor otherwise.

Best effort: TikTok guards hashtag pages hardest, and yt-dlp marks its
``tiktok:tag`` extractor as not working, so the fallback comes with a warning.
"""

from __future__ import annotations

import re
from collections.abc import Container
from urllib.parse import quote, unquote

from workers.errors import SourceError
from workers.sources.base import BLOCKED_WARNING, Listing, Source
from workers.sources.tiktok_items import refs_from_items, tiktokapi_items
from workers.sources.ytdlp_url import list_with_ytdlp

_TAG_URL = re.compile(r"https?://(?:www\.)?tiktok\.com/tag/([^/?#&]+)", re.IGNORECASE)
_PREFIXES = ("tiktok:tag:", "tiktok:hashtag:", "#")


def tag_name(spec: str) -> str | None:
    """The hashtag a spec names (``#cats``, ``tiktok:tag:cats``, a /tag/ URL), without ``#``."""
    spec = spec.strip()
    match = _TAG_URL.match(spec)
    if match:
        name = unquote(match.group(1))
    else:
        prefix = next((p for p in _PREFIXES if spec.lower().startswith(p)), None)
        if prefix is None:
            return None
        name = spec[len(prefix) :].lstrip("#")
    return name if re.fullmatch(r"\w{1,100}", name) else None


class TikTokHashtag(Source):
    name = "tiktok-hashtag"
    description = "A TikTok hashtag's videos (TikTokApi when configured; best effort)."
    examples = ("#cats", "tiktok:tag:cats", "tiktok:hashtag:fyp", "https://www.tiktok.com/tag/cats")
    not_examples = ("#", "tiktok:tag:", "#two words", "https://www.tiktok.com/@cats")

    @classmethod
    def suitable(cls, spec: str) -> bool:
        return tag_name(spec) is not None

    @classmethod
    def canonical(cls, spec: str) -> str:
        return f"tiktok:tag:{tag_name(spec)}"

    def list_videos(self, spec: str, settings, limit: int | None = None, *, seen: Container[str] = ()) -> Listing:
        name = tag_name(spec)
        if name is None:
            raise SourceError(f"not a hashtag: {spec!r}")
        limit = limit or settings.source_limit
        listing = Listing(source=f"tiktok:tag:{name}")
        if settings.tiktok_ms_token:
            items = tiktokapi_items(settings, f"hashtag #{name}", lambda api, n: api.hashtag(name=name).videos(count=n), limit)
            refs = refs_from_items(items, keep_media_url=False)
            listing.listed = len(refs)
        else:
            listing.warnings.append("no tiktok_ms_token set: trying yt-dlp's TikTok tag extractor, which yt-dlp marks as broken")
            refs, listing.listed = list_with_ytdlp(f"https://www.tiktok.com/tag/{quote(name)}", settings, limit, seen)
        if not listing.listed:
            listing.warnings.append(BLOCKED_WARNING)
        listing.videos = [r for r in refs if r.key not in seen][:limit]
        return listing
