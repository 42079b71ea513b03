"""Research exports in the formats the tools really write, made here the way their code
writes them (invented accounts and captions):

- Zeeschuimer (github.com/digitalmethodsinitiative/zeeschuimer at ffa2781): the export
  is ``JSON.stringify`` of each stored capture plus "\\n" (``popup/interface.js``,
  ``get_ndjson_blob``); the capture's envelope is made in ``js/zs-background.js`` (in
  ``js/background.js`` before 2022) and grew over the years (``ERAS``); its CSV export
  (``get_csv_blob``, ``csv_escape``) joins the 4CAT columns with ";".
- 4CAT (github.com/digitalmethodsinitiative/4cat at 227bead1): a TikTok dataset's file is
  NDJSON of ``format_import_item`` (``common/lib/helpers.py``: the item's fields, the
  envelope less ``data`` as ``__import_meta``) written with ``json.dumps`` (``backend/lib/
  search.py``, ``items_to_ndjson``); its CSV download is ``map_item``
  (``datasources/tiktok/search_tiktok.py``, ``datasources/tiktok_comments/...``) through
  ``csv.DictWriter`` with its default "\\r\\n" (``webtool/views/views_dataset.py``,
  ``get_mapped_result``); before 2022-10 datasets were CSV files (``items_to_csv``: "\\n",
  ``unix_timestamp`` appended). Pseudonymisation hashes every value under an ``author*``
  key (``dict_search_and_update``, BLAKE2b of 24 bytes).
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
import re
import time
from datetime import datetime, timezone
from fnmatch import fnmatch
from pathlib import Path

import pytest

from workers.errors import SourceError
from workers.pipeline.submit import list_exports
from workers.settings import Settings
from workers.sources import list_videos

UA = "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0"
COLLECTED = 1_700_000_100_000  # ms, as Date.now()

# The envelope's fields in the order each Zeeschuimer version writes them; the IndexedDB row id
# ("++id") follows them all.
ERAS = {
    "2021-09": ("source_platform", "source_platform_url", "source_url", "data"),
    "2022-01": ("nav_index", "item_id", "source_platform", "source_platform_url", "source_url", "data"),
    "2022-08": ("nav_index", "item_id", "timestamp_collected", "source_platform", "source_platform_url", "source_url", "data"),
    "2023-01": (
        "nav_index",
        "item_id",
        "timestamp_collected",
        "source_platform",
        "source_platform_url",
        "source_url",
        "user_agent",
        "data",
    ),
    "2026-02": (
        "nav_index",
        "item_id",
        "timestamp_collected",
        "last_updated",
        "source_platform",
        "source_platform_url",
        "source_url",
        "user_agent",
        "data",
    ),
}

# 4CAT's CSV columns: map_item today, map_item from 2022-11 to 2023-01-09 (tiktok_url without
# "www"), and the CSV datasets of 2021 and of the 2020 scraper (items_to_csv appends unix_timestamp).
COLUMNS_NOW = (
    "collected_from_url id thread_id author author_full author_followers author_likes author_videos author_avatar body stickers "
    "timestamp unix_timestamp is_duet is_ad is_paid_partnership is_sensitive is_photosensitive music_name music_id music_url "
    "music_thumbnail music_author video_url tiktok_url thumbnail_url likes comments shares plays hashtags challenges "
    "diversification_labels location_created effects warning"
).split()
COLUMNS_2023_01 = (
    "id thread_id author author_full author_id author_followers body timestamp unix_timestamp is_duet music_name music_id "
    "music_url video_url tiktok_url thumbnail_url likes comments shares plays hashtags stickers effects warning"
).split()
COLUMNS_2021 = (
    "id thread_id author author_full author_id author_followers subject body timestamp is_duet music_name music_id music_url "
    "video_url tiktok_url thumbnail_url likes comments shares plays hashtags unix_timestamp"
).split()
COLUMNS_2020 = (
    "id thread_id author author_full author_followers subject body timestamp is_harmful is_duet music_name music_id video_url "
    "tiktok_url thumbnail_url amount_likes amount_comments amount_shares amount_plays hashtags unix_timestamp"
).split()
COMMENT_COLUMNS = (
    "collected_from_url id thread_id author author_full author_avatar_url body timestamp unix_timestamp likes replies post_id "
    "post_url post_body comment_url is_liked_by_post_author is_sticky is_comment_on_comment language_guess"
).split()


def _settings(**kw) -> Settings:
    return Settings(_env_file=None, folder_settle_seconds=0, **kw)


def post(n: int, handle: str, caption: str, *, plays: int = 1000, stickers: tuple[str, ...] = ()) -> dict:
    """A post as TikTok's web API sends it and Zeeschuimer's TikTok module keeps it."""
    video_id = f"73100000000000000{n:02d}"
    return {
        "id": video_id,
        "desc": caption,
        "createTime": 1_700_000_000 + n,
        "author": {
            "id": f"6800000000000000{n:03d}",
            "uniqueId": handle,
            "nickname": handle.replace(".", " ").title(),
            "avatarThumb": "https://p16.example.org/avatar.jpeg",
        },
        "authorStats": {"followerCount": 120, "diggCount": 800, "videoCount": 14},
        "stats": {"diggCount": plays // 10, "shareCount": 3, "commentCount": 7, "playCount": plays, "collectCount": 2},
        "challenges": [{"id": "1", "title": "garden"}],
        "textExtra": [{"hashtagName": "tomatoes", "type": 1}],
        "music": {
            "id": "6900000000000000001",
            "title": "original sound",
            "playUrl": "https://sf16.example.org/m.mp3",
            "coverLarge": "https://p16.example.org/m.jpeg",
            "authorName": handle,
        },
        "video": {
            "id": video_id,
            "duration": 12,
            "cover": "https://p16.example.org/c.jpeg?x-expires=1700003600",
            "downloadAddr": "https://v16.example.org/d.mp4?x-expires=1700003600",
            "playAddr": "https://v16.example.org/p.mp4",
        },
        "stickersOnItem": [{"stickerText": [text]} for text in stickers],
        "duetInfo": {"duetFromId": "0"},
        "isAd": False,
        "diversificationLabels": ["Gardening"],
        "locationCreated": "NL",
    }


def comment(n: int, post_id: str, text: str) -> dict:
    """A comment as TikTok's comment API sends it; Zeeschuimer's tiktok-comments module adds ``id`` (its ``cid``)."""
    cid = f"72900000000000000{n:02d}"
    return {
        "cid": cid,
        "text": text,
        "aweme_id": post_id,
        "create_time": 1_700_000_500 + n,
        "digg_count": 4,
        "reply_id": "0",
        "reply_comment_total": 0,
        "stick_position": 0,
        "comment_language": "en",
        "user": {
            "uid": "55",
            "unique_id": "leaf.reader",
            "nickname": "Leaf Reader",
            "avatar_thumb": {"url_list": ["https://p16.example.org/u.jpeg"]},
        },
        "share_info": {"url": f"https://www.tiktok.com/@garden.notes/video/{post_id}?share_comment_id={cid}.html", "title": "Tomatoes"},
        "id": cid,
    }


def envelope(
    item: dict, *, era: str = "2026-02", platform: str = "tiktok.com", row: int = 1, collected: int = COLLECTED, updated: int | None = None
) -> dict:
    """One stored capture as Zeeschuimer exports it."""
    values = {
        "nav_index": "1:3:0",
        "item_id": item["id"],
        "timestamp_collected": collected,
        "last_updated": updated or collected,
        "source_platform": platform,
        "source_platform_url": "https://www.tiktok.com/foryou",
        "source_url": "https://www.tiktok.com/api/recommend/item_list/?aid=1988",
        "user_agent": UA,
        "data": item,
    }
    return {**{k: values[k] for k in ERAS[era]}, "id": row}


def stringify(value) -> str:
    """``JSON.stringify``: no spaces, text as it is, a lone surrogate escaped (ES2019)."""
    text = json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    return re.sub("[\ud800-\udfff]", lambda m: f"\\u{ord(m.group()):04x}", text)


def zeeschuimer_ndjson(path: Path, envelopes: list[dict]) -> Path:
    path.write_bytes("".join(stringify(e) + "\n" for e in envelopes).encode("utf-8"))
    return path


def fourcat_ndjson(path: Path, envelopes: list[dict], *, bare: bool = False) -> Path:
    """4CAT's dataset file: the item with ``__import_meta`` (since 2023-04) or the bare item (2022-10 to 2023-04)."""
    items = [e["data"] if bare else {**e["data"], "__import_meta": {k: v for k, v in e.items() if k != "data"}} for e in envelopes]
    path.write_text("".join(json.dumps(item) + "\n" for item in items), encoding="utf-8")
    return path


