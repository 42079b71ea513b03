"""A TikTok-shaped JSON listing, from a URL or a file.

What TikTok's web API answers (``{"itemList": [...]}``), a saved copy of it,
an export of TikTokApi's ``as_dict`` items, or the app API's ``aweme_list``.
Items that carry a direct media URL (``video.playAddr``) are downloaded from
it, others from their page. A listing with no items is reported as TikTok
blocking us, the way TikTok itself signals it.
"""

from __future__ import annotations

import json
from collections.abc import Container
from pathlib import Path
from urllib.parse import urlsplit

from workers.download.ytdl import classify_error, open_ytdl
from workers.errors import DownloadError, SourceError, SourceUnavailable, TransientDownloadError, UnsafeURL
from workers.retrying import call_with_retries
from workers.sources.base import BLOCKED_WARNING, Listing, Source, prefixed_path, without_prefix
from workers.sources.tiktok_items import items_in, refs_from_items

PREFIX = "tiktok-json:"
MAX_BYTES = 20 * 1024 * 1024


def _is_url(text: str) -> bool:
    return text.lower().startswith(("http://", "https://"))


def _fetch(url: str, settings) -> bytes:
    def once() -> bytes:
        with open_ytdl(settings) as ydl:
            try:
                with ydl.urlopen(url) as response:
                    data = response.read(MAX_BYTES + 1)
            except Exception as err:  # noqa: BLE001 - yt-dlp networking raises many kinds
                mapped = classify_error(err, url, ydl)
                if isinstance(mapped, UnsafeURL):
                    raise mapped from None
                if isinstance(mapped, TransientDownloadError):
                    raise SourceUnavailable(f"JSON listing {mapped}") from None
                if isinstance(mapped, DownloadError):
                    raise SourceError(f"JSON listing {mapped}") from None
                raise mapped from None
        if len(data) > MAX_BYTES:
            raise SourceError(f"JSON listing {url} is larger than {MAX_BYTES // 2**20} MB")
        return data

    return call_with_retries(
        once,
        retries=settings.download_retries,
        backoff=settings.download_retry_backoff,
        retry_on=(SourceUnavailable,),
        what=f"listing {url}",
    )


class TikTokJsonListing(Source):
    name = "tiktok-json"
    description = "A TikTok-shaped JSON listing ({'itemList': [...]}) from a URL or file."
    examples = ("tiktok-json:http://127.0.0.1:8000/list", "http://127.0.0.1:8000/item_list.json")
    not_examples = ("http://127.0.0.1:8000/video.mp4", "tiktok:trending")

    @classmethod
    def suitable(cls, spec: str) -> bool:
        if spec.strip().lower().startswith(PREFIX):
            return True
        target = without_prefix(spec, PREFIX)
        if _is_url(target):
            return urlsplit(target).path.lower().endswith(".json")
        return target.lower().endswith(".json") and Path(target).is_file()

    @classmethod
    def canonical(cls, spec: str) -> str:
        target = without_prefix(spec, PREFIX)
        return PREFIX + target if _is_url(target) else prefixed_path(spec, PREFIX)

    def list_videos(self, spec: str, settings, limit: int | None = None, *, seen: Container[str] = ()) -> Listing:
        target = without_prefix(spec, PREFIX)
        limit = limit or settings.source_limit
        if _is_url(target):
            data = _fetch(target, settings)
        else:
            path = Path(target).expanduser()
            if not path.is_file():
                raise SourceError(f"no such JSON listing file: {target}")
            if path.stat().st_size > MAX_BYTES:
                raise SourceError(f"JSON listing {target} is larger than {MAX_BYTES // 2**20} MB")
            data = path.read_bytes()
        try:
            payload = json.loads(data.decode("utf-8", errors="replace"))
        except ValueError as err:
            raise SourceError(f"{target} is not JSON: {err}") from None
        refs = refs_from_items(items_in(payload), keep_media_url=True)
        listing = Listing(source=f"{PREFIX}{target}", listed=len(refs))
        if not refs:
            listing.warnings.append(BLOCKED_WARNING)
        listing.videos = [r for r in refs if r.key not in seen][:limit]
        return listing
