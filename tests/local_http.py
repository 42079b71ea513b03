"""Local test servers on 127.0.0.1: media files, TikTok-shaped listings, webhooks, SMTP.

Nothing here touches the internet. ``MediaServer`` serves files from a folder
plus a few special routes; ``Receiver`` records what is POSTed to it.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlsplit

from tests.videos import write_video


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def local_settings(tmp_path: Path, **changes):
    """Settings for tests against these servers: 127.0.0.1 allow-listed, short timeouts, quick retries."""
    from workers.settings import Settings

    values = dict(data_dir=tmp_path / "data", allow_hosts=["127.0.0.1"], download_timeout=1.0,
                  download_retries=2, download_retry_backoff=0.01, folder_settle_seconds=0)
    return Settings(**{**values, **changes})


def tiny_video(path: Path, seconds: float = 2.0) -> Path:
    """A 64x48, 5 fps mp4 of ``seconds`` (about 1 KB a second)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    return write_video(path, seconds=seconds, fps=5, size=(64, 48))


class _QuietHTTPServer(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request, client_address):
        pass  # clients that hang up on purpose (timeouts, size limits) are expected


class _Server:
    def __init__(self, handler_cls):
        self.httpd = _QuietHTTPServer(("127.0.0.1", 0), handler_cls)
        self.httpd.owner = self
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}"

    def url(self, path: str) -> str:
        return self.base + path

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.httpd.shutdown()
        self.httpd.server_close()


class _MediaHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):  # keep test output clean
        pass

    def _send(self, status: int, body: bytes = b"", ctype: str = "text/plain", headers=None):
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        if self.command != "HEAD":
            try:
                self.wfile.write(body)
            except OSError:  # the client gave up (a timeout test): fine
                self.close_connection = True

    def do_HEAD(self):
        self.do_GET()

    def do_GET(self):
        server: MediaServer = self.server.owner
        parts = urlsplit(self.path)
        query = parse_qs(parts.query)
        server.hits.append(parts.path)
        if parts.path == "/redirect":
            self._send(302, headers={"Location": query["to"][0]})
            return
        if parts.path.startswith("/slow/"):
            time.sleep(server.slow_seconds)
            self._send(200, b"late", "video/mp4")
            return
        if parts.path.startswith("/trickle/"):
            # Slow loris: announces 1 MB, then sends a byte every 0.2 s (never silent long enough for a
            # socket timeout), and stops by itself after ``trickle_seconds``.
            self.send_response(200)
            self.send_header("Content-Type", "video/mp4")
            self.send_header("Content-Length", str(1 << 20))
            self.end_headers()
            if self.command == "HEAD":
                return
            stop = time.monotonic() + server.trickle_seconds
            try:
                while time.monotonic() < stop:
                    self.wfile.write(b"\0")
                    self.wfile.flush()
                    time.sleep(0.2)
            except OSError:
                pass
            self.close_connection = True
            return
        if parts.path in server.json_routes:
            body = json.dumps(server.json_routes[parts.path]).encode()
            self._send(200, body, "application/json")
            return
        if parts.path.startswith("/chunked/"):
            # No Content-Length: the size limit must be enforced while streaming.
            self.send_response(200)
            self.send_header("Content-Type", "video/mp4")
            self.send_header("Connection", "close")
            self.end_headers()
            try:
                for _ in range(64):
                    self.wfile.write(b"\0" * 65536)
            except OSError:
                pass
            self.close_connection = True
            return
        name = unquote(parts.path).lstrip("/")
        path = (server.root / name).resolve()
        if not name or server.root.resolve() not in path.parents or not path.is_file():
            self._send(404, b"not found")
            return
        ctype = "video/mp4" if path.suffix == ".mp4" else "application/octet-stream"
        data = path.read_bytes()
        rng = self.headers.get("Range")
        if rng and rng.startswith("bytes="):
            start = int(rng[6:].split("-")[0] or 0)
            chunk = data[start:]
            self._send(206, chunk, ctype, {"Content-Range": f"bytes {start}-{len(data) - 1}/{len(data)}",
                                           "Accept-Ranges": "bytes"})
            return
        self._send(200, data, ctype, {"Accept-Ranges": "bytes"})