def pseudonymise(value, hashed: bool = False):
    """4CAT's pseudonymisation: every value under a key matching ``author*`` becomes a salted BLAKE2b hex digest."""
    if isinstance(value, dict):
        return {k: pseudonymise(v, hashed or fnmatch(k, "author*")) for k, v in value.items()}
    if isinstance(value, list):
        return [pseudonymise(v, hashed) for v in value]
    if not hashed or value is None:
        return value
    digest = hashlib.blake2b(digest_size=24, salt=b"invented-salt-16")
    digest.update(str(value).encode("utf-8"))
    return digest.hexdigest()


def _utc(seconds: int) -> str:
    return datetime.fromtimestamp(seconds, tz=timezone.utc).strftime("%Y-%m-%d %H:%M:%S")


def mapped(item: dict, era: str = "now") -> dict:
    """4CAT's ``map_item`` of a post (today's, or that of 2022-11 to 2023-01-09)."""
    author = item.get("author") or {}
    handle = author.get("uniqueId", "") if isinstance(author, dict) else author
    stats, music, video = item["stats"], item["music"], item["video"]
    row = {
        "collected_from_url": (item.get("__import_meta") or {}).get("source_platform_url", ""),
        "id": item["id"],
        "thread_id": item["id"],
        "author": handle,
        "author_full": author.get("nickname", "") if isinstance(author, dict) else "",
        "author_id": author.get("id", "") if isinstance(author, dict) else "",
        "author_followers": item.get("authorStats", {}).get("followerCount", ""),
        "author_likes": item.get("authorStats", {}).get("diggCount", ""),
        "author_videos": item.get("authorStats", {}).get("videoCount", ""),
        "author_avatar": author.get("avatarThumb", "") if isinstance(author, dict) else "",
        "body": item["desc"],
        "stickers": "\n".join(" ".join(s["stickerText"]) for s in item.get("stickersOnItem", [])),
        "timestamp": _utc(int(item["createTime"])),
        "unix_timestamp": int(item["createTime"]),
        "is_duet": "no",
        "is_ad": "no",
        "is_paid_partnership": "no",
        "is_sensitive": "no",
        "is_photosensitive": "no",
        "music_name": music["title"],
        "music_id": music["id"],
        "music_url": music.get("playUrl", ""),
        "music_thumbnail": music.get("coverLarge", ""),
        "music_author": music.get("authorName", ""),
        "video_url": video.get("downloadAddr", ""),
        "tiktok_url": f"https://www.tiktok.com/@{handle}/video/{item['id']}",
        "thumbnail_url": "",
        "likes": stats["diggCount"],
        "comments": stats["commentCount"],
        "shares": stats["shareCount"],
        "plays": stats["playCount"],
        "hashtags": ",".join(t["hashtagName"] for t in item.get("textExtra", [])),
        "challenges": ",".join(c["title"] for c in item.get("challenges", [])),
        "diversification_labels": ",".join(item.get("diversificationLabels", [])),
        "location_created": item.get("locationCreated", ""),
        "effects": "",
        "warning": "",
    }
    if era == "2023-01":
        row["tiktok_url"] = f"https://tiktok.com/@{handle}/video/{item['id']}"
        row["is_duet"] = False
        return {c: row[c] for c in COLUMNS_2023_01}
    return {c: row[c] for c in COLUMNS_NOW}


