"""yt-dlp as a library, with our safety policy on every request it makes.

``SafeYoutubeDL`` is a ``yt_dlp.YoutubeDL`` that applies ``UrlPolicy``:

1. before each request yt-dlp sends through ``urlopen``: extractor page and
   API calls, the media download (``HttpFD``), HLS/DASH fragments and keys;
2. at each redirect hop, before it is followed, for the two HTTP handlers
   yt-dlp ships (``requests`` and ``urllib``), by hooking their redirect step;
3. on the final URL of every response, before its body is read (this also
   covers handlers whose redirects we cannot hook, such as ``curl_cffi``,
   which yt-dlp uses when ``impersonate`` is set: there an intermediate hop is
   requested, but its answer is never read).

External downloaders (ffmpeg, aria2c) make their own connections, so they are
switched off: downloads use yt-dlp's native downloaders. Not covered: DNS
rebinding (a name that resolves to a public address when checked and a
private one when connected a moment later); for that, run the workers behind
an egress proxy (``proxy`` setting) or a firewall that drops private ranges.

``ytdl_params`` builds the options shared by listing and downloading from
settings (proxy, cookies, impersonation, timeouts); ``classify_error`` turns
what yt-dlp raises into our permanent / transient errors.
"""

from __future__ import annotations

import logging
import re
import socket
import urllib.request
from collections.abc import Iterator
from typing import Any

import yt_dlp
from yt_dlp.networking.exceptions import HTTPError, RequestError, TransportError
from yt_dlp.utils import ExtractorError

from workers.download.safety import UrlPolicy
from workers.errors import DownloadError, TrackerError, TransientDownloadError, UnsafeURL

log = logging.getLogger(__name__)

# HTTP statuses worth retrying later; others (404, 403, 410 ...) are final.
TRANSIENT_STATUSES = {408, 425, 429, 500, 502, 503, 504, 520, 521, 522, 523, 524}
_TRANSIENT_WORDS = re.compile(
    r"timed? ?out|timeout|temporar|connection (?:reset|refused|aborted)|remote end closed|"
    r"incomplete ?read|content too short|network is unreachable|try again|"
    r"name resolution|failed to resolve|name or service not known|nodename nor servname|getaddrinfo failed",  # DNS
    re.IGNORECASE,
)


class RefusedRequest(RequestError):
    """A request refused by the URL policy (a yt-dlp ``RequestError`` so yt-dlp passes it up)."""


class _Logger:
    """Routes yt-dlp's chatter to ``logging`` instead of the terminal."""

    def debug(self, msg: str) -> None:
        log.debug("%s", msg)

    def info(self, msg: str) -> None:
        log.debug("%s", msg)

    def warning(self, msg: str) -> None:
        log.info("yt-dlp: %s", msg)

    def error(self, msg: str) -> None:
        log.info("yt-dlp: %s", msg)


class SafeYoutubeDL(yt_dlp.YoutubeDL):
    """``YoutubeDL`` whose every request and redirect passes ``policy.check``.

    The first refusal is kept in ``refused`` (yt-dlp may wrap or swallow the
    exception on its way up), so callers can report the real reason.
    """

    def __init__(self, params: dict[str, Any], policy: UrlPolicy):
        self.url_policy = policy
        self.refused: list[UnsafeURL] = []
        super().__init__(params)

    def guard(self, url: str) -> None:
        """Raise ``RefusedRequest`` when ``url`` may not be fetched."""
        try:
            self.url_policy.check(url)
        except UnsafeURL as err:
            self.refused.append(err)
            raise RefusedRequest(str(err)) from err
        except TrackerError as err:  # host does not resolve
            raise RefusedRequest(str(err)) from err

    def urlopen(self, req):
        url = req if isinstance(req, str) else getattr(req, "url", None) or req.full_url
        self.guard(url)
        response = super().urlopen(req)
        final = getattr(response, "url", None)
        if final and final != url:
            try:
                self.guard(final)
            except RefusedRequest:
                response.close()
                raise
        return response

    def build_request_director(self, handlers, preferences=None):
        director = super().build_request_director(handlers, preferences)
        for handler in director.handlers.values():
            _check_redirects_of(handler, self.guard)
        return director


def _check_redirects_of(handler, guard) -> None:
    """Make ``handler`` call ``guard(new_url)`` before following each redirect."""
    create = getattr(handler, "_create_instance", None)
    if create is None:
        return

    def create_checked(*args, **kwargs):
        instance = create(*args, **kwargs)
        if isinstance(instance, urllib.request.OpenerDirector):
            for h in instance.handlers:
                if isinstance(h, urllib.request.HTTPRedirectHandler):
                    h.redirect_request = _guarded_urllib_redirect(h.redirect_request, guard)
        elif hasattr(instance, "rebuild_method") and hasattr(instance, "resolve_redirects"):  # requests.Session
            instance.rebuild_method = _guarded_requests_redirect(instance.rebuild_method, guard)
        return instance

    handler._create_instance = create_checked


