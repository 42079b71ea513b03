"""Whether an alert goes out now, later (in a digest) or never: pure functions over the history.

Rules:

- one alert per (video, target), ever: a record ``sent`` or ``held`` for the
  pair means skip. A ``failed`` record (every channel failed) does not count,
  so the next pass tries again.
- with a cooldown, a target alerted less than ``cooldown`` ago is not alerted
  again: new positives are *held*; ``due_digests`` says when a target's held
  positives may go out together (its last alert is ``cooldown`` old), and
  sending that digest starts a new window.

The caller keeps the history (the ``alerts`` table) and passes it in.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from enum import Enum

SENT, HELD, FAILED = "sent", "held", "failed"


class Decision(str, Enum):
    SEND = "send"  # alert now
    HOLD = "hold"  # record as held; goes out in the target's next digest
    SKIP = "skip"  # already alerted (or held) for this video and target


@dataclass(frozen=True)
class AlertRecord:
    """One row of alert history."""

    video_key: str
    target: str
    status: str  # sent | held | failed
    at: datetime  # when it was sent, held or failed


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)


def _as_delta(cooldown: timedelta | float) -> timedelta:
    return cooldown if isinstance(cooldown, timedelta) else timedelta(minutes=float(cooldown))


def last_sent(history: Iterable[AlertRecord], target: str) -> datetime | None:
    times = [_aware(r.at) for r in history if r.target == target and r.status == SENT]
    return max(times) if times else None


def alert_decision(
    video_key: str,
    target: str,
    history: Iterable[AlertRecord],
    now: datetime,
    cooldown: timedelta | float = 0,
) -> Decision:
    """SEND, HOLD or SKIP for a new positive verdict (``cooldown``: a timedelta or minutes)."""
    history = list(history)
    if any(r.video_key == video_key and r.target == target and r.status in (SENT, HELD) for r in history):
        return Decision.SKIP
    window = _as_delta(cooldown)
    if window > timedelta(0):
        previous = last_sent(history, target)
        if previous is not None and _aware(now) - previous < window:
            return Decision.HOLD
    return Decision.SEND


def due_digests(history: Iterable[AlertRecord], now: datetime, cooldown: timedelta | float) -> dict[str, list[str]]:
    """Targets whose held alerts may go out now, each with the held video keys (oldest first)."""
    history = list(history)
    window = _as_delta(cooldown)
    held: dict[str, list[AlertRecord]] = {}
    for record in history:
        if record.status == HELD:
            held.setdefault(record.target, []).append(record)
    due: dict[str, list[str]] = {}
    for target, records in held.items():
        previous = last_sent(history, target)
        if previous is None or _aware(now) - previous >= window:
            due[target] = [r.video_key for r in sorted(records, key=lambda r: _aware(r.at))]
    return due
