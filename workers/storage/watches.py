"""The ``watches`` table: sources scraped on a schedule, and how their last run went."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime, timedelta

from sqlalchemy import select, text, update
from sqlalchemy.orm import Session

from workers.errors import TrackerError
from workers.storage.db import get_engine
from workers.storage.models import Watch, utcnow

_PG_QUEUEING_LOCK = 0x7474_7771  # "ttwq": the advisory lock of watch runs' counting and queueing


@contextmanager
def queueing_turn(url: str) -> Iterator[None]:
    """One watch run at a time counts the backlog and queues (``pipeline.watches``), on every host,
    so that two runs never both fill the same room. Postgres: a session advisory lock held on a
    connection of its own; SQLite (one host): nothing. Watch runs are seconds apart; videos are
    never serialised by it."""
    engine = get_engine(url)
    if engine.dialect.name != "postgresql":
        yield
        return
    with engine.connect() as conn:
        conn.execute(text("SELECT pg_advisory_lock(:key)"), {"key": _PG_QUEUEING_LOCK})
        conn.commit()
        try:
            yield
        finally:
            conn.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": _PG_QUEUEING_LOCK})
            conn.commit()


class WatchNotFound(TrackerError):
    """No watch has that id."""


def add(
    session: Session,
    source: str,
    targets: Sequence[str],
    every_seconds: float,
    now: datetime,
    all_frames: bool = False,
    by: str | None = None,
    expire_after_seconds: float | None = None,
) -> Watch:
    """A new watch, due at once (``all_frames``: its videos score every sampled frame; ``by``: who added it;
    ``expire_after_seconds``: its videos not started within that fail as expired)."""
    watch = Watch(
        source=source,
        targets=list(targets),
        every_seconds=float(every_seconds),
        enabled=True,
        next_run_at=now,
        last_warnings=[],
        created_at=now,
        all_frames=all_frames,
        changed_by=by,
        expire_after_seconds=expire_after_seconds,
    )
    session.add(watch)
    session.flush()
    return watch


def get(session: Session, watch_id: int) -> Watch:
    watch = session.get(Watch, watch_id)
    if watch is None:
        raise WatchNotFound(f"no watch with id {watch_id}: see `tiktok-tracker watch list`")
    return watch


def all_watches(session: Session) -> list[Watch]:
    return list(session.scalars(select(Watch).order_by(Watch.id)))


def set_enabled(session: Session, watch_id: int, enabled: bool, by: str | None = None) -> Watch:
    """Switch a watch on or off (a disabled one is never due), recording who did."""
    watch = get(session, watch_id)
    watch.enabled, watch.changed_by = enabled, by
    session.flush()
    return watch


def remove(session: Session, watch_id: int) -> Watch:
    watch = get(session, watch_id)
    session.delete(watch)
    return watch


def due(session: Session, now: datetime) -> list[int]:
    """Ids of the enabled watches whose next run is due, the most overdue first."""
    return list(session.scalars(select(Watch.id).where(Watch.enabled.is_(True), Watch.next_run_at <= now).order_by(Watch.next_run_at)))


def claim_run(session: Session, watch: Watch, now: datetime, force: bool = False) -> bool:
    """Start a run of ``watch``: its next run moves ``every_seconds`` on. False when it is not
    due (unless ``force``), or another process started this run first. The last run's time
    and outcome stay as they are until ``record_run`` replaces both at once, so that
    ``watch list`` never shows one run's counts under another run's time."""
    query = update(Watch).where(Watch.id == watch.id)
    if not force:
        query = query.where(Watch.enabled.is_(True), Watch.next_run_at <= now)
    done = session.execute(
        query.values(next_run_at=now + timedelta(seconds=watch.every_seconds)).execution_options(synchronize_session=False)
    )
    return done.rowcount == 1


def record_run(
    session: Session,
    watch_id: int,
    listed: int | None,
    enqueued: int,
    warnings: Sequence[str],
    error: str | None,
    started_at: datetime | None = None,
    failed: bool = False,
    deferred: int = 0,
) -> None:
    """How the run that started at ``started_at`` went: shown by ``watch list``, never silently dropped
    (``deferred``: new videos left for a later run, the backlog at its bound).
    A failed run (an ``error``, or ``failed``: blocked by the platform) adds one to the watch's failed runs in a
    row; any other sets them to 0 and is its last success."""
    watch = session.get(Watch, watch_id)
    if watch is None:  # removed while it ran
        return
    if started_at is not None:
        watch.last_run_at = started_at
    watch.last_listed, watch.last_enqueued = listed, enqueued
    watch.last_warnings, watch.last_error, watch.last_deferred = list(warnings), error, deferred
    if failed or error is not None:
        watch.failed_runs = (watch.failed_runs or 0) + 1
    else:
        watch.failed_runs, watch.last_success_at = 0, started_at or utcnow()
