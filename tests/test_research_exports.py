"""Zeeschuimer and 4CAT exports as sources: fixtures made here from the documented
formats (invented accounts and captions), a malformed line reported by number."""

from __future__ import annotations

import csv
import json
import os
import time

from workers.pipeline.submit import list_exports
from workers.settings import Settings
from workers.sources import list_videos, source_for
from workers.sources.fourcat import FourCatExport
from workers.sources.zeeschuimer import ZeeschuimerExport


def _item(n: int, author: str, desc: str) -> dict:
    """A TikTok web-API item, as Zeeschuimer captures it (fields invented)."""
    return {
        "id": f"73000000000000000{n:02d}",
        "desc": desc,
        "createTime": 1700000000 + n,
        "author": {"uniqueId": author, "nickname": author.title(), "id": str(n)},
        "stats": {"playCount": 1000 * n, "diggCount": 10 * n, "commentCount": n, "shareCount": 2 * n},
        "challenges": [{"title": "example"}],
        "video": {"playAddr": f"https://cdn.example.org/{n}.mp4?x-expires=1", "duration": 12},
    }


def _envelope(item: dict, platform: str = "tiktok.com") -> str:
    return json.dumps(
        {
            "nav_index": "1:1:0",
            "item_id": item["id"],
            "timestamp_collected": 1700000100000,
            "source_platform": platform,
            "source_platform_url": "https://www.tiktok.com/foryou",
            "source_url": "https://www.tiktok.com/api/recommend/item_list/",
            "user_agent": "test",
            "data": item,
        }
    )


def _settings(**kw) -> Settings:
    return Settings(_env_file=None, folder_settle_seconds=0, **kw)


def test_zeeschuimer_items_become_page_urls_with_metadata_and_a_bad_line_is_named(tmp_path):
    export = tmp_path / "zeeschuimer-export-tiktok.ndjson"
    export.write_text(
        "\n".join(
            [
                _envelope(_item(1, "river.otter", "Morning swim #otters")),
                _envelope(_item(2, "paper.crane", "Folding lesson")),
                '{"nav_index": "1:1:0", "data": {"id": "7300000000000000003", ',  # cut off mid-line
                _envelope({"id": "99", "caption": "a post"}, platform="instagram.com"),
                _envelope(_item(4, "river.otter", "Evening swim")),
            ]
        )
        + "\n"
    )
    assert isinstance(source_for(f"zeeschuimer:{export}"), ZeeschuimerExport)
    listing = list_videos(f"zeeschuimer:{export}", _settings())
    assert [v.url for v in listing] == [
        "https://www.tiktok.com/@river.otter/video/7300000000000000001",
        "https://www.tiktok.com/@paper.crane/video/7300000000000000002",
        "https://www.tiktok.com/@river.otter/video/7300000000000000004",
    ]
    first = listing.videos[0]
    assert (first.platform, first.author, first.caption) == ("tiktok", "river.otter", "Morning swim #otters")
    assert first.hashtags == ["example", "otters"] and first.counts["views"] == 1000 and first.posted_at.year == 2023
    assert first.media_url is None  # captured CDN links expire: the page is downloaded
    (warning,) = listing.warnings
    assert (
        "2 item(s) skipped" in warning
        and "line 3: not JSON" in warning
        and "line 4: an item of instagram.com, not a TikTok video" in warning
    )


def test_4cat_rows_become_page_urls_with_metadata_and_a_bad_row_is_named(tmp_path):
    export = tmp_path / "tiktok-dataset.csv"
    columns = [
        "id",
        "thread_id",
        "author",
        "author_full",
        "body",
        "timestamp",
        "video_url",
        "tiktok_url",
        "likes",
        "comments",
        "shares",
        "plays",
        "hashtags",
    ]
    rows = [
        [
            "7300000000000000011",
            "7300000000000000011",
            "garden.notes",
            "Garden Notes",
            "Tomatoes, day 40 #garden",
            "2023-11-14 22:13:20",
            "https://cdn.example.org/a.mp4",
            "https://www.tiktok.com/@garden.notes/video/7300000000000000011",
            "12",
            "3",
            "1",
            "400",
            "garden,tomatoes",
        ],
        ["not-an-id", "", "someone", "", "broken row", "", "", "", "", "", "", "", ""],
        [
            "7300000000000000012",
            "7300000000000000012",
            "night.bus",
            "Night Bus",
            "Last stop",
            "1700000000",
            "",
            "",
            "5",
            "0",
            "0",
            "90",
            "",
        ],
    ]
    with open(export, "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(columns)
        writer.writerows(rows)
    listing = list_videos(f"4cat:{export}", _settings())
    assert isinstance(source_for(f"4cat:{export}"), FourCatExport)
    assert [v.url for v in listing] == [
        "https://www.tiktok.com/@garden.notes/video/7300000000000000011",
        "https://www.tiktok.com/@night.bus/video/7300000000000000012",  # built from author and id
    ]
    first, second = listing.videos
    assert first.key == "tiktok:7300000000000000011" and first.caption == "Tomatoes, day 40 #garden"
    assert first.hashtags == ["garden", "tomatoes"] and first.counts == {"views": 400, "likes": 12, "comments": 3, "shares": 1}
    assert first.posted_at.isoformat() == "2023-11-14T22:13:20+00:00" and second.posted_at.year == 2023
    (warning,) = listing.warnings
    assert "1 item(s) skipped" in warning and "line 3: no TikTok video id" in warning


def test_a_folder_where_exports_land_lists_new_items_once(tmp_path):
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    (inbox / "a.ndjson").write_text(_envelope(_item(1, "a.user", "one")) + "\n")
    old = time.time() - 60
    os.utime(inbox / "a.ndjson", (old, old))
    (inbox / "b.ndjson").write_text(_envelope(_item(1, "a.user", "one")) + "\n" + _envelope(_item(2, "b.user", "two")) + "\n")
    listing = list_videos(f"zeeschuimer:{inbox}", _settings())
    assert [v.platform_id for v in listing] == ["7300000000000000001", "7300000000000000002"]  # the repeat listed once
    again = list_videos(f"zeeschuimer:{inbox}", _settings(), seen={"tiktok:7300000000000000001"})
    assert [v.platform_id for v in again] == ["7300000000000000002"]  # what a watch has seen is skipped
    assert ZeeschuimerExport.canonical(f"zeeschuimer:{inbox}") == f"zeeschuimer:{inbox.resolve()}"


def test_enqueue_lists_every_item_of_an_export_and_passes_paths_on(tmp_path):
    export = tmp_path / "x.ndjson"
    export.write_text("".join(_envelope(_item(n, "u", f"c{n}")) + "\n" for n in range(1, 41)) + "{oops\n")
    plain, refs, warnings = list_exports(_settings(source_limit=5), [str(tmp_path / "clip.mp4"), f"zeeschuimer:{export}"])
    assert plain == [str(tmp_path / "clip.mp4")]
    assert len(refs) == 40  # not cut at source_limit: enqueue takes the whole export
    assert any("line 41" in w for w in warnings)
