"""4CAT's TikTok dataset export (``4cat:FILE.csv``, or a folder of them).

4CAT, the Digital Methods Initiative's capture and analysis toolkit, turns
imported TikTok items into a CSV with one row per video: ``id``, ``author``,
``body`` (the caption), ``timestamp`` (a date-time, or Unix seconds),
``hashtags`` (comma-separated), ``video_url`` (a CDN link that expires),
``tiktok_url`` (the page), and counts (``plays``, ``likes``, ``comments``,
``shares``). Each row becomes a reference to the video's page (built from
author and id when ``tiktok_url`` is missing), with its metadata.
"""

from __future__ import annotations

import csv
from collections.abc import Iterator
from pathlib import Path

from workers.sources.export_files import ExportFileSource
from workers.sources.tiktok_items import PAGE_URL
from workers.video_ref import VideoRef

REQUIRED = ("id",)


class FourCatExport(ExportFileSource):
    name = "4cat"
    description = "A 4CAT TikTok dataset export (4cat:FILE.csv), or a folder where such exports land."
    examples = ("4cat:/data/exports/tiktok-dataset.csv", "4cat:~/Downloads/4cat")
    not_examples = ("4cat.csv", "https://4cat.example.org/results/x.csv")
    prefix = "4cat:"
    suffixes = (".csv",)

    def items(self, path: Path) -> Iterator[tuple[int, VideoRef | str]]:
        with open(path, encoding="utf-8-sig", errors="replace", newline="") as fh:
            reader = csv.DictReader(line.replace("\x00", "") for line in fh)
            missing = [c for c in REQUIRED if c not in (reader.fieldnames or [])]
            if missing:
                yield 1, f"not a 4CAT TikTok export: no {', '.join(missing)} column"
                return
            try:
                for row in reader:
                    yield reader.line_num, _ref(row)
            except csv.Error as exc:
                yield reader.line_num, f"unreadable CSV ({exc}); the rest of the file is skipped"


def _ref(row: dict) -> VideoRef | str:
    if None in row:
        return f"{len(row[None])} more cell(s) than columns"
    video_id = (row.get("id") or "").strip()
    if not video_id.isdigit():
        return f"no TikTok video id ({video_id[:40]!r})" if video_id else "no TikTok video id"
    author = (row.get("author") or "").strip() or None
    page = (row.get("tiktok_url") or "").strip()
    if not page.startswith(("http://", "https://")):
        page = PAGE_URL.format(author=author or "_", id=video_id)
    tags = [t.strip().lstrip("#") for t in (row.get("hashtags") or "").split(",") if t.strip()]
    return VideoRef(
        platform="tiktok",
        platform_id=video_id,
        url=page,
        author=author,
        caption=row.get("body"),
        hashtags=tags,
        posted_at=(row.get("unix_timestamp") or row.get("timestamp") or "").strip() or None,
        counts={"views": row.get("plays"), "likes": row.get("likes"), "comments": row.get("comments"), "shares": row.get("shares")},
    )
