"""Fetch one video through yt-dlp (as a library, no shell) into a directory.

``fetch_video(url, dest_dir, settings)``:

1. checks the URL against the safety policy (``workers.download.safety``);
2. asks yt-dlp for the video's metadata and refuses, before downloading,
   a playlist, a live stream, a video longer than ``max_video_seconds`` or
   larger than ``max_download_mb`` (when the metadata tells), or a media URL
   the policy refuses;
3. downloads the selected format, stopping as soon as the server announces,
   or the download reaches, more than ``max_download_mb``, or the attempt
   (extraction included) runs past ``max_download_seconds``: a wall-clock
   deadline enforced by a watchdog (``workers.download.deadline``), so a
   server that trickles bytes cannot hold it longer; that failure is final;
4. probes the file and refuses it (deleting it) when it is longer than
   ``max_video_seconds`` after all (metadata is often silent about length);
5. names the file ``<stem>.<ext>`` in ``dest_dir``: ``stem`` is generated (or
   given by the caller, letters, digits, ``_`` and ``-`` only), ``ext`` is
   kept only when it is 1 to 5 lowercase letters or digits. Nothing from
   scraped metadata becomes part of a path.

Timeouts, dropped connections and HTTP 429/5xx are retried
(``download_retries``, with exponential backoff from
``download_retry_backoff``; a partial file is resumed) and then raised as
``TransientDownloadError``; everything else is final: ``DownloadError``
(404, too large, too long, unsupported URL ...) or ``UnsafeURL``.
"""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from yt_dlp.utils import DownloadCancelled

from workers.download.deadline import DeadlinePassed, deadline
from workers.download.safety import UrlPolicy
from workers.download.ytdl import SafeYoutubeDL, classify_error, ytdl_params
from workers.errors import BadVideo, DownloadError, TrackerError, TransientDownloadError, UnsafeURL
from workers.retrying import call_with_retries
from workers.sanitize import storable
from workers.video_ref import VideoRef, ref_from_info

_STEM = re.compile(r"[A-Za-z0-9_-]{1,64}")
_EXT = re.compile(r"[a-z0-9]{1,5}")
DURATION_SLACK = 1.0  # seconds a probed video may exceed the limit by (container rounding)
MB = 1024 * 1024


@dataclass(frozen=True)
class FetchedVideo:
    """A downloaded video: where it is, what it is, and its metadata from yt-dlp."""

    path: Path
    url: str  # the URL that was fetched
    size: int  # bytes
    duration: float | None  # seconds, probed from the file
    ref: VideoRef  # platform, id, author, caption ... as yt-dlp saw them
    attempts: int


class _Stop(DownloadCancelled):
    """Raised from the progress hook to abort a download; carries our error."""

    def __init__(self, error: TrackerError):
        super().__init__(str(error))
        self.error = error


def new_stem() -> str:
    """A fresh file stem: 32 hex digits."""
    return uuid.uuid4().hex


def _mb(n: float) -> str:
    return f"{n / MB:.1f} MB"


def _limit_bytes(settings) -> int:
    return int(settings.max_download_mb * MB)


def _progress_guard(url: str, settings) -> Callable[[dict], None]:
    limit = _limit_bytes(settings)
    started = time.monotonic()

    def hook(status: dict) -> None:
        total = status.get("total_bytes") or status.get("total_bytes_estimate")
        done = status.get("downloaded_bytes") or 0
        if total and total > limit:
            raise _Stop(DownloadError(f"{url}: the server announces {_mb(total)}, over the {_mb(limit)} limit (max_download_mb)"))
        if done > limit:
            raise _Stop(DownloadError(f"{url}: download passed {_mb(limit)}, the limit (max_download_mb); stopped"))
        if time.monotonic() - started > settings.max_download_seconds:
            raise _Stop(too_slow(url, settings))

    return hook


def too_slow(url: str, settings) -> DownloadError:
    """Final, not retried: a server that needs longer than the deadline for one attempt
    would hold an io slot that long again on every retry."""
    return DownloadError(
        f"{url}: download took longer than {settings.max_download_seconds:g} s (max_download_seconds); the server is too slow, stopped"
    )


