"""The ``watches`` table: sources scraped on a schedule, and how their last run went."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Sequence

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from workers.errors import TrackerError
from workers.storage.models import Watch


class WatchNotFound(TrackerError):
    """No watch has that id."""


def add(session: Session, source: str, targets: Sequence[str], every_seconds: float, now: datetime) -> Watch:
    """A new watch, due at once."""
    watch = Watch(
        source=source, targets=list(targets), every_seconds=float(every_seconds), enabled=True,
        next_run_at=now, last_warnings=[], created_at=now,
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


def remove(session: Session, watch_id: int) -> Watch:
    watch = get(session, watch_id)
    session.delete(watch)
    return watch


def due(session: Session, now: datetime) -> list[int]:
    """Ids of the enabled watches whose next run is due, the most overdue first."""
    return list(
        session.scalars(
            select(Watch.id).where(Watch.enabled.is_(True), Watch.next_run_at <= now).order_by(Watch.next_run_at)
        )
    )


def claim_run(session: Session, watch: Watch, now: datetime, force: bool = False) -> bool:
    """Start a run of ``watch``: its next run moves ``every_seconds`` on, and the previous
    run's outcome is cleared (``is_running`` until ``record_run``), so that ``watch list``
    never shows the last run's counts under this run's time. False when it is not due
    (unless ``force``), or another process started this run first."""
    query = update(Watch).where(Watch.id == watch.id)
    if not force:
        query = query.where(Watch.enabled.is_(True), Watch.next_run_at <= now)
    done = session.execute(
        query.values(
            last_run_at=now, next_run_at=now + timedelta(seconds=watch.every_seconds),
            last_listed=None, last_enqueued=None, last_warnings=[], last_error=None,
        )
        .execution_options(synchronize_session=False)
    )
    return done.rowcount == 1


def is_running(watch: Watch) -> bool:
    """A run was claimed and has not recorded its outcome yet (or its process died)."""
    return watch.last_run_at is not None and watch.last_enqueued is None and watch.last_error is None


def record_run(
    session: Session, watch_id: int, listed: int | None, enqueued: int, warnings: Sequence[str], error: str | None
) -> None:
    """How the run went: shown by ``watch list``, never silently dropped."""
    watch = session.get(Watch, watch_id)
    if watch is None:  # removed while it ran
        return
    watch.last_listed, watch.last_enqueued = listed, enqueued
    watch.last_warnings, watch.last_error = list(warnings), error
