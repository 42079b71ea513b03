"""TikTok's JSON, shared by the TikTok sources: item parsing and the TikTokApi session.

TikTok's web API (``/api/recommend/item_list/``, ``/api/post/item_list/``,
``/api/challenge/item_list/``) answers ``{"itemList": [item, ...]}``;
TikTokApi's ``video.as_dict`` is one such item; the app API answers
``{"aweme_list": [...]}`` with snake_case fields. ``ref_from_item`` reads
all of them.

TikTokApi (``pip install 'tiktok-tracker[tiktok]'`` then ``python -m
playwright install chromium``) drives a real browser with the user's
``msToken`` cookie; it is imported only when a TikTokApi source runs.
"""

from __future__ import annotations

import asyncio
import re
import threading
from collections.abc import AsyncIterator, Callable
from typing import Any

from workers.errors import SourceError, SourceUnavailable
from workers.sanitize import storable
from workers.video_ref import VideoRef

PAGE_URL = "https://www.tiktok.com/@{author}/video/{id}"
INSTALL_HINT = "pip install 'tiktok-tracker[tiktok]' && python -m playwright install {browser}"
# 4CAT's pseudonymised names (a BLAKE2b digest of 24 bytes, in hex) and anonymised ones.
_PSEUDONYM = re.compile(r"[0-9a-f]{48}|REDACTED")


def pseudonymised(name: Any) -> bool:
    """Whether ``name`` is 4CAT's stand-in for an author's name rather than the name."""
    return isinstance(name, str) and _PSEUDONYM.fullmatch(name.strip()) is not None


def tiktok_handle(name: Any) -> str | None:
    """``name`` as the handle in a page URL (``@name``); None when it is missing or pseudonymised."""
    if not isinstance(name, str):
        return None
    name = name.strip().removeprefix("@")
    return name if name and not pseudonymised(name) else None


def page_url(handle: str | None, video_id: str) -> str:
    """A video's page, from its author's handle and its id (``@_`` without a handle, as yt-dlp
    writes it; TikTok finds the video by its id). Never a stored URL: it may be stale, or
    in a form yt-dlp does not send to its TikTok extractor (``https://tiktok.com/@user/...``)."""
    return PAGE_URL.format(author=tiktok_handle(handle) or "_", id=video_id)


def _get(obj: Any, *path: str) -> Any:
    for key in path:
        if not isinstance(obj, dict):
            return None
        obj = obj.get(key)
    return obj


def _first(*values: Any) -> Any:
    return next((v for v in values if v not in (None, "", [], {})), None)


def items_in(payload: Any) -> list[dict]:
    """The video items of a TikTok-shaped answer: ``itemList``, ``items``, ``aweme_list`` or a bare list."""
    if isinstance(payload, list):
        return [i for i in payload if isinstance(i, dict)]
    if isinstance(payload, dict):
        for key in ("itemList", "items", "aweme_list", "videos", "data"):
            if isinstance(payload.get(key), list):
                return items_in(payload[key])
            if isinstance(payload.get(key), dict):
                return items_in(payload[key])
    return []


def _url_list(value: Any) -> str | None:
    if isinstance(value, str):
        return value
    urls = _get(value, "url_list") if isinstance(value, dict) else None
    return urls[0] if isinstance(urls, list) and urls and isinstance(urls[0], str) else None


