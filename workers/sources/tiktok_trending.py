"""TikTok's trending feed ("For You" recommendations) through TikTokApi."""

from __future__ import annotations

from collections.abc import Container

from workers.sources.base import BLOCKED_WARNING, Listing, Source
from workers.sources.tiktok_items import refs_from_items, tiktokapi_items


class TikTokTrending(Source):
    name = "tiktok-trending"
    description = "TikTok's trending videos (TikTokApi; needs tiktok_ms_token and a Playwright browser)."
    examples = ("tiktok:trending", "trending", "TikTok:Trending")
    not_examples = ("tiktok:trending:x", "https://www.tiktok.com/@trending")

    @classmethod
    def suitable(cls, spec: str) -> bool:
        return spec.strip().lower() in ("tiktok:trending", "trending")

    @classmethod
    def canonical(cls, spec: str) -> str:
        return "tiktok:trending"

    def list_videos(self, spec: str, settings, limit: int | None = None, *, seen: Container[str] = ()) -> Listing:
        limit = limit or settings.source_limit
        items = tiktokapi_items(settings, "trending", lambda api, n: api.trending.videos(count=n), limit)
        refs = refs_from_items(items, keep_media_url=False)
        listing = Listing(source="tiktok:trending", listed=len(refs))
        if not refs:
            listing.warnings.append(BLOCKED_WARNING)
        listing.videos = [r for r in refs if r.key not in seen]
        return listing