def fourcat_csv(path: Path, rows: list[dict], lineterminator: str = "\r\n") -> Path:
    """``csv.DictWriter`` as 4CAT uses it: its default ("\\r\\n") for downloads, "\\n" for the old CSV datasets."""
    with open(path, "w", encoding="utf-8", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]), lineterminator=lineterminator)
        writer.writeheader()
        writer.writerows(rows)
    return path


def zeeschuimer_csv(path: Path, rows: list[dict]) -> Path:
    """Zeeschuimer's CSV export: ``csv_escape`` of each value, joined with ";", rows ending in "\\n"."""

    def escape(value) -> str:
        text = (
            {True: "true", False: "false", None: "null"}.get(value, value)
            if not isinstance(value, (int, float)) or isinstance(value, bool)
            else value
        )
        text = str(text)
        return '"' + text.replace('"', '""') + '"' if any(c in text for c in '";\n') else text

    lines = [";".join(escape(k) for k in rows[0])] + [";".join(escape(v) for v in row.values()) for row in rows]
    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    return path


def _urls(listing) -> list[str]:
    return [v.url for v in listing]


# --- Zeeschuimer ------------------------------------------------------------------------


@pytest.mark.parametrize("era", ERAS)
def test_zeeschuimer_envelopes_of_every_era_are_read(tmp_path, era):
    export = zeeschuimer_ndjson(
        tmp_path / "zeeschuimer-export-tiktok.com-2024-03-01T101010.ndjson",
        [envelope(post(1, "garden.notes", "Tomatoes, day 40 #garden"), era=era)],
    )
    (video,) = list_videos(f"zeeschuimer:{export}", _settings())
    assert video.url == "https://www.tiktok.com/@garden.notes/video/7310000000000000001"
    assert (video.author, video.caption, video.counts["views"]) == ("garden.notes", "Tomatoes, day 40 #garden", 1000)
    assert video.hashtags == ["garden", "tomatoes"] and video.media_url is None