def refuse_by_metadata(info: dict[str, Any], url: str, settings, policy: UrlPolicy) -> None:
    """Refuse, before downloading, what the metadata already rules out."""
    kind = info.get("_type", "video")
    if kind in ("playlist", "multi_video"):
        raise DownloadError(f"{url}: is a playlist, not one video; add it as a source to list its videos")
    if kind != "video":
        raise DownloadError(f"{url}: yt-dlp found no video here ({kind})")
    if info.get("is_live") or info.get("live_status") in ("is_live", "is_upcoming"):
        raise DownloadError(f"{url}: is a live stream; only recorded videos are downloaded")
    duration = info.get("duration")
    if isinstance(duration, (int, float)) and duration > settings.max_video_seconds:
        raise DownloadError(f"{url}: video is {duration:.0f} s long, over the {settings.max_video_seconds:.0f} s limit (max_video_seconds)")
    formats = info.get("requested_formats") or [info]
    sizes = [f.get("filesize") or f.get("filesize_approx") for f in formats]
    if all(isinstance(s, (int, float)) for s in sizes) and sum(sizes) > _limit_bytes(settings):
        raise DownloadError(f"{url}: video is {_mb(sum(sizes))}, over the {_mb(_limit_bytes(settings))} limit (max_download_mb)")
    for fmt in formats:
        media_url = fmt.get("url")
        if isinstance(media_url, str) and media_url.startswith(("http://", "https://")):
            policy.check(media_url)
        elif isinstance(media_url, str) and not media_url.startswith(("http://", "https://")):
            raise UnsafeURL(f"{url}: media URL has a scheme other than http(s); refused")


def _neutral_ext(info: dict[str, Any]) -> None:
    """Replace odd extensions in metadata so yt-dlp's own file names stay plain."""
    for fmt in [info, *(info.get("formats") or []), *(info.get("requested_formats") or [])]:
        ext = fmt.get("ext")
        if ext is not None and not (isinstance(ext, str) and _EXT.fullmatch(ext)):
            fmt["ext"] = "mp4"


def _remove_partials(dest_dir: Path, stem: str) -> None:
    for leftover in dest_dir.glob(f"{stem}.*"):
        if leftover.is_file():
            leftover.unlink(missing_ok=True)


def _downloaded_file(result: dict[str, Any], dest_dir: Path, stem: str) -> Path:
    """The file yt-dlp wrote, renamed to ``<stem>.<ext>``; refused if it is not in ``dest_dir``."""
    candidates = [d.get("filepath") for d in result.get("requested_downloads") or []]
    candidates = [Path(c) for c in candidates if c]
    if not candidates:
        candidates = [p for p in dest_dir.glob(f"{stem}.*") if p.suffix not in (".part", ".ytdl")]
    for path in candidates:
        real = path.resolve()
        if real.parent != dest_dir.resolve():
            raise DownloadError(f"yt-dlp wrote outside the download directory ({path.name!r}); refused")
        if real.is_file():
            ext = real.suffix[1:].lower()
            final = dest_dir / f"{stem}.{ext if _EXT.fullmatch(ext) else 'video'}"
            if real != final.resolve():
                real.replace(final)
            return final
    raise DownloadError("the download produced no file (the server may have refused it)")


def _check_duration(path: Path, url: str, settings) -> float | None:
    from workers.video import probe_video

    try:
        duration = probe_video(path).duration
    except BadVideo:
        path.unlink(missing_ok=True)
        raise BadVideo(f"{url}: the downloaded file is not a playable video") from None
    if duration > settings.max_video_seconds + DURATION_SLACK:
        path.unlink(missing_ok=True)
        raise DownloadError(
            f"{url}: video is {duration:.0f} s long, over the {settings.max_video_seconds:.0f} s limit (max_video_seconds); deleted"
        )
    return duration or None


