"""Safe downloads: the URL safety policy and fetching through yt-dlp (no Celery, no database)."""

from workers.download.fetch import FetchedVideo, fetch_ref, fetch_video, new_stem
from workers.download.safety import UrlPolicy, address_problem, check_url

__all__ = ["FetchedVideo", "UrlPolicy", "address_problem", "check_url", "fetch_ref", "fetch_video", "new_stem"]