def test_zeeschuimer_csv_export_is_read(tmp_path):
    rows = [
        mapped(post(1, "garden.notes", 'Tomatoes; "day 40"\nstill growing', stickers=("so", "green"))),
        mapped(post(2, "night.bus", "Last stop")),
    ]
    export = zeeschuimer_csv(tmp_path / "zeeschuimer-export-tiktok.com-2026-05-01T101010.csv", rows)
    assert export.read_bytes().count(b";") > 70 and b"\r\n" not in export.read_bytes()
    listing = list_videos(f"zeeschuimer:{export}", _settings())
    assert _urls(listing) == [
        "https://www.tiktok.com/@garden.notes/video/7310000000000000001",
        "https://www.tiktok.com/@night.bus/video/7310000000000000002",
    ]
    assert listing.videos[0].caption == 'Tomatoes; "day 40"\nstill growing' and not listing.warnings


# --- 4CAT CSV ---------------------------------------------------------------------------


def test_4cat_csv_download_with_crlf_and_multi_line_cells(tmp_path):
    rows = [
        mapped(post(1, "garden.notes", "Tomatoes, day 40\n\nstill growing #garden", stickers=("so", "green"))),
        {**mapped(post(2, "paper.crane", "Folding")), "id": "not-an-id"},
        mapped(post(3, "night.bus", "Last stop")),
    ]
    export = fourcat_csv(tmp_path / "imported-tiktok-0123456789abcdef0123456789abcdef.csv", rows)
    data = export.read_bytes()
    assert data.startswith(b"collected_from_url,id,thread_id,author,") and data.count(b"\r\n") == 4
    assert b'"Tomatoes, day 40\n\nstill growing #garden"' in data and b'"so\ngreen"' in data
    listing = list_videos(f"4cat:{export}", _settings())
    assert _urls(listing) == [
        "https://www.tiktok.com/@garden.notes/video/7310000000000000001",
        "https://www.tiktok.com/@night.bus/video/7310000000000000003",
    ]
    first = listing.videos[0]
    assert first.caption == "Tomatoes, day 40\n\nstill growing #garden" and first.posted_at.isoformat() == "2023-11-14T22:13:21+00:00"
    assert first.counts == {"views": 1000, "likes": 100, "comments": 7, "shares": 3} and first.hashtags == ["tomatoes", "garden"]
    (warning,) = listing.warnings
    assert "1 item(s) skipped (line 6: no TikTok video id ('not-an-id'))" in warning  # the line the row starts on (the first: 2-5)


