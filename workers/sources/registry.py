"""Which source handles a spec: the first suitable one, the generic yt-dlp URL source last."""

from __future__ import annotations

from collections.abc import Container

from workers.errors import SourceError
from workers.sources.base import Listing, Source
from workers.sources.folder import VideoFolder
from workers.sources.fourcat import FourCatExport
from workers.sources.tiktok_hashtag import TikTokHashtag
from workers.sources.tiktok_json import TikTokJsonListing
from workers.sources.tiktok_trending import TikTokTrending
from workers.sources.tiktok_user import TikTokUser
from workers.sources.url_list import UrlListFile
from workers.sources.ytdlp_url import YtDlpUrl
from workers.sources.zeeschuimer import ZeeschuimerExport

# Order matters: specific before general; YtDlpUrl takes any http(s) URL.
SOURCES: tuple[type[Source], ...] = (
    TikTokTrending,
    TikTokHashtag,
    TikTokUser,
    TikTokJsonListing,
    ZeeschuimerExport,
    FourCatExport,
    UrlListFile,
    VideoFolder,
    YtDlpUrl,
)


def source_for(spec: str) -> Source:
    """The source that handles ``spec``; ``SourceError`` listing the accepted forms when none does."""
    if not isinstance(spec, str) or not spec.strip():
        raise SourceError("empty source")
    for cls in SOURCES:
        if cls.suitable(spec):
            return cls()
    forms = "; ".join(f"{cls.examples[0]} ({cls.description})" for cls in SOURCES if cls.examples)
    raise SourceError(f"no source handles {spec!r}; use one of: {forms}")


def canonical_spec(spec: str) -> str:
    """``spec`` as watches store it (see ``Source.canonical``); ``SourceError`` when no source handles it."""
    source = source_for(spec)
    canonical = source.canonical(spec)
    if type(source_for(canonical)) is not type(source):  # pragma: no cover - a source's canonical() is wrong
        raise SourceError(f"{spec!r}: cannot be stored as a watch ({canonical!r} means something else)")
    return canonical


def list_videos(spec: str, settings, limit: int | None = None, *, seen: Container[str] = ()) -> Listing:
    """List the new videos of ``spec`` with the source that handles it (see ``Source.list_videos``).

    ``seen``: keys (``VideoRef.key``) already known, skipped before ``limit``
    counts; anything with ``in`` works, e.g. an object querying the database.
    """
    return source_for(spec).list_videos(spec, settings, limit, seen=seen)
