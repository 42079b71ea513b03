"""Sources: where videos come from (TikTok trending, users, hashtags, any yt-dlp URL,
URL lists, folders, Zeeschuimer and 4CAT exports). One module per source; ``registry`` picks the one for a spec.
No Celery, no database."""

from workers.sources.base import BLOCKED_WARNING, Listing, Source
from workers.sources.registry import SOURCES, canonical_spec, list_videos, source_for

__all__ = [
    "BLOCKED_WARNING",
    "Listing",
    "SOURCES",
    "Source",
    "canonical_spec",
    "list_videos",
    "source_for",
]