def ref_from_item(item: dict, *, keep_media_url: bool = True) -> VideoRef | None:
    """A ``VideoRef`` from one TikTok item, or None when it has no id.

    ``keep_media_url``: keep ``video.playAddr`` as the direct media URL (a
    saved listing, a test server); TikTokApi's CDN links expire within
    hours and need its cookies, so those sources download the page instead.
    """
    video_id = _first(item.get("id"), item.get("aweme_id"), item.get("video_id"))
    if video_id is None:
        return None
    author_obj = item.get("author")
    handle = _first(
        _get(item, "author", "uniqueId"),
        _get(item, "author", "unique_id"),
        author_obj if isinstance(author_obj, str) else None,
        _get(item, "authorMeta", "name"),
    )
    names = (handle, _get(item, "author", "nickname"), item.get("nickname") if isinstance(author_obj, str) else None)
    author = next((n for n in names if isinstance(n, str) and n and not pseudonymised(n)), None)
    stats = _first(item.get("stats"), item.get("statistics"), item.get("statsV2")) or {}
    counts = {
        "views": _first(stats.get("playCount"), stats.get("play_count")),
        "likes": _first(stats.get("diggCount"), stats.get("digg_count")),
        "comments": _first(stats.get("commentCount"), stats.get("comment_count")),
        "shares": _first(stats.get("shareCount"), stats.get("share_count")),
        "saves": _first(stats.get("collectCount"), stats.get("collect_count")),
    }
    tags = [_get(c, "title") for c in item.get("challenges") or [] if isinstance(c, dict)]
    tags += [_get(t, "hashtagName") for t in item.get("textExtra") or [] if isinstance(t, dict)]
    tags += [_get(t, "hashtag_name") for t in item.get("text_extra") or [] if isinstance(t, dict)]
    video = item.get("video") if isinstance(item.get("video"), dict) else {}
    media = _first(
        _url_list(video.get("playAddr")),
        _url_list(video.get("play_addr")),
        _url_list(video.get("downloadAddr")),
        _url_list(video.get("download_addr")),
    )
    duration = _first(video.get("duration"))
    if isinstance(duration, (int, float)) and duration > 1000:  # the app API counts milliseconds
        duration = duration / 1000
    fields = {
        "platform": "tiktok",
        "platform_id": str(video_id),
        "url": page_url(handle, str(video_id)),
        "author": author,
        "caption": _first(item.get("desc"), item.get("description"), item.get("text")),
        "hashtags": [t for t in tags if isinstance(t, str) and t],
        "posted_at": _first(item.get("createTime"), item.get("create_time"), item.get("createTimeISO")),
        "counts": counts,
        "media_url": media if keep_media_url and isinstance(media, str) else None,
        "duration": duration,
    }
    return VideoRef(**storable(fields))


def refs_from_items(items: list[dict], *, keep_media_url: bool = True) -> list[VideoRef]:
    refs = [ref_from_item(i, keep_media_url=keep_media_url) for i in items]
    return [r for r in refs if r is not None]


def _run_async(factory: Callable[[], Any]) -> Any:
    """Run a coroutine to completion, also from a thread that already has an event loop."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(factory())
    result: dict[str, Any] = {}

    def runner() -> None:
        try:
            result["value"] = asyncio.run(factory())
        except BaseException as err:  # noqa: BLE001 - re-raised in the caller's thread
            result["error"] = err

    thread = threading.Thread(target=runner, daemon=True)
    thread.start()
    thread.join()
    if "error" in result:
        raise result["error"]
    return result.get("value")


def tiktokapi_items(settings, what: str, videos: Callable[[Any, int], AsyncIterator[Any]], count: int) -> list[dict]:
    """Items from TikTokApi: ``videos(api, count)`` is e.g. ``api.trending.videos(count=count)``.

    Raises ``SourceError`` when TikTokApi, its browser or the ms_token is
    missing, ``SourceUnavailable`` when TikTok fails; TikTok's "empty
    response" (how it signals blocking) gives an empty list.
    """
    token = getattr(settings.tiktok_ms_token, "get_secret_value", lambda: settings.tiktok_ms_token)() or ""
    if not token:
        raise SourceError(
            f"TikTok {what} needs an msToken: set TT_TIKTOK_MS_TOKEN (or tiktok_ms_token in the config file) "
            f"to the msToken cookie of a tiktok.com browser session"
        )
    try:
        from TikTokApi import TikTokApi
    except ImportError:
        raise SourceError(
            f"TikTok {what} needs TikTokApi and a Playwright browser: " + INSTALL_HINT.format(browser=settings.tiktok_browser)
        ) from None

    async def collect() -> list[dict]:
        async with TikTokApi() as api:
            options: dict[str, Any] = {
                "ms_tokens": [token],
                "num_sessions": 1,
                "sleep_after": 3,
                "browser": settings.tiktok_browser,
            }
            if settings.proxy:
                options["proxies"] = [{"server": settings.proxy}]
            await api.create_sessions(**options)
            items: list[dict] = []
            async for video in videos(api, count):
                data = getattr(video, "as_dict", video)
                if isinstance(data, dict):
                    items.append(data)
                if len(items) >= count:
                    break
            return items

    try:
        return _run_async(collect)
    except Exception as err:  # noqa: BLE001 - TikTokApi and Playwright raise many kinds
        name, text = type(err).__name__, " ".join(str(err).split())[:300]
        if name == "EmptyResponseException":
            return []
        if "Executable doesn't exist" in text or "playwright install" in text:
            raise SourceError(
                f"TikTok {what}: Playwright's {settings.tiktok_browser} browser is not installed: "
                f"run `python -m playwright install {settings.tiktok_browser}`"
            ) from None
        raise SourceUnavailable(f"TikTok {what} failed: {name}: {text}") from None
