"""Who may use the review app, and the checks every request goes through.

- Binding: loopback by default; any other address needs a password
  (``web_password``) or a trusted auth-proxy header (``web_auth_header``),
  else ``check_bind`` refuses with a one-line error.
- Login: a password form that stores the user in a signed session cookie
  (HttpOnly, SameSite=Lax; Secure with ``web_secure_cookies``). With neither
  a password nor a proxy header set (loopback only), everyone is the local user.
- CSRF: a random token per session, in a hidden field of every form; every
  POST without it is refused with 403 (``csrf_ok``).
"""

from __future__ import annotations

import hmac
import ipaddress
import secrets
import socket
from urllib.parse import urlsplit

from starlette.requests import Request

from workers.errors import TrackerError
from workers.settings import Settings

CSRF_FIELD = "csrf"
CSRF_HEADER = "x-csrf-token"


def password_of(settings: Settings) -> str:
    return settings.web_password.get_secret_value() if settings.web_password else ""


def auth_required(settings: Settings) -> bool:
    return bool(password_of(settings) or settings.web_auth_header)


def is_loopback(host: str) -> bool:
    """Whether ``host`` (an address or a name) is this machine only."""
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        pass
    if host == "localhost":
        return True
    try:
        addresses = {info[4][0] for info in socket.getaddrinfo(host, None)}
    except OSError:
        return False
    return bool(addresses) and all(ipaddress.ip_address(a.split("%")[0]).is_loopback for a in addresses)


def check_bind(host: str, settings: Settings) -> None:
    """Refuse to serve beyond this machine without a login."""
    if not is_loopback(host) and not auth_required(settings):
        raise TrackerError(
            f"refusing to bind {host} without a login: set TT_WEB_PASSWORD (or TT_WEB_AUTH_HEADER behind "
            "an authenticating proxy), or bind 127.0.0.1"
        )


def current_user(request: Request, settings: Settings) -> str | None:
    """The logged-in user; "local" when no login is configured; None when not logged in."""
    if settings.web_auth_header:
        name = request.headers.get(settings.web_auth_header)
        if name:
            return name[:128]
    if not auth_required(settings):
        return "local"
    return request.session.get("user")


def check_password(settings: Settings, given: str) -> bool:
    expected = password_of(settings)
    return bool(expected) and hmac.compare_digest(given.encode(), expected.encode())


def csrf_token(request: Request) -> str:
    token = request.session.get(CSRF_FIELD)
    if not token:
        token = request.session[CSRF_FIELD] = secrets.token_urlsafe(32)
    return token


def csrf_ok(request: Request, form) -> bool:
    expected = request.session.get(CSRF_FIELD)
    given = form.get(CSRF_FIELD) or request.headers.get(CSRF_HEADER) or ""
    return bool(expected) and hmac.compare_digest(str(given).encode(), expected.encode())


def local_path(target: str | None, default: str = "/") -> str:
    """``target`` when it is a path on this site (no scheme, no host, no '//'), else ``default``."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return default
    parts = urlsplit(target)
    return target if not parts.scheme and not parts.netloc else default