def test_old_4cat_csvs_get_page_urls_yt_dlp_takes(tmp_path):
    """Until 2023-01-10 4CAT wrote tiktok_url without "www", which yt-dlp's TikTok extractor does not take."""
    old = fourcat_csv(tmp_path / "tiktok-2023-01.csv", [mapped(post(1, "garden.notes", "Day 1"), era="2023-01")])
    assert b"https://tiktok.com/@garden.notes/video/7310000000000000001" in old.read_bytes()
    row_2021 = {
        "id": "7010000000000000001",
        "thread_id": "7010000000000000001",
        "author": "old.garden",
        "author_full": "Old Garden",
        "author_id": "68",
        "author_followers": "5",
        "subject": "",
        "body": "Seeds #spring",
        "timestamp": "2021-10-01 12:00:00",
        "is_duet": "False",
        "music_name": "original sound",
        "music_id": "69",
        "music_url": "",
        "video_url": "https://v16.example.org/v.mp4",
        "tiktok_url": "https://tiktok.com/@old.garden/video/7010000000000000001",
        "thumbnail_url": "",
        "likes": "3",
        "comments": "1",
        "shares": "0",
        "plays": "40",
        "hashtags": "spring",
        "unix_timestamp": "1633089600",
    }
    row_2020 = {
        "id": "6810000000000000001",
        "thread_id": "6810000000000000001",
        "author": "first.garden",
        "author_full": "First",
        "author_followers": "2",
        "subject": "",
        "body": "Hello",
        "timestamp": "2020-04-21 12:00:00",
        "is_harmful": "False",
        "is_duet": "False",
        "music_name": "x",
        "music_id": "1",
        "video_url": "",
        "tiktok_url": "https://tiktok.com/@first.garden/video/6810000000000000001",
        "thumbnail_url": "",
        "amount_likes": "9",
        "amount_comments": "2",
        "amount_shares": "1",
        "amount_plays": "77",
        "hashtags": "",
        "unix_timestamp": "1587470400",
    }
    assert list(row_2021) == COLUMNS_2021 and list(row_2020) == COLUMNS_2020
    dataset_2021 = fourcat_csv(tmp_path / "tiktok-2021.csv", [row_2021], lineterminator="\n")
    dataset_2020 = fourcat_csv(tmp_path / "tiktok-2020.csv", [row_2020], lineterminator="\n")
    (video,) = list_videos(f"4cat:{old}", _settings())
    assert video.url == "https://www.tiktok.com/@garden.notes/video/7310000000000000001"
    (video,) = list_videos(f"4cat:{dataset_2021}", _settings())
    assert video.url == "https://www.tiktok.com/@old.garden/video/7010000000000000001"
    assert video.posted_at == datetime(2021, 10, 1, 12, tzinfo=timezone.utc) and video.counts == {
        "views": 40,
        "likes": 3,
        "comments": 1,
        "shares": 0,
    }
    (video,) = list_videos(f"4cat:{dataset_2020}", _settings())
    assert video.url == "https://www.tiktok.com/@first.garden/video/6810000000000000001"
    assert video.counts == {"views": 77, "likes": 9, "comments": 2, "shares": 1}


def test_pseudonymised_authors_never_reach_the_url(tmp_path):
    item = post(1, "garden.notes", "Tomatoes")
    hidden = pseudonymise({**item, "__import_meta": {"source_platform": "tiktok.com"}})
    assert re.fullmatch("[0-9a-f]{48}", hidden["author"]["uniqueId"])
    ndjson = tmp_path / "pseudonymised.ndjson"
    ndjson.write_text(json.dumps(hidden) + "\n")
    download = fourcat_csv(tmp_path / "pseudonymised.csv", [mapped(hidden)])
    assert f"/@{hidden['author']['uniqueId']}/video/".encode() in download.read_bytes()  # 4CAT puts the hash in tiktok_url
    anonymised = fourcat_csv(tmp_path / "anonymised.csv", [{**mapped(item), "author": "REDACTED", "author_full": "REDACTED"}])
    for export in (ndjson, download, anonymised):
        (video,) = list_videos(f"4cat:{export}", _settings())
        assert video.url == "https://www.tiktok.com/@_/video/7310000000000000001", export.name  # as yt-dlp writes it without a name
        assert video.author is None and video.counts["views"] == 1000