class MediaServer(_Server):
    """Serves files under ``root``; ``/redirect?to=URL``; ``/slow/...`` (sleeps);
    ``/chunked/...`` (4 MB without Content-Length); ``/trickle/...`` (a byte every 0.2 s for
    ``trickle_seconds``); ``json_routes[path]`` as JSON."""

    def __init__(self, root: Path, slow_seconds: float = 3.0, trickle_seconds: float = 60.0):
        self.root = Path(root)
        self.slow_seconds = slow_seconds
        self.trickle_seconds = trickle_seconds
        self.json_routes: dict[str, object] = {}
        self.hits: list[str] = []
        super().__init__(_MediaHandler)


class _ReceiverHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def do_POST(self):
        server: Receiver = self.server.owner
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length)
        with server.lock:
            server.requests.append({"path": self.path, "headers": dict(self.headers), "body": body})
            key = self.headers.get("Idempotency-Key")
            if key is not None and key in server.keys:
                server.dropped += 1  # a repeat: what a receiver does with at-least-once delivery
            elif key is not None:
                server.keys.append(key)
            held = server.hold > 0
            server.hold -= held
        server.arrived.set()
        if held:  # answer late (at most hold_seconds: the server never hangs for good)
            server.released.wait(server.hold_seconds)
        status = server.statuses.pop(0) if server.statuses else 204
        try:
            self.send_response(status)
            self.send_header("Content-Length", "0")
            self.end_headers()
        except OSError:  # the sender is gone (killed while waiting for the answer)
            self.close_connection = True


class Receiver(_Server):
    """Records POSTs; answers with ``statuses`` in turn (then 204). ``keys``: the distinct
    ``Idempotency-Key`` headers in order of arrival, ``dropped``: repeats of a key already seen.
    With ``hold``, the first ``hold`` requests get their answer only on ``release()`` (or after
    ``hold_seconds``); ``arrived`` is set at each request."""

    def __init__(self, statuses: list[int] | None = None, hold: int = 0, hold_seconds: float = 30.0):
        self.requests: list[dict] = []
        self.statuses = list(statuses or [])
        self.keys: list[str] = []
        self.dropped = 0
        self.hold, self.hold_seconds = hold, hold_seconds
        self.arrived, self.released, self.lock = threading.Event(), threading.Event(), threading.Lock()
        super().__init__(_ReceiverHandler)

    def release(self) -> None:
        self.released.set()

    def __exit__(self, *exc):
        self.release()
        super().__exit__(*exc)


class SmtpServer:
    """An aiosmtpd server on 127.0.0.1 (with a login when ``user`` is given); ``messages``: what it received."""

    def __init__(self, user=None, password=None):
        from aiosmtpd.controller import Controller
        from aiosmtpd.smtp import AuthResult

        self.messages: list[bytes] = []
        outer = self

        class Handler:
            async def handle_DATA(self, server, session, envelope):
                outer.messages.append(envelope.content)
                outer.envelope = envelope
                return "250 OK"

        def authenticator(server, session, envelope, mechanism, auth_data):
            ok = auth_data.login.decode() == user and auth_data.password.decode() == password
            return AuthResult(success=ok)

        options = {"authenticator": authenticator, "auth_require_tls": False} if user else {}
        self.port = free_port()
        self.controller = Controller(Handler(), hostname="127.0.0.1", port=self.port, **options)

    def __enter__(self):
        self.controller.start()
        return self

    def __exit__(self, *exc):
        self.controller.stop()


def tiktok_item(n: int, media_url: str | None = None, **extra) -> dict:
    """One item as TikTok's web API (and TikTokApi's ``as_dict``) shapes it."""
    item = {
        "id": f"73000000000000000{n:02d}",
        "desc": f"video {n} #cats #fyp",
        "createTime": 1_700_000_000 + n,
        "author": {"uniqueId": f"user{n}", "nickname": f"User {n}"},
        "stats": {"playCount": 1000 * n, "diggCount": 10 * n, "commentCount": n, "shareCount": 2, "collectCount": "5"},
        "challenges": [{"title": "cats"}],
        "video": {"duration": 2, **({"playAddr": media_url} if media_url else {})},
    }
    item.update(extra)
    return item
