"""CSV research exports: 4CAT's TikTok dataset as CSV, in every form it has had, and
Zeeschuimer's own CSV export (which uses 4CAT's columns).

Read from the tools' sources (4CAT ``datasources/tiktok/search_tiktok.py``,
``datasources/tiktok_comments/search_tiktok_comments.py``,
``webtool/views/views_dataset.py`` and ``backend/lib/search.py`` at 227bead1 and
in their history; Zeeschuimer ``popup/interface.js`` and ``modules/tiktok.js``
at ffa2781):

- 4CAT's "download as CSV" of a TikTok dataset maps each item (``map_item``)
  and writes it with Python's ``csv.DictWriter``: comma-separated, fields
  quoted when needed (a caption or the stickers column may run over several
  lines), rows ending in ``\\r\\n``. Columns today: ``collected_from_url, id,
  thread_id, author, author_full, author_followers, author_likes,
  author_videos, author_avatar, body, stickers, timestamp, unix_timestamp,
  is_duet, is_ad, is_paid_partnership, is_sensitive, is_photosensitive,
  music_name, music_id, music_url, music_thumbnail, music_author, video_url,
  tiktok_url, thumbnail_url, likes, comments, shares, plays, hashtags,
  challenges, diversification_labels, location_created, effects, warning``.
  Until 2023-01-10 ``tiktok_url`` was ``https://tiktok.com/@user/video/ID``
  (no ``www``: yt-dlp's TikTok extractor does not take it), with ``author_id``
  after ``author_full`` and ``stickers`` after ``hashtags``.
- Before 2022-10 4CAT stored TikTok datasets as CSV (``items_to_csv``: rows
  ending in ``\\n``, ``unix_timestamp`` appended as the last column,
  ``timestamp`` as ``YYYY-MM-DD HH:MM:SS``); 2021: ``id, thread_id, author,
  author_full, author_id, author_followers, subject, body, timestamp, is_duet,
  music_name, music_id, music_url, video_url, tiktok_url, thumbnail_url,
  likes, comments, shares, plays, hashtags``; its 2020 scraper wrote
  ``amount_likes, amount_comments, amount_shares, amount_plays`` instead.
- A comments dataset has ``id`` (the comment's) but no ``tiktok_url``:
  ``..., post_id, post_url, post_body, comment_url, ...``. Other 4CAT
  datasets (Douyin: ``id``, ``video_url``) have no ``tiktok_url`` either.
- Pseudonymised datasets have every ``author*`` column hashed (BLAKE2b, 48 hex
  digits; anonymised: ``REDACTED``); ``tiktok_url`` then holds the hash, or,
  in CSV datasets before 2022-10, the real name.
- Zeeschuimer's CSV export (2026-04) has 4CAT's columns, separated by ``;``,
  rows ending in ``\\n``.

Each row's page URL is built from ``author`` and ``id``, never read from
``tiktok_url`` (see ``tiktok_items.page_url``).
"""

from __future__ import annotations

import csv
from collections.abc import Iterator
from pathlib import Path

from workers.sanitize import storable
from workers.sources.export_items import COMMENTS, NO_VIDEOS, ExportItem, NotVideos, video_id_problem
from workers.sources.tiktok_items import page_url, tiktok_handle
from workers.video_ref import VideoRef

VIDEO_COLUMNS = ("id", "tiktok_url")  # every TikTok video mapping 4CAT has had
COMMENT_COLUMNS = ("post_id", "comment_url")
COUNTS = {
    "views": ("plays", "amount_plays"),
    "likes": ("likes", "amount_likes"),
    "comments": ("comments", "amount_comments"),
    "shares": ("shares", "amount_shares"),
}


def read_csv(path: Path) -> Iterator[ExportItem]:
    """Each row of ``path`` as an item, numbered by the line it starts on.

    Raises ``NotVideos`` when the header shows another kind of file."""
    with open(path, encoding="utf-8-sig", errors="replace", newline="") as fh:
        delimiter = _delimiter(fh.readline())
        fh.seek(0)
        reader = csv.DictReader((line.replace("\x00", "") for line in fh), delimiter=delimiter)
        columns = set(reader.fieldnames or ())
        if not columns:
            raise NotVideos("an empty file")
        if not set(VIDEO_COLUMNS) <= columns:
            if "id" in columns and set(COMMENT_COLUMNS) & columns:
                raise NotVideos(f"{COMMENTS}: {NO_VIDEOS}")
            missing = " or ".join(c for c in VIDEO_COLUMNS if c not in columns)
            raise NotVideos(f"not a TikTok video export from 4CAT or Zeeschuimer: no {missing} column")
        start = reader.line_num + 1
        try:
            for row in reader:
                yield _item(start, row)
                start = reader.line_num + 1
        except csv.Error as exc:
            yield ExportItem(start, problem=f"unreadable CSV ({exc}); the rest of the file is skipped")


def _delimiter(header: str) -> str:
    """``;`` for Zeeschuimer's CSV, ``,`` for 4CAT's: the one that makes an ``id`` column."""
    return ";" if "id" in next(csv.reader([header], delimiter=";"), []) and "," not in header else ","


def _item(line: int, row: dict) -> ExportItem:
    if None in row:
        return ExportItem(line, problem=f"{len(row[None])} more cell(s) than columns")
    row = storable(row)
    video_id = (row.get("id") or "").strip()
    problem = video_id_problem(video_id)
    if problem:
        return ExportItem(line, problem=problem)
    handle = tiktok_handle(row.get("author"))  # None when 4CAT pseudonymised or anonymised it
    tags = [t.strip().lstrip("#") for column in ("hashtags", "challenges") for t in (row.get(column) or "").split(",") if t.strip()]
    ref = VideoRef(
        platform="tiktok",
        platform_id=video_id,
        url=page_url(handle, video_id),
        author=handle,
        caption=row.get("body"),
        hashtags=tags,
        posted_at=(row.get("unix_timestamp") or row.get("timestamp") or "").strip() or None,
        counts={field: next((row[c] for c in columns if row.get(c)), None) for field, columns in COUNTS.items()},
    )
    return ExportItem(line, ref=ref)
