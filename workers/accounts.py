"""Accounts of the review app, without the web framework or the database: roles and what
each may do, the password hash, the failed-login limiter and the session idle rule.

- Roles are ordered: ``viewer`` < ``reviewer`` < ``admin``; an action names the lowest
  role it needs (``require``), so a refusal can say which one.
- Passwords: argon2id through argon2-cffi (salted, slow, memory-hard); a hash made with
  older parameters is rehashed at the next login (``needs_rehash``).
- Failed logins: counted per client address and per account name over windows such as
  "5/minute,20/hour" (``parse_limits``); ``LoginLimiter`` says how long to wait. It lives
  in the one web process (``tiktok-tracker web`` runs one uvicorn process), on a clock
  the tests drive.
"""

from __future__ import annotations

import functools
import math
import re
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from workers.errors import TrackerError

VIEWER, REVIEWER, ADMIN = "viewer", "reviewer", "admin"
ROLES = (VIEWER, REVIEWER, ADMIN)  # lowest first
ROLE_RIGHTS = {
    VIEWER: "read every page and export",
    REVIEWER: "also confirm and reject detections, mark frames",
    ADMIN: "also rescan and retrain targets (correct them), and manage watches",
}
NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$")
MIN_PASSWORD = 8

_hasher = PasswordHasher()  # argon2id, the library's current recommended parameters


def check_role(role: str) -> str:
    if role not in ROLES:
        raise TrackerError(f"role must be one of {', '.join(ROLES)}, not {role!r}")
    return role


def check_name(name: str) -> str:
    if not NAME.match(name):
        raise TrackerError(f"account name {name!r}: 1-64 letters, digits, '.', '_', '@' or '-', starting with a letter or digit")
    return name


def allows(role: str | None, needed: str) -> bool:
    """Whether ``role`` may do what ``needed`` may (an unknown role may do nothing)."""
    return role in ROLES and ROLES.index(role) >= ROLES.index(needed)


def refusal(needed: str) -> str:
    """The one line a refused action answers."""
    return f"forbidden: this needs the {needed} role"


def hash_password(password: str) -> str:
    if len(password) < MIN_PASSWORD:
        raise TrackerError(f"a password needs at least {MIN_PASSWORD} characters")
    return _hasher.hash(password)


def verify_password(stored_hash: str, password: str) -> bool:
    try:
        return _hasher.verify(stored_hash, password)
    except (VerificationError, InvalidHashError):
        return False


def needs_rehash(stored_hash: str) -> bool:
    return _hasher.check_needs_rehash(stored_hash)


def dummy_verify(password: str) -> None:
    """As slow as checking a real account: an unknown name takes as long as a known one."""
    verify_password(_dummy_hash(), password)


@functools.cache
def _dummy_hash() -> str:
    """Made at the first unknown name, not at import (a hash costs ~0.2 s: every command would pay it)."""
    return _hasher.hash("not any account's password")


# --- failed logins ---------------------------------------------------------------------

UNITS = {"second": 1, "minute": 60, "hour": 3600, "day": 86400}


@dataclass(frozen=True)
class Window:
    attempts: int
    seconds: int


def parse_limits(text: str) -> tuple[Window, ...]:
    """``"5/minute,20/hour"`` -> windows (empty text: no limit)."""
    windows = []
    for part in filter(None, (p.strip() for p in text.split(","))):
        match = re.fullmatch(r"(\d+)\s*/\s*(\d*)\s*(second|minute|hour|day)s?", part)
        if not match or int(match.group(1)) < 1:
            raise TrackerError(f"failed-login limit {part!r}: write it as N/minute, N/hour, N/day (e.g. 5/minute,20/hour)")
        windows.append(Window(int(match.group(1)), int(match.group(2) or 1) * UNITS[match.group(3)]))
    return tuple(windows)


class LoginLimiter:
    """Failed logins per key (``addr:…``, ``user:…``); a key at a window's count waits until
    its oldest failure in that window leaves it. Thread-safe; ``clock`` is injectable."""

    def __init__(self, windows: Iterable[Window], clock: Callable[[], float] = time.time) -> None:
        self.windows = tuple(windows)
        self.clock = clock
        self._failures: dict[str, deque[float]] = {}
        self._lock = threading.Lock()
        self._longest = max((w.seconds for w in self.windows), default=0)

    def retry_after(self, keys: Iterable[str]) -> int:
        """Seconds to wait before another try with any of ``keys`` (0: go ahead)."""
        now = self.clock()
        wait = 0.0
        with self._lock:
            for key in keys:
                failures = self._prune(key, now)
                for w in self.windows:
                    recent = [t for t in failures if t > now - w.seconds]
                    if len(recent) >= w.attempts:
                        wait = max(wait, recent[-w.attempts] + w.seconds - now)
        return math.ceil(wait)

    def failed(self, keys: Iterable[str]) -> None:
        now = self.clock()
        with self._lock:
            for key in keys:
                self._failures[key] = self._prune(key, now)
                self._failures[key].append(now)

    def _prune(self, key: str, now: float) -> deque[float]:
        """The key's failures still inside the longest window; a key without any is dropped
        (no unbounded growth from one-off addresses)."""
        failures = self._failures.pop(key, deque())
        while failures and failures[0] <= now - self._longest:
            failures.popleft()
        if failures:
            self._failures[key] = failures
        return failures


def idle_expired(last_seen: float | None, now: float, idle_seconds: int) -> bool:
    """Whether a session last seen at ``last_seen`` has been idle too long (0: never)."""
    return bool(idle_seconds) and (last_seen is None or now - last_seen > idle_seconds)