def _guarded_urllib_redirect(redirect_request, guard):
    def checked(req, fp, code, msg, headers, newurl):
        guard(newurl)
        return redirect_request(req, fp, code, msg, headers, newurl)

    return checked


def _guarded_requests_redirect(rebuild_method, guard):
    def checked(prepared_request, response):
        rebuild_method(prepared_request, response)
        guard(prepared_request.url)  # the next hop, resolved against the last one

    return checked


def ytdl_params(settings, **extra: Any) -> dict[str, Any]:
    """yt-dlp options from settings: quiet, no shell tools, proxy, cookies, impersonation."""
    params: dict[str, Any] = {
        "quiet": True,
        "no_warnings": True,
        "noprogress": True,
        "logger": _Logger(),
        "socket_timeout": settings.download_timeout,
        # Our own loop retries (workers.download.fetch), so attempts stay countable.
        "retries": 0,
        "extractor_retries": 0,
        "fragment_retries": settings.download_retries,
        "file_access_retries": 1,
        "external_downloader": {"default": "native"},
        "hls_prefer_native": True,
        "noplaylist": True,
        "ignoreerrors": False,
        "cachedir": False,
        "color": {"stdout": "never", "stderr": "never"},
    }
    if settings.proxy:
        params["proxy"] = settings.proxy
    if settings.cookies_file:
        params["cookiefile"] = str(settings.cookies_file)
    if settings.impersonate:
        from yt_dlp.networking.impersonate import ImpersonateTarget

        params["impersonate"] = ImpersonateTarget.from_str(settings.impersonate.lower())
    params.update(extra)
    return params


def open_ytdl(settings, **extra: Any) -> SafeYoutubeDL:
    """A ``SafeYoutubeDL`` with ``ytdl_params(settings, **extra)`` and the settings' allow-list."""
    return SafeYoutubeDL(ytdl_params(settings, **extra), UrlPolicy.from_settings(settings))


def _causes(err: BaseException | None) -> Iterator[BaseException]:
    seen: set[int] = set()
    stack = [err]
    while stack:
        e = stack.pop()
        if e is None or id(e) in seen:
            continue
        seen.add(id(e))
        yield e
        exc_info = getattr(e, "exc_info", None)
        if isinstance(exc_info, tuple) and len(exc_info) > 1:
            stack.append(exc_info[1])
        stack.extend(
            [getattr(e, "cause", None) if isinstance(getattr(e, "cause", None), BaseException) else None, e.__cause__, e.__context__]
        )


def _clean_message(err: BaseException) -> str:
    text = getattr(err, "orig_msg", None) or str(err)
    text = re.sub(r"^(?:ERROR: )?(?:\[[\w:]+\] )?(?:[\w-]+: )?", "", text.strip(), count=1)
    text = text.replace("\r", "").replace("[download] Got error: ", "")
    return " ".join(text.split())


def classify_error(err: BaseException, url: str, ydl: SafeYoutubeDL | None = None) -> TrackerError:
    """Our error for what yt-dlp raised: ``UnsafeURL``, ``DownloadError`` or ``TransientDownloadError``."""
    if ydl is not None and ydl.refused:
        return ydl.refused[0]
    chain = list(_causes(err))
    for e in chain:
        if isinstance(e, TrackerError):
            return e
    for e in chain:
        if isinstance(e, HTTPError):
            status = e.status
            reason = f"HTTP {status} {e.reason or ''}".strip()
            if status in TRANSIENT_STATUSES:
                return TransientDownloadError(f"{url}: {reason}")
            return DownloadError(f"{url}: {reason}")
    for e in chain:
        if isinstance(e, (TransportError, TimeoutError, socket.timeout, ConnectionError)):
            return TransientDownloadError(f"{url}: {_clean_message(e) or type(e).__name__}")
    message = _clean_message(err)
    if "Unsupported URL" in message:
        return DownloadError(f"{url}: no extractor supports this URL")
    if _TRANSIENT_WORDS.search(message) or re.search(r"HTTP Error (?:429|5\d\d)", message):
        return TransientDownloadError(f"{url}: {message}")
    if any(isinstance(e, ExtractorError) and not e.expected for e in chain):
        return DownloadError(f"{url}: extraction failed: {message}")
    return DownloadError(f"{url}: {message}")
