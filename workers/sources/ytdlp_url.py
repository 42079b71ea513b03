"""Any URL yt-dlp supports: one video, or a playlist / channel / profile (the fallback source).

YouTube Shorts, Instagram Reels, X, a direct ``.mp4`` link ... yt-dlp reads
the page (``extract_flat`` for playlists, so one request lists many videos)
and every request it makes passes the download safety policy.
"""

from __future__ import annotations

import itertools
from collections.abc import Container
from typing import Any

from workers.download.ytdl import classify_error, open_ytdl
from workers.errors import DownloadError, SourceError, SourceUnavailable, TransientDownloadError, UnsafeURL
from workers.retrying import call_with_retries
from workers.sanitize import storable
from workers.sources.base import Listing, Source
from workers.video_ref import VideoRef, ref_from_info


def _as_source_error(err: Exception) -> Exception:
    """Download errors as source errors; ``UnsafeURL`` stays itself (a refusal, not a listing problem)."""
    if isinstance(err, UnsafeURL):
        return err
    if isinstance(err, TransientDownloadError):
        return SourceUnavailable(str(err))
    if isinstance(err, DownloadError):
        return SourceError(str(err))
    return err


def list_with_ytdlp(url: str, settings, limit: int, seen: Container[str] = ()) -> tuple[list[VideoRef], int]:
    """The videos yt-dlp finds at ``url`` (one, or a playlist's first ``limit`` unseen ones),
    and how many it listed in all (seen ones included).

    Raises ``SourceError`` (final) or ``SourceUnavailable`` (network trouble,
    after ``settings.download_retries`` retries).
    """

    def once() -> tuple[list[VideoRef], int]:
        with open_ytdl(settings, extract_flat="in_playlist", noplaylist=False, lazy_playlist=True) as ydl:
            try:
                info = ydl.extract_info(url, download=False, process=False)
                if info and info.get("_type") in ("url", "url_transparent") and info.get("url") != url:
                    info = ydl.extract_info(info["url"], download=False, process=False)
                return _refs(info, url, limit, seen)
            except (SourceError, SourceUnavailable):
                raise
            except Exception as err:  # noqa: BLE001 - yt-dlp raises many kinds
                raise _as_source_error(classify_error(err, url, ydl)) from None

    return call_with_retries(
        once,
        retries=settings.download_retries,
        backoff=settings.download_retry_backoff,
        retry_on=(SourceUnavailable,),
        what=f"listing {url}",
    )


def _refs(info: dict[str, Any] | None, url: str, limit: int, seen: Container[str]) -> tuple[list[VideoRef], int]:
    if not info:
        return [], 0
    if info.get("_type") not in ("playlist", "multi_video"):
        ref = ref_from_info(storable(info), fallback_url=url)
        return ([] if ref.key in seen else [ref]), 1
    refs: list[VideoRef] = []
    listed = 0
    # Playlists are walked lazily; stop after a bounded number of seen entries.
    for entry in itertools.islice(info.get("entries") or [], limit * 20):
        if not isinstance(entry, dict):
            continue
        if entry.get("_type") == "playlist":
            continue  # nested playlists (a channel's tabs) are not expanded
        ref = ref_from_info(storable(entry))
        if not ref.url:
            continue
        listed += 1
        if ref.key in seen:
            continue
        refs.append(ref)
        if len(refs) >= limit:
            break
    return refs, listed


class YtDlpUrl(Source):
    name = "url"
    description = "Any http(s) URL yt-dlp supports: one video, or a playlist, channel or profile."
    examples = (
        "https://www.youtube.com/shorts/abc123",
        "https://www.instagram.com/reel/xyz/",
        "http://127.0.0.1:8000/video.mp4",
    )
    not_examples = ("ftp://example.com/a.mp4", "file:///etc/passwd", "trending")

    @classmethod
    def suitable(cls, spec: str) -> bool:
        return spec.strip().lower().startswith(("http://", "https://"))

    def list_videos(self, spec: str, settings, limit: int | None = None, *, seen: Container[str] = ()) -> Listing:
        url = spec.strip()
        limit = limit or settings.source_limit
        refs, listed = list_with_ytdlp(url, settings, limit, seen)
        listing = Listing(source=url, videos=refs, listed=listed)
        if not listed:
            listing.warnings.append("0 videos found at this URL")
        return listing
