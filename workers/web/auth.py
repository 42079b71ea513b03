"""Who may use the review app, and the checks every request goes through.

- Binding: loopback by default; any other address needs a login (``web_password``,
  accounts made with ``tiktok-tracker user add``) or a trusted auth-proxy header
  (``web_auth_header``), else ``check_bind`` refuses with a one-line error.
- Login: a name and password form that stores the user, role and account epoch in a
  signed session cookie (HttpOnly, SameSite=Lax; Secure with ``web_secure_cookies``).
  ``web_password`` is one admin account named ``web_user``. With no login configured
  (loopback only), everyone is the local admin. Behind a proxy the role comes from
  ``web_auth_role_header`` or ``web_default_role``.
- CSRF: a random token per session, in a hidden field of every form; every
  POST without it is refused with 403 (``csrf_ok``).
- Roles: each POST names the lowest role it needs (``workers.accounts``); the app
  answers 403 with one line naming it.
"""

from __future__ import annotations

import hmac
import secrets
from dataclasses import dataclass
from urllib.parse import urlsplit

from starlette.requests import Request

from workers.accounts import ROLES, VIEWER
from workers.errors import TrackerError
from workers.listen import is_loopback
from workers.settings import Settings

CSRF_FIELD = "csrf"
CSRF_HEADER = "x-csrf-token"


@dataclass(frozen=True)
class User:
    """Who a request is from: the name recorded on what they do, and their role."""

    name: str
    role: str
    account: bool = False  # an account in the database (may change its password)


def password_of(settings: Settings) -> str:
    return settings.web_password.get_secret_value() if settings.web_password else ""


def auth_required(settings: Settings, has_accounts: bool = False) -> bool:
    return bool(password_of(settings) or settings.web_auth_header or has_accounts)


def check_bind(host: str, settings: Settings, has_accounts: bool = False) -> None:
    """Refuse to serve beyond this machine without a login."""
    if not is_loopback(host) and not auth_required(settings, has_accounts):
        raise TrackerError(
            f"refusing to bind {host} without a login: set TT_WEB_PASSWORD, add accounts (tiktok-tracker user add), "
            "or TT_WEB_AUTH_HEADER behind an authenticating proxy; or bind 127.0.0.1"
        )


def proxy_user(request: Request, settings: Settings) -> User | None:
    """The user a trusted proxy names, with its role header's role (an unknown one: viewer)."""
    if not settings.web_auth_header:
        return None
    name = request.headers.get(settings.web_auth_header)
    if not name:
        return None
    role = settings.web_default_role
    if settings.web_auth_role_header and request.headers.get(settings.web_auth_role_header):
        given = request.headers[settings.web_auth_role_header].strip().lower()
        role = given if given in ROLES else VIEWER
    return User(name[:128], role)


def check_password(settings: Settings, given: str) -> bool:
    expected = password_of(settings)
    return bool(expected) and hmac.compare_digest(given.encode(), expected.encode())


def client_address(request: Request) -> str:
    return request.client.host if request.client else "unknown"


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