# --- 4CAT NDJSON ------------------------------------------------------------------------


def test_4cat_ndjson_download_is_read(tmp_path):
    envelopes = [envelope(post(1, "garden.notes", "Tomatoes"), row=1), envelope(post(2, "night.bus", "Last stop"), row=2)]
    now = fourcat_ndjson(tmp_path / "imported-tiktok-0123456789abcdef0123456789abcdef.ndjson", envelopes)
    line = json.loads(now.read_text().splitlines()[0])
    assert line["id"] == "7310000000000000001" and set(line["__import_meta"]) == set(ERAS["2026-02"]) - {"data"} | {"id"}
    early = fourcat_ndjson(tmp_path / "tiktok-2022-11.ndjson", envelopes, bare=True)
    for export in (now, early):
        listing = list_videos(f"4cat:{export}", _settings())
        assert _urls(listing) == [
            "https://www.tiktok.com/@garden.notes/video/7310000000000000001",
            "https://www.tiktok.com/@night.bus/video/7310000000000000002",
        ], export.name
        assert listing.videos[0].caption == "Tomatoes" and not listing.warnings
    assert _urls(list_videos(f"zeeschuimer:{now}", _settings()))[0].endswith("/7310000000000000001")  # either prefix reads it


# --- comments and other platforms ---------------------------------------------------------


def test_comment_exports_are_named_never_read_as_videos(tmp_path):
    post_id = "7310000000000000001"
    comments = [comment(1, post_id, "Lovely tomatoes"), comment(2, post_id, "How often do you water?")]
    zs = zeeschuimer_ndjson(
        tmp_path / "zeeschuimer-export-tiktok-comments.ndjson",
        [envelope(c, platform="tiktok-comments", row=n) for n, c in enumerate(comments, 1)],
    )
    rows = [
        {
            "collected_from_url": "https://www.tiktok.com/@garden.notes/video/" + post_id,
            "id": c["cid"],
            "thread_id": post_id,
            "author": "leaf.reader",
            "author_full": "Leaf Reader",
            "author_avatar_url": "",
            "body": c["text"],
            "timestamp": _utc(c["create_time"]),
            "unix_timestamp": c["create_time"],
            "likes": 4,
            "replies": 0,
            "post_id": post_id,
            "post_url": c["share_info"]["url"].split(".html")[0],
            "post_body": "Tomatoes",
            "comment_url": c["share_info"]["url"],
            "is_liked_by_post_author": "no",
            "is_sticky": "no",
            "is_comment_on_comment": "no",
            "language_guess": "en",
        }
        for c in comments
    ]
    assert list(rows[0]) == COMMENT_COLUMNS
    fourcat = fourcat_csv(tmp_path / "tiktok-comments-search.csv", rows)
    fourcat_nd = fourcat_ndjson(tmp_path / "tiktok-comments-search.ndjson", [envelope(c, platform="tiktok-comments") for c in comments])
    for spec in (f"zeeschuimer:{zs}", f"4cat:{fourcat}", f"4cat:{fourcat_nd}"):
        path = spec.split(":", 1)[1]
        with pytest.raises(SourceError) as err:
            list_videos(spec, _settings())
        assert str(err.value) == f"{path}: a TikTok comments export: no videos in it"
        with pytest.raises(SourceError):  # enqueue refuses it in one line, nothing queued
            list_exports(_settings(), [spec])