def _attempt(url: str, dest_dir: Path, stem: str, settings, policy: UrlPolicy) -> tuple[Path, dict[str, Any]]:
    params = ytdl_params(
        settings,
        format=settings.download_format,
        paths={"home": str(dest_dir), "temp": str(dest_dir)},
        outtmpl={"default": f"{stem}.%(ext)s"},
        restrictfilenames=True,
        windowsfilenames=True,
        progress_hooks=[_progress_guard(url, settings)],
        continuedl=True,
        writethumbnail=False,
        writeinfojson=False,
        writesubtitles=False,
        postprocessors=[],
    )
    with SafeYoutubeDL(params, policy) as ydl:
        try:
            info = ydl.extract_info(url, download=False)
        except Exception as err:  # noqa: BLE001 - yt-dlp raises many kinds; classify them all
            raise classify_error(err, url, ydl) from None
        if not info:
            raise DownloadError(f"{url}: yt-dlp found no video")
        refuse_by_metadata(info, url, settings, policy)
        _neutral_ext(info)
        try:
            result = ydl.process_ie_result(info, download=True)
        except Exception as err:  # noqa: BLE001
            for cause in (err, getattr(err, "exc_info", (None, None))[1], err.__context__):
                if isinstance(cause, _Stop):
                    raise cause.error from None
            raise classify_error(err, url, ydl) from None
        return _downloaded_file(result or info, dest_dir, stem), info


def fetch_video(
    url: str,
    dest_dir: str | Path,
    settings,
    *,
    stem: str | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> FetchedVideo:
    """Download ``url`` into ``dest_dir`` as ``<stem>.<ext>`` (see the module doc for the rules).

    Raises ``UnsafeURL``, ``DownloadError`` (final), ``TransientDownloadError``
    (after ``settings.download_retries`` retries) or ``BadVideo``.
    """
    if stem is None:
        stem = new_stem()
    elif not _STEM.fullmatch(stem):
        raise ValueError(f"file stem must be 1-64 letters, digits, '_' or '-', not {stem!r}")
    dest_dir = Path(dest_dir)
    dest_dir.mkdir(parents=True, exist_ok=True)
    policy = UrlPolicy.from_settings(settings)
    attempts = 0

    def once():
        nonlocal attempts
        attempts += 1
        policy.check(url)  # refused before any request; a DNS hiccup is retried
        try:
            with deadline(settings.max_download_seconds):  # enforced from outside yt-dlp (slow servers)
                return _attempt(url, dest_dir, stem, settings, policy)
        except DeadlinePassed:
            raise too_slow(url, settings) from None

    try:
        path, info = call_with_retries(
            once,
            retries=settings.download_retries,
            backoff=settings.download_retry_backoff,
            retry_on=(TransientDownloadError,),
            what=f"download of {url}",
            sleep=sleep,
        )
    except TransientDownloadError as err:
        _remove_partials(dest_dir, stem)
        raise TransientDownloadError(f"{err} (gave up after {attempts} attempts)") from None
    except TrackerError:
        _remove_partials(dest_dir, stem)
        raise
    duration = _check_duration(path, url, settings)
    return FetchedVideo(
        path=path,
        url=url,
        size=path.stat().st_size,
        duration=duration,
        ref=ref_from_info(storable(info), fallback_url=url),  # yt-dlp's text may hold lone surrogates
        attempts=attempts,
    )


def fetch_ref(ref: VideoRef, dest_dir: str | Path, settings, *, stem: str | None = None) -> FetchedVideo:
    """Download a listed video: its direct media URL when the listing gave one, else its page.

    When the media URL fails for good (expired CDN links answer 403/404), the
    page URL is tried. The listing's metadata is kept; yt-dlp's fills gaps.
    """
    urls = [u for u in (ref.media_url, ref.url) if u and u.startswith(("http://", "https://"))]
    if not urls:
        raise DownloadError(f"{ref.key}: no http(s) URL to download")
    for i, url in enumerate(dict.fromkeys(urls)):
        try:
            fetched = fetch_video(url, dest_dir, settings, stem=stem)
        except UnsafeURL:
            raise
        except DownloadError:
            if i + 1 < len(set(urls)):
                continue
            raise
        merged = VideoRef(**{**fetched.ref.to_json(), **{k: v for k, v in ref.to_json().items() if v}})
        return FetchedVideo(fetched.path, fetched.url, fetched.size, fetched.duration, merged, fetched.attempts)
    raise AssertionError("unreachable")
