"""Sources: which spec goes where, and listing from local servers, files, folders and a fake TikTokApi.

Nothing here touches the internet: TikTok itself is replaced by a local
server serving a TikTok-shaped listing, or by a fake ``TikTokApi`` module.
"""

from __future__ import annotations

import json
import os
import sys
import time
import types
from datetime import datetime, timezone

import pytest

from tests.local_http import MediaServer, local_settings, tiktok_item, tiny_video
from tests.pipeline_support import postgres_url  # noqa: F401  (fixture)
from workers.download import fetch_ref
from workers.errors import SourceError, SourceUnavailable, UnsafeURL
from workers.settings import Settings
from workers.sources import (
    BLOCKED_WARNING,
    SOURCES,
    canonical_spec,
    list_videos,
    source_for,
    tiktok_hashtag,
    tiktok_user,
    ytdlp_url,
)
from workers.sources.tiktok_items import ref_from_item
from workers.sources.url_list import ref_from_url
from workers.video_ref import MAX_TEXT, VideoRef


@pytest.fixture()
def settings(tmp_path) -> Settings:
    return local_settings(tmp_path, download_timeout=2.0, download_retries=1)


# --- which source handles what ------------------------------------------------


@pytest.mark.parametrize("cls", SOURCES, ids=lambda c: c.name)
def test_each_source_claims_its_examples(cls, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # relative example paths must not exist here
    for spec in cls.examples:
        assert cls.suitable(spec), spec
        assert type(source_for(spec)) is cls, spec
    for spec in cls.not_examples:
        assert not cls.suitable(spec), spec


@pytest.mark.parametrize("cls", SOURCES, ids=lambda c: c.name)
def test_canonical_specs_stay_with_their_source(cls, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for spec in cls.examples:
        canonical = canonical_spec(spec)
        assert type(source_for(canonical)) is cls and canonical_spec(canonical) == canonical, (spec, canonical)


def test_canonical_spellings(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "links.txt").write_text("https://example.com/a.mp4\n")
    assert canonical_spec(" @some.one ") == "tiktok:user:some.one"
    assert canonical_spec("https://www.tiktok.com/@x?lang=en") == "tiktok:user:x"
    assert canonical_spec("#cats") == canonical_spec("https://www.tiktok.com/tag/cats") == "tiktok:tag:cats"
    assert canonical_spec("Trending") == "tiktok:trending"
    assert canonical_spec("links.txt") == f"urls:{tmp_path / 'links.txt'}"
    assert canonical_spec(".") == f"folder:{tmp_path}"
    assert canonical_spec("http://127.0.0.1:8000/item_list.json") == "tiktok-json:http://127.0.0.1:8000/item_list.json"


def test_existing_files_and_folders_are_recognised(tmp_path):
    urls = tmp_path / "links.txt"
    urls.write_text("https://example.com/a.mp4\n")
    listing = tmp_path / "saved.json"
    listing.write_text('{"itemList": []}')
    assert source_for(str(urls)).name == "url-list"
    assert source_for(str(listing)).name == "tiktok-json"
    assert source_for(str(tmp_path)).name == "folder"
    assert source_for("https://example.com/whatever").name == "url"  # the generic fallback


def test_unknown_spec_is_a_clear_error():
    with pytest.raises(SourceError, match="no source handles 'nonsense'.*tiktok:trending"):
        source_for("nonsense")
    with pytest.raises(SourceError, match="empty"):
        source_for("  ")


# --- TikTok-shaped JSON from a local server -----------------------------------


def test_tiktok_json_listing_from_local_server_then_download(tmp_path, settings):
    for n in (1, 2):
        tiny_video(tmp_path / "served" / f"v{n}.mp4")
    with MediaServer(tmp_path / "served") as srv:
        srv.json_routes["/api/recommend/item_list.json"] = {
            "itemList": [tiktok_item(n, srv.url(f"/v{n}.mp4")) for n in (1, 2)],
            "hasMore": False,
        }
        listing = list_videos(srv.url("/api/recommend/item_list.json"), settings)
        assert listing.warnings == [] and listing.listed == 2
        first = listing.videos[0]
        assert first.key == "tiktok:7300000000000000001"
        assert first.url == "https://www.tiktok.com/@user1/video/7300000000000000001"
        assert first.media_url == srv.url("/v1.mp4") and first.download_url == first.media_url
        assert first.author == "user1" and first.caption == "video 1 #cats #fyp"
        assert first.hashtags == ["cats", "fyp"]
        assert first.posted_at == datetime.fromtimestamp(1_700_000_001, tz=timezone.utc)
        assert first.counts == {"views": 1000, "likes": 10, "comments": 1, "shares": 2, "saves": 5}

        fetched = fetch_ref(first, tmp_path / "media", settings)
        assert fetched.path.is_file() and fetched.ref.key == first.key and fetched.ref.author == "user1"

        again = list_videos(srv.url("/api/recommend/item_list.json"), settings, seen={first.key})
        assert [v.key for v in again] == ["tiktok:7300000000000000002"] and again.listed == 2


def test_empty_tiktok_listing_is_a_warning_not_silent_success(tmp_path, settings):
    with MediaServer(tmp_path) as srv:
        srv.json_routes["/item_list.json"] = {"itemList": [], "hasMore": False, "statusCode": 0}
        listing = list_videos(srv.url("/item_list.json"), settings)
    assert len(listing) == 0
    assert listing.warnings == [BLOCKED_WARNING] == ["0 videos: likely blocked or rate limited"]


def test_json_listing_on_unsafe_host_refused(tmp_path):
    strict = Settings(data_dir=tmp_path, download_retries=0)
    with pytest.raises(UnsafeURL):
        list_videos("tiktok-json:http://127.0.0.1:9/list", strict)
    with pytest.raises(UnsafeURL):
        list_videos("http://169.254.169.254/latest/items.json", strict)


def test_json_listing_404_and_bad_json(tmp_path, settings):
    with MediaServer(tmp_path) as srv:
        with pytest.raises(SourceError, match="404"):
            list_videos(srv.url("/missing.json"), settings)
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(SourceError, match="not JSON"):
        list_videos(str(bad), settings)


def test_app_api_shape_and_saved_file(tmp_path, settings):
    saved = tmp_path / "aweme.json"
    saved.write_text(
        '{"aweme_list": [{"aweme_id": "42", "desc": "hi", "create_time": 1700000000,'
        ' "author": {"unique_id": "app_user"}, "statistics": {"play_count": 7},'
        ' "video": {"duration": 15000, "play_addr": {"url_list": ["https://v16.example/v.mp4"]}}}]}'
    )
    (ref,) = list_videos(str(saved), settings).videos
    assert (ref.key, ref.author, ref.counts, ref.duration) == ("tiktok:42", "app_user", {"views": 7}, 15.0)
    assert ref.media_url == "https://v16.example/v.mp4"


# --- any yt-dlp URL ----------------------------------------------------------


def test_direct_video_url_lists_one_video(tmp_path, settings):
    tiny_video(tmp_path / "clip.mp4")
    with MediaServer(tmp_path) as srv:
        listing = list_videos(srv.url("/clip.mp4"), settings)
        (ref,) = listing.videos
        assert ref.platform == "url" and ref.url == srv.url("/clip.mp4") and listing.listed == 1
        assert list_videos(srv.url("/clip.mp4"), settings, seen={ref.key}).videos == []
        with pytest.raises(SourceError, match="404"):
            list_videos(srv.url("/nope.mp4"), settings)


def test_url_source_refuses_unsafe_urls(tmp_path):
    with pytest.raises(UnsafeURL, match="loopback"):
        list_videos("http://127.0.0.1:9/clip.mp4", Settings(data_dir=tmp_path, download_retries=0))


# --- URL list file -----------------------------------------------------------


def test_url_list_file(tmp_path, settings):
    urls = tmp_path / "watch.txt"
    urls.write_text(
        "# journalists' list\n"
        "https://www.tiktok.com/@someone/video/7311111111111111111\n"
        "\n"
        "https://www.youtube.com/shorts/dQw4w9WgXcQ\n"
        "https://www.tiktok.com/@someone/video/7311111111111111111\n"  # duplicate
        "not a url\n"
        "javascript:alert(1)\n"
        "https://example.com/clip.mp4\n"
    )
    listing = list_videos(str(urls), settings)
    assert [v.key for v in listing.videos] == [
        "tiktok:7311111111111111111",
        "youtube:dQw4w9WgXcQ",
        ref_from_url("https://example.com/clip.mp4").key,
    ]
    assert listing.videos[2].platform == "url"
    assert listing.warnings == ["2 line(s) are not http(s) URLs, skipped (line 6, 7)"]
    later = list_videos(f"urls:{urls}", settings, limit=1, seen={"tiktok:7311111111111111111"})
    assert [v.key for v in later] == ["youtube:dQw4w9WgXcQ"]
    with pytest.raises(SourceError, match="no such URL list"):
        list_videos(f"urls:{tmp_path / 'missing.txt'}", settings)


# --- folder ------------------------------------------------------------------


def test_folder_lists_new_files_oldest_first(tmp_path, settings):
    folder = tmp_path / "incoming"
    old = tiny_video(folder / "old.mp4", 1)
    new = tiny_video(folder / "sub" / "new.MOV", 1)
    (folder / "notes.txt").write_text("not a video")
    (folder / ".hidden.mp4").write_bytes(b"x")
    os.utime(old, (time.time() - 100, time.time() - 100))
    os.utime(new, (time.time() - 50, time.time() - 50))
    (tmp_path / "elsewhere").mkdir()
    tiny_video(tmp_path / "elsewhere" / "outside.mp4", 1)
    (folder / "link").symlink_to(tmp_path / "elsewhere", target_is_directory=True)

    listing = list_videos(str(folder), settings)
    assert [v.url for v in listing] == [str(old.resolve()), str(new.resolve())]
    assert all(v.platform == "file" and v.local_path.is_file() for v in listing)

    seen = {v.key for v in listing}
    assert list_videos(f"folder:{folder}", settings, seen=seen).videos == []
    tiny_video(old, 2)  # replaced under the same name: new content, new id
    os.utime(old, (time.time() - 10, time.time() - 10))
    assert [v.url for v in list_videos(str(folder), settings, seen=seen)] == [str(old.resolve())]


def test_folder_skips_files_still_being_written(tmp_path, settings):
    tiny_video(tmp_path / "copying.mp4", 1)
    patient = settings.model_copy(update={"folder_settle_seconds": 60})
    listing = list_videos(str(tmp_path), patient)
    assert listing.videos == [] and "still being written" in listing.warnings[0]


# --- TikTok through TikTokApi (faked) and yt-dlp (stubbed) ----------------------


def test_trending_needs_ms_token(settings):
    with pytest.raises(SourceError, match="TT_TIKTOK_MS_TOKEN"):
        list_videos("tiktok:trending", settings)


def test_trending_without_tiktokapi_says_what_to_install(settings, monkeypatch):
    monkeypatch.setitem(sys.modules, "TikTokApi", None)  # import fails
    configured = settings.model_copy(update={"tiktok_ms_token": "token"})
    with pytest.raises(SourceError, match=r"pip install 'tiktok-tracker\[tiktok\]'.*playwright install chromium"):
        list_videos("tiktok:trending", configured)


def fake_tiktokapi(items: list[dict] | Exception, calls: list):
    class Video:
        def __init__(self, data):
            self.as_dict = data

    class Feed:
        def __init__(self, name=None):
            self.name = name

        async def videos(self, count):
            calls.append(("videos", self.name, count))
            if isinstance(items, Exception):
                raise items
            for data in items:
                yield Video(data)

    class TikTokApi:
        def __init__(self):
            self.trending = Feed()

        def hashtag(self, name):
            return Feed(name)

        async def __aenter__(self):
            return self

        async def __aexit__(self, *exc):
            return False

        async def create_sessions(self, **options):
            calls.append(("sessions", options))

    module = types.ModuleType("TikTokApi")
    module.TikTokApi = TikTokApi
    return module


def test_trending_through_tiktokapi(settings, monkeypatch):
    calls: list = []
    items = [tiktok_item(1, "https://cdn/x"), tiktok_item(2)]
    monkeypatch.setitem(sys.modules, "TikTokApi", fake_tiktokapi(items, calls))
    configured = settings.model_copy(update={"tiktok_ms_token": "secret-token", "proxy": "http://proxy:3128"})
    listing = list_videos("trending", configured, limit=5)
    assert [v.key for v in listing] == ["tiktok:7300000000000000001", "tiktok:7300000000000000002"]
    assert listing.videos[0].media_url is None  # CDN links expire: download the page instead
    sessions = calls[0][1]
    assert sessions["ms_tokens"] == ["secret-token"] and sessions["proxies"] == [{"server": "http://proxy:3128"}]
    assert ("videos", None, 5) in calls


@pytest.mark.parametrize("answer", [[], type("EmptyResponseException", (Exception,), {})("empty")])
def test_trending_empty_answer_is_blocked_warning(settings, monkeypatch, answer):
    monkeypatch.setitem(sys.modules, "TikTokApi", fake_tiktokapi(answer, []))
    listing = list_videos("tiktok:trending", settings.model_copy(update={"tiktok_ms_token": "t"}))
    assert listing.videos == [] and listing.warnings == [BLOCKED_WARNING]


def test_trending_failure_is_transient(settings, monkeypatch):
    monkeypatch.setitem(sys.modules, "TikTokApi", fake_tiktokapi(RuntimeError("captcha"), []))
    with pytest.raises(SourceUnavailable, match="captcha"):
        list_videos("tiktok:trending", settings.model_copy(update={"tiktok_ms_token": "t"}))


def test_hashtag_through_tiktokapi(settings, monkeypatch):
    calls: list = []
    monkeypatch.setitem(sys.modules, "TikTokApi", fake_tiktokapi([tiktok_item(3)], calls))
    listing = list_videos("#cats", settings.model_copy(update={"tiktok_ms_token": "t"}))
    assert [v.key for v in listing] == ["tiktok:7300000000000000003"] and listing.source == "tiktok:tag:cats"
    assert ("videos", "cats", 30) in calls


def test_hashtag_without_token_falls_back_to_ytdlp_with_warning(settings, monkeypatch):
    asked = []
    monkeypatch.setattr(tiktok_hashtag, "list_with_ytdlp", lambda url, *a: asked.append(url) or ([], 0))
    listing = list_videos("https://www.tiktok.com/tag/cats", settings)
    assert asked == ["https://www.tiktok.com/tag/cats"]
    assert listing.warnings[-1] == BLOCKED_WARNING and "yt-dlp" in listing.warnings[0]


def test_user_listing_through_ytdlp(settings, monkeypatch):
    asked = []
    ref = VideoRef(platform="tiktok", platform_id="1", url="https://www.tiktok.com/@some.one/video/1")

    def fake(url, settings, limit, seen):
        asked.append((url, limit))
        return ([ref], 1) if "some.one" in url else ([], 0)

    monkeypatch.setattr(tiktok_user, "list_with_ytdlp", fake)
    listing = list_videos("@some.one", settings, limit=7)
    assert asked == [("https://www.tiktok.com/@some.one", 7)] and listing.videos == [ref] and not listing.warnings
    assert list_videos("tiktok:user:ghost", settings).warnings == [BLOCKED_WARNING]


# --- hostile metadata ----------------------------------------------------------


def test_hostile_metadata_kept_but_bounded(tmp_path):
    caption = "\x1b[2J\x00evil\u202e\r\n" + "A" * 100_000
    ref = ref_from_item(
        tiktok_item(1, desc=caption, id="../../etc/passwd", author={"uniqueId": "a/b\\c\x00"}, stats={"playCount": "-5", "diggCount": "x"})
    )
    assert "\x00" not in ref.caption and len(ref.caption) == MAX_TEXT
    assert ref.caption.startswith("\x1b[2Jevil\u202e")  # kept as-is for storage; sanitized when shown
    assert ref.platform_id == "../../etc/passwd" and ref.author == "a/b\\c"  # an id, never a path
    assert ref.counts == {}  # negative and non-numeric counts dropped
    assert VideoRef.from_json(ref.to_json()) == ref
    assert ref_from_item({"desc": "no id"}) is None


# --- text that is not valid Unicode -------------------------------------------------

# JSON may carry a lone surrogate ("\ud83d": half an emoji) and NULs; no database or UTF-8 stream takes them.
BROKEN = "half an emoji \ud83d, a NUL\x00 and a lone \udc00 #broken"


class FakeYdl:
    """yt-dlp's answers (``extract_info`` with ``process=False``) for given URLs."""

    def __init__(self, answers: dict):
        self.answers = answers

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def extract_info(self, url, download=False, process=False):
        return self.answers[url]


def _broken_item(n: int) -> dict:
    return tiktok_item(n, desc=BROKEN, author={"uniqueId": f"user{n}", "nickname": "Nick \ud83d"}, challenges=[{"title": "t\udc00"}])


def _refs_of_every_source(tmp_path, settings, monkeypatch) -> tuple[dict[str, list[VideoRef]], list[str]]:
    """What each source lists from input holding BROKEN (ids differ per source), and the warnings."""
    info = {
        "id": "7300000000000000007",
        "extractor_key": "TikTok",
        "webpage_url": "https://www.tiktok.com/@u/video/7300000000000000007",
        "title": BROKEN,
        "description": BROKEN,
        "uploader": "up\ud83d",
        "tags": ["t\ud83d"],
    }
    entry = {**info, "id": "7300000000000000008", "webpage_url": "https://www.tiktok.com/@u/video/7300000000000000008", "ie_key": "TikTok"}
    answers = {
        "https://www.tiktok.com/@u/video/7300000000000000007": info,
        "https://www.tiktok.com/@u": {"_type": "playlist", "entries": iter([entry])},
    }
    monkeypatch.setattr(ytdlp_url, "open_ytdl", lambda settings, **kw: FakeYdl(answers))
    monkeypatch.setitem(sys.modules, "TikTokApi", fake_tiktokapi([_broken_item(5)], []))
    token = settings.model_copy(update={"tiktok_ms_token": "t", "folder_settle_seconds": 0})

    zeeschuimer = tmp_path / "z.ndjson"  # JSON.stringify and json.dumps both write a lone surrogate as \ud83d
    zeeschuimer.write_text(json.dumps({"source_platform": "tiktok.com", "item_id": "x", "data": _broken_item(1)}) + "\n")
    fourcat_nd = tmp_path / "4cat.ndjson"
    fourcat_nd.write_text(json.dumps({**_broken_item(2), "__import_meta": {"source_platform": "tiktok.com"}}) + "\n")
    fourcat_csv = tmp_path / "4cat.csv"  # a CSV cannot hold a surrogate: its bytes are not UTF-8, and read as U+FFFD
    fourcat_csv.write_bytes(f'id,author,body,tiktok_url\r\n7300000000000000003,user3,"{BROKEN}",\r\n'.encode("utf-8", "surrogatepass"))
    listing_file = tmp_path / "listing.json"
    listing_file.write_text(json.dumps({"itemList": [_broken_item(4)]}))
    links = tmp_path / "links.txt"
    links.write_bytes("https://example.org/v/clip-\ud83d.mp4\n".encode("utf-8", "surrogatepass"))
    folder = tmp_path / "clips"  # listed by name: what the files hold does not matter here
    folder.mkdir()
    (folder / "fine.mp4").write_bytes(b"video")
    (folder / os.fsdecode(b"clip-\xff.mp4")).write_bytes(b"video")
    old = time.time() - 60
    for clip in folder.iterdir():
        os.utime(clip, (old, old))
    specs = {
        "zeeschuimer": f"zeeschuimer:{zeeschuimer}",
        "4cat-ndjson": f"4cat:{fourcat_nd}",
        "4cat-csv": f"4cat:{fourcat_csv}",
        "tiktok-json": str(listing_file),
        "trending": "tiktok:trending",
        "hashtag": "#broken",
        "url": "https://www.tiktok.com/@u/video/7300000000000000007",
        "user": "@u",
        "url-list": f"urls:{links}",
        "folder": f"folder:{folder}",
    }
    refs, warnings = {}, []
    for name, spec in specs.items():
        listing = list_videos(spec, token)
        refs[name] = listing.videos
        warnings += listing.warnings
    return refs, warnings


def _strings(value):
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for k, v in value.items():
            yield from _strings(k)
            yield from _strings(v)
    elif isinstance(value, list):
        for v in value:
            yield from _strings(v)


@pytest.fixture(params=["sqlite", "postgres"])
def database_url(request, tmp_path):
    from workers.storage.db import forget_engines

    if request.param == "postgres":
        yield request.getfixturevalue("postgres_url")
        return
    yield f"sqlite:///{tmp_path / 'tracker.db'}"
    forget_engines(close=True)


def test_text_that_is_not_unicode_is_made_storable_by_every_source_and_stored(tmp_path, settings, monkeypatch, database_url):
    from workers.sanitize import sanitize
    from workers.storage.db import session_scope
    from workers.storage.models import Video
    from workers.storage.results import KnownVideos, apply_metadata

    refs, warnings = _refs_of_every_source(tmp_path, settings, monkeypatch)
    assert {name: len(found) for name, found in refs.items()} == dict.fromkeys(refs, 1), warnings
    assert any("1 file(s) skipped: their names are not valid UTF-8" in w and "clip-\ufffd.mp4" in w for w in warnings), warnings
    every = list({ref.key: ref for found in refs.values() for ref in found}.values())  # trending and hashtag list the same one
    for ref in every:
        for text in _strings(ref.to_json()):
            assert "\x00" not in text and text.encode("utf-8"), (ref.key, text)
    for name in ("zeeschuimer", "4cat-ndjson", "tiktok-json", "trending", "hashtag", "url"):
        (ref,) = refs[name]
        assert ref.caption == "half an emoji \ufffd, a NUL and a lone \ufffd #broken", name  # marked, not silently dropped
        assert sanitize(ref.caption).encode("utf-8") and "\ufffd" in sanitize(ref.caption)
    assert refs["zeeschuimer"][0].author == "user1" and "t\ufffd" in refs["zeeschuimer"][0].hashtags
    assert refs["user"][0].author == "up\ufffd" and refs["url-list"][0].url.startswith("https://example.org/v/clip-")
    with session_scope(database_url) as s:
        for ref in every:
            video = Video(source=ref.url)
            apply_metadata(video, ref)
            video.platform_id = ref.platform_id
            s.add(video)
    with session_scope(database_url) as s:
        stored = {v.platform_id: v for v in s.query(Video).all()}
        assert stored["7300000000000000001"].caption == refs["zeeschuimer"][0].caption
    known = KnownVideos(database_url)
    assert all(ref.key in known for ref in every)


def test_sanitize_joins_a_split_emoji_and_marks_a_lone_half():
    from workers.sanitize import sanitize, storable

    assert sanitize("a \ud83d\ude00 b \ud83d") == "a \U0001f600 b \ufffd"
    assert storable({"k\x00": ["\udcff", 3, ("x\ud83d",)]}) == {"k": ["\ufffd", 3, ("x\ufffd",)]}
