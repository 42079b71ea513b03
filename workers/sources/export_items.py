"""What a research-export reader yields (``export_ndjson``, ``export_csv``): one item per
line or row, with its video or the reason it has none, and how a whole file that holds
no videos is named ("a TikTok comments export: no videos in it")."""

from __future__ import annotations

from dataclasses import dataclass

from workers.video_ref import VideoRef

COMMENTS = "a TikTok comments export"
NO_VIDEOS = "no videos in it"


class NotVideos(Exception):
    """The file as a whole holds no TikTok videos; the message says what it is instead."""


@dataclass
class ExportItem:
    """One item of an export file: its video (``ref``), or ``problem``, why it gives none.

    ``kind`` names a file of such items when the item is readable but not a TikTok video
    (``COMMENTS``); ``captured``: when the tool captured it (ms since the epoch), so that
    of an item captured twice the latest counts are kept.
    """

    line: int
    ref: VideoRef | None = None
    problem: str | None = None
    kind: str | None = None
    captured: float | None = None


def video_id_problem(video_id: object) -> str | None:
    """Why ``video_id`` is not a TikTok video id (digits), or None when it is one."""
    text = "" if video_id is None else str(video_id).strip()
    if text.isascii() and text.isdigit():
        return None
    return f"no TikTok video id ({text[:40]!r})" if text else "no TikTok video id"
