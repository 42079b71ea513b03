"""A text file of video URLs, one per line (``#`` starts a comment).

Listing reads only the file: each URL's platform and id come from the
yt-dlp extractor that claims it (offline, by pattern), so a TikTok or
YouTube link is recognised as the same video whichever source found it;
metadata arrives when the video is downloaded.
"""

from __future__ import annotations

from collections.abc import Container
from functools import lru_cache

from workers.errors import SourceError
from workers.sources.base import Listing, Source, prefixed_path, spec_path
from workers.video_ref import VideoRef, stable_id

PREFIX = "urls:"
SUFFIXES = (".txt", ".lst", ".list", ".urls")
MAX_BYTES = 10 * 1024 * 1024


@lru_cache(maxsize=1)
def _extractors() -> tuple:
    from yt_dlp.extractor import gen_extractor_classes

    return tuple(ie for ie in gen_extractor_classes() if ie.ie_key() != "Generic")


def ref_from_url(url: str) -> VideoRef:
    """A reference to ``url`` without network: platform and id from the matching yt-dlp extractor."""
    for ie in _extractors():
        try:
            if ie.suitable(url):
                video_id = ie.get_temp_id(url)
                if video_id:
                    return VideoRef(platform=ie.ie_key().split(":")[0].lower(), platform_id=str(video_id), url=url)
                break
        except Exception:  # noqa: BLE001 - an extractor's pattern code must not stop the listing
            continue
    return VideoRef(platform="url", platform_id=stable_id(url), url=url)


class UrlListFile(Source):
    name = "url-list"
    description = "A text file of video URLs, one per line (urls:PATH, or a .txt/.lst/.list/.urls file)."
    examples = ("urls:/tmp/links", "urls:watchlist.csv")
    not_examples = ("urls.txt",)  # only when it exists: checked in the tests with a real file

    @classmethod
    def suitable(cls, spec: str) -> bool:
        if spec.strip().lower().startswith(PREFIX):
            return True
        path = spec_path(spec, PREFIX)
        return path.suffix.lower() in SUFFIXES and path.is_file()

    @classmethod
    def canonical(cls, spec: str) -> str:
        return prefixed_path(spec, PREFIX)

    def list_videos(self, spec: str, settings, limit: int | None = None, *, seen: Container[str] = ()) -> Listing:
        path = spec_path(spec, PREFIX)
        if not path.is_file():
            raise SourceError(f"no such URL list file: {path}")
        if path.stat().st_size > MAX_BYTES:
            raise SourceError(f"URL list {path} is larger than {MAX_BYTES // 2**20} MB")
        limit = limit or settings.source_limit
        listing = Listing(source=f"{PREFIX}{path}")
        skipped: list[int] = []
        keys: set[str] = set()
        text = path.read_text(encoding="utf-8", errors="replace")
        for number, line in enumerate(text.splitlines(), 1):
            url = line.strip()
            if not url or url.startswith("#"):
                continue
            if not url.lower().startswith(("http://", "https://")) or any(c.isspace() for c in url):
                skipped.append(number)
                continue
            ref = ref_from_url(url)
            if ref.key in keys:
                continue
            keys.add(ref.key)
            listing.offer(ref, seen, limit)
        if skipped:
            shown = ", ".join(map(str, skipped[:10])) + (" ..." if len(skipped) > 10 else "")
            listing.warnings.append(f"{len(skipped)} line(s) are not http(s) URLs, skipped (line {shown})")
        if not listing.listed:
            listing.warnings.append(f"{path} lists no URLs")
        return listing
