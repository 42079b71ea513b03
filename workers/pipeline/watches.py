"""Running watches: list a watch's source and queue the videos the database does not know.

Celery beat runs ``run_due_watches`` every ``watch_poll_interval`` seconds
(the ``run_watches`` task); ``tiktok-tracker watch run`` calls the same
functions in its own process. A run:

1. claims the watch (its next run moves ``every`` on; a run that another
   process claimed first is left to it);
2. lists the source with ``seen`` backed by the database, so only videos it
   has not recorded come back (``list_videos(..., seen=KnownVideos)``);
3. records and publishes one chain per new video (``submit``; the unique
   platform id turns a video that two runs list at once into one job);
4. stores what happened on the watch: videos listed and queued, warnings
   (e.g. "0 videos: likely blocked or rate limited"), or the error. Nothing
   is silent: ``watch list`` shows them.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from workers.errors import TrackerError
from workers.pipeline.counters import WATCH_RUNS, counters_for
from workers.pipeline.submit import BrokerUnavailable, Job, Publisher, resolve_targets, submit
from workers.settings import Settings
from workers.sources import list_videos
from workers.sources.base import BLOCKED_WARNING
from workers.storage import activity
from workers.storage import watches as watch_rows
from workers.storage.db import session_scope
from workers.storage.models import utcnow
from workers.storage.results import KnownVideos

log = logging.getLogger(__name__)


@dataclass
class WatchRun:
    """What one run of a watch did."""

    watch_id: int
    source: str
    listed: int | None = None  # videos the source returned (known ones included); None: not listed
    jobs: list[Job] = field(default_factory=list)  # the new videos queued
    warnings: list[str] = field(default_factory=list)
    error: str | None = None
    deferred: int = 0  # new videos left for a later run: the backlog was at its bound
    bound: str = ""  # which bound, in words ("backlog 10000 of 10000")

    @property
    def outcome(self) -> str:
        """``failed`` (an error), ``blocked`` (the source answered as a blocked one does) or ``ok``."""
        return "failed" if self.error else "blocked" if BLOCKED_WARNING in self.warnings else "ok"

    @property
    def failing(self) -> bool:
        return self.outcome != "ok"

    def to_json(self) -> dict:
        return {
            "watch_id": self.watch_id,
            "source": self.source,
            "listed": self.listed,
            "enqueued": len(self.jobs),
            "job_ids": [j.job_id for j in self.jobs],
            "warnings": self.warnings,
            "error": self.error,
            "deferred": self.deferred,
        }


def run_watch(
    settings: Settings, watch_id: int, publish: Publisher, *, force: bool = False, now: datetime | None = None
) -> WatchRun | None:
    """Run the watch if it is due (``force``: now, whatever its schedule); None when it was not
    run. Errors are recorded on the watch and returned, not raised (``WatchNotFound`` is)."""
    now = now or utcnow()
    url = settings.resolved_database_url
    with session_scope(url) as s:
        watch = watch_rows.get(s, watch_id)
        if not watch_rows.claim_run(s, watch, now, force):
            return None
        run, targets, all_frames = WatchRun(watch.id, watch.source), list(watch.targets), bool(watch.all_frames)
        expires_at = now + timedelta(seconds=watch.expire_after_seconds) if watch.expire_after_seconds else None
    try:
        resolve_targets(settings, targets)
        listing = list_videos(run.source, settings, seen=KnownVideos(url))
        run.listed, run.warnings = listing.listed, list(listing.warnings)
        with watch_rows.queueing_turn(url):  # counted and queued with no other run in between
            room, run.bound = backlog_room(settings, watch_id)
            run.deferred = max(0, len(listing.videos) - room)
            if run.deferred:  # shown by `watch list` and the web app's watches page
                run.warnings.append(f"deferred {run.deferred}: {run.bound}")
            wanted = listing.videos[:room]  # the rest: listed again (not yet known) by a later run
            run.jobs = submit(settings, wanted, targets, publish, watch_id=watch_id, all_frames=all_frames, expires_at=expires_at)
    except BrokerUnavailable as exc:
        run.jobs, run.error = exc.queued, str(exc)
    except TrackerError as exc:
        run.error = str(exc)
    except Exception as exc:  # a broken source must not stop the other watches
        log.exception("watch %s (%s) failed", watch_id, run.source)
        run.error = f"internal error ({type(exc).__name__}: {exc})"
    with session_scope(url) as s:
        watch_rows.record_run(
            s, watch_id, run.listed, len(run.jobs), run.warnings, run.error, started_at=now, failed=run.failing, deferred=run.deferred
        )
    counters_for(settings.broker_url).add(WATCH_RUNS, {"outcome": run.outcome})
    problems = "; ".join([*run.warnings, *([run.error] if run.error else [])])
    (log.warning if problems else log.info)(
        "watch %s (%s): listed %s, queued %d%s",
        watch_id,
        run.source,
        run.listed,
        len(run.jobs),
        f"; {problems}" if problems else "",
    )
    return run


def backlog_room(settings: Settings, watch_id: int) -> tuple[int, str]:
    """How many more videos the watch may queue now, and the tighter bound in words: the whole
    backlog stays within ``backlog_limit``, the watch's own within ``watch_backlog_limit``."""
    with session_scope(settings.resolved_database_url) as s:
        total, own = activity.backlog(s), activity.backlog(s, watch_id)
    global_room, own_room = settings.backlog_limit - total, settings.watch_backlog_limit - own
    if own_room < global_room:
        return max(0, own_room), f"this watch's backlog {own} of {settings.watch_backlog_limit} (watch_backlog_limit)"
    return max(0, global_room), f"backlog {total} of {settings.backlog_limit} (backlog_limit)"


def run_due_watches(settings: Settings, publish: Publisher, *, now: datetime | None = None) -> list[WatchRun]:
    """Run every enabled watch that is due; the runs that happened."""
    now = now or utcnow()
    with session_scope(settings.resolved_database_url) as s:
        due = watch_rows.due(s, now)
    runs = []
    for watch_id in due:
        try:
            run = run_watch(settings, watch_id, publish, now=now)
        except watch_rows.WatchNotFound:  # removed a moment ago
            continue
        if run is not None:
            runs.append(run)
    return runs