def test_other_kinds_of_file_are_named_in_one_line(tmp_path):
    instagram = zeeschuimer_ndjson(
        tmp_path / "zeeschuimer-export-instagram.com.ndjson",
        [envelope({"id": "3100000000000000001_55", "caption": {"text": "a reel"}}, platform="instagram.com")],
    )
    douyin = fourcat_csv(
        tmp_path / "douyin-search.csv",
        [
            {
                "collected_from_url": "",
                "id": "7310000000000000009",
                "thread_id": "1",
                "body": "x",
                "video_url": "https://v.example.org/d.mp4",
                "unix_timestamp": 1,
            }
        ],
    )
    listing_json = tmp_path / "item_list.json"
    listing_json.write_text(json.dumps([post(1, "a.b", "c")]))
    empty = tmp_path / "empty.ndjson"
    empty.write_text("\n")
    expected = {
        instagram: "an export of instagram.com items: no videos in it",
        douyin: "not a TikTok video export from 4CAT or Zeeschuimer: no tiktok_url column",
        listing_json: "a JSON array, not an export with one item a line (a TikTok JSON listing is read as tiktok-json:FILE)",
        empty: "an empty file",
    }
    for path, what in expected.items():
        with pytest.raises(SourceError) as err:
            list_videos(f"4cat:{path}", _settings())
        assert str(err.value) == f"{path}: {what}"


def test_a_watched_folder_names_the_file_without_videos_and_lists_the_others(tmp_path):
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    zeeschuimer_ndjson(inbox / "comments.ndjson", [envelope(comment(1, "7310000000000000001", "Nice"), platform="tiktok-comments")])
    zeeschuimer_ndjson(inbox / "posts.ndjson", [envelope(post(1, "garden.notes", "Tomatoes"))])
    listing = list_videos(f"zeeschuimer:{inbox}", _settings())
    assert [v.platform_id for v in listing] == ["7310000000000000001"]
    assert listing.warnings == [f"{inbox / 'comments.ndjson'}: a TikTok comments export: no videos in it; skipped"]


# --- repeated captures --------------------------------------------------------------------


def test_repeated_captures_keep_the_latest_counts(tmp_path):
    first, second = post(1, "garden.notes", "Tomatoes", plays=100), post(2, "night.bus", "Last stop", plays=50)
    # "insert" (the default): the post captured again on another page is stored again.
    again = post(1, "garden.notes", "Tomatoes (edited)", plays=250)
    # "update": the row keeps its place and its first capture time, and gets last_updated.
    updated = post(2, "night.bus", "Last stop", plays=90)
    export = zeeschuimer_ndjson(
        tmp_path / "zeeschuimer-export-tiktok.com.ndjson",
        [
            envelope(first, row=1, collected=COLLECTED),
            envelope(updated, row=2, collected=COLLECTED + 10, updated=COLLECTED + 9000),
            envelope(again, row=3, collected=COLLECTED + 5000),
            envelope(second, row=4, collected=COLLECTED + 6000),  # an older capture, though a later line
        ],
    )
    listing = list_videos(f"zeeschuimer:{export}", _settings())
    assert [(v.platform_id[-2:], v.counts["views"], v.caption) for v in listing] == [
        ("01", 250, "Tomatoes (edited)"),
        ("02", 90, "Last stop"),
    ]
    assert listing.listed == 2
    # A CSV has no capture times: the later row, and the newer file, count.
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    fourcat_csv(inbox / "old.csv", [mapped(post(1, "garden.notes", "Tomatoes", plays=100))])
    os.utime(inbox / "old.csv", (time.time() - 60, time.time() - 60))
    fourcat_csv(
        inbox / "new.csv", [mapped(post(1, "garden.notes", "Tomatoes", plays=300)), mapped(post(1, "garden.notes", "Tomatoes", plays=400))]
    )
    (video,) = list_videos(f"4cat:{inbox}", _settings())
    assert video.counts["views"] == 400


def test_zeeschuimer_export_read_as_bytes_split_only_at_newlines(tmp_path):
    """A caption with U+2028 (JSON.stringify leaves it raw) stays in its line; a BOM and CRLF are tolerated."""
    export = tmp_path / "x.ndjson"
    line = stringify(envelope(post(1, "garden.notes", "one\u2028two"))).encode("utf-8")
    assert "\u2028".encode() in line
    export.write_bytes(b"\xef\xbb\xbf" + line + b"\r\n" + b"\r\n")
    (video,) = list_videos(f"zeeschuimer:{export}", _settings())
    assert video.caption == "one\u2028two"
