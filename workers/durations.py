"""Durations and points in time as people type them: ``30s``, ``15m``, ``2h``, ``1d``,
``1h30m``; ``--since 2026-01-31`` or ``--since 24h`` (that long ago)."""

from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone

from workers.errors import BadDuration

UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_DURATION = re.compile(r"(?:\d+(?:\.\d+)?[smhdw])+", re.IGNORECASE)
_PART = re.compile(r"(\d+(?:\.\d+)?)([smhdw])", re.IGNORECASE)


def parse_duration(text: str) -> float:
    """Seconds in ``text`` (``30s``, ``15m``, ``2h``, ``1d``, ``1w``, ``1h30m``, or a bare number
    of seconds); ``BadDuration`` when it is not one, or not positive."""
    raw = str(text).strip().replace(" ", "")
    if re.fullmatch(r"\d+(?:\.\d+)?", raw):
        seconds = float(raw)
    elif _DURATION.fullmatch(raw):
        seconds = sum(float(n) * UNITS[u.lower()] for n, u in _PART.findall(raw))
    else:
        raise BadDuration(f"not a duration: {text!r} (use e.g. 30s, 15m, 2h, 1d or 1h30m)")
    if seconds <= 0:
        raise BadDuration(f"duration must be more than zero: {text!r}")
    return seconds


def format_duration(seconds: float) -> str:
    """``5400`` -> ``"1h30m"``; whole seconds, largest units first."""
    left = int(round(seconds))
    if left <= 0:
        return "0s"
    parts = []
    for unit, size in sorted(UNITS.items(), key=lambda kv: -kv[1]):
        if unit == "w":
            continue  # "14d" reads better than "2w"
        count, left = divmod(left, size)
        if count:
            parts.append(f"{count}{unit}")
    return "".join(parts)


def parse_since(text: str, now: datetime | None = None) -> datetime:
    """A point in time: an ISO date or date-time (UTC unless it says otherwise), or a
    duration meaning that long before ``now``."""
    raw = str(text).strip()
    now = now or datetime.now(timezone.utc)
    try:
        moment = datetime.fromisoformat(raw.replace("Z", "+00:00"))
    except ValueError:
        try:
            return now - timedelta(seconds=parse_duration(raw))
        except BadDuration:
            raise BadDuration(f"not a date or a duration: {text!r} (use e.g. 2026-01-31, 2026-01-31T08:00 or 24h)") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)
