"""Beat's reaper: no video stays in a non-final state without a task behind it.

A stage's task retries transient errors for ``task_retry_window`` seconds; a
video can still be left mid-way when even its failure could not be recorded
(the database was down for longer than that), when the broker lost the
retry, or when a worker vanished with the task (the broker hands it out again
only after its visibility timeout, an hour by default). Every
``reaper_interval`` seconds, and once when any worker starts (``reap_at_start``),
the reaper looks for pipeline videos (those with a job id) whose stage lease
expired (their worker is gone: ``workers.pipeline.leases``) or whose status has
not changed for ``stall_timeout`` seconds (``videos.stuck``):

- fewer than ``stall_requeues`` requeues so far: the chain is published again
  from the stage that set the video's status (``stages.RESUME_AT``; stages
  are idempotent, so a chain that was only
  slow does its work twice at worst, never a second verdict or alert);
- otherwise the video fails with the reason (how long, in which state).

It also gives every recent positive verdict of a finished pipeline video an
alert row when the alert stage never wrote one (it failed for good, or never
ran): the row is stored ``failed`` with that reason, so the alert follow-up
pass sends it (cooldowns and digests apply as in the alert stage).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from datetime import datetime, timedelta

from sqlalchemy import and_, func, select

from workers.alerts import Decision
from workers.media.keys import media_id
from workers.pipeline import alerting, leases
from workers.pipeline.counters import REAPER_REQUEUES, VIDEOS_FINISHED
from workers.pipeline.stages import FINISHED, RESUME_AT, discard_media
from workers.storage import results, videos
from workers.storage.db import session_scope
from workers.storage.models import AlertRow, AlertStatus, Detection, Video, VideoStatus, as_utc, utcnow

log = logging.getLogger(__name__)
# Positives older than this never get a late alert (a database upgraded from before alerts existed).
ALERT_LOOKBACK = timedelta(days=7)
NO_ALERT_ROW = "the alert stage never recorded this alert (recovered by the reaper)"


def reap_stalled(ctx, requeue: Callable[[int, str], object], now: datetime | None = None) -> dict:
    """One pass (see the module docstring); ``requeue(video_id, stage)`` publishes a chain."""
    now = now or utcnow()
    settings = ctx.settings
    to_requeue: list[tuple[int, str]] = []
    to_discard: list[tuple[str, str | None]] = []  # media name, video key
    with session_scope(ctx.db_url) as s:
        stalled = s.scalars(
            select(Video).where(videos.stuck(now, settings.stall_timeout)).order_by(Video.id).with_for_update(skip_locked=True)
        ).all()
        for video in stalled:
            requeues = video.requeues
            why = _why_stuck(video, now)
            if requeues >= settings.stall_requeues or video.status not in RESUME_AT:
                reason = f"stalled: {why} while {video.status}, after {requeues} requeue(s) (stall_requeues)"
                results.set_status(video, VideoStatus.FAILED, reason)
                log.warning("video %s failed: %s", video.id, reason)
                to_discard.append((media_id(video.job_id, video.id), video.video_key))
            else:
                videos.count_requeue(video, now)  # the next look waits a whole stall_timeout again
                to_requeue.append((video.id, RESUME_AT[video.status]))
                log.warning("video %s: %s while %s: requeued from %s", video.id, why, video.status, RESUME_AT[video.status])
    for media, key in to_discard:
        discard_media(ctx, media, key)
    requeued = 0
    for video_id, stage in to_requeue:
        try:
            requeue(video_id, stage)
            requeued += 1
        except Exception as exc:  # noqa: BLE001 - broker down: the next pass after stall_timeout tries again
            log.error("video %s stalled and could not be requeued (%s: %s)", video_id, type(exc).__name__, exc)
    ctx.counters.add(REAPER_REQUEUES, amount=requeued)
    ctx.counters.add(VIDEOS_FINISHED, {"status": VideoStatus.FAILED}, len(to_discard))
    report = {"requeued": requeued, "failed": len(to_discard), "alert_rows": backfill_alert_rows(ctx, now)}
    if any(report.values()):
        log.info("reaper: %s", report)
    return report


def _why_stuck(video: Video, now: datetime) -> str:
    """What the reaper found: a worker gone (its lease expired), or no progress for a while."""
    lease = videos.lease_of(video)
    if lease is not None and lease.expired(now):
        return f"worker {lease.worker} gone (its lease expired at {lease.until:%H:%M:%S} UTC)"
    return f"no progress for {(now - as_utc(video.updated_at)).total_seconds():.0f} s"


def reap_at_start(
    ctx, requeue: Callable[[int, str], object], node: str | None = None, sleep: Callable[[float], object] = time.sleep
) -> None:
    """A worker that starts: one pass now, and one more once the leases seen now have either
    been renewed or expired (at most ``lease_seconds`` later), so that the videos of a worker
    killed just before this one started are requeued within that time, not at beat's next pass.
    The leases of this Celery node's processes that are gone (the same worker, restarted on this
    host under its stable name) are expired first: those videos are requeued by the first pass."""
    try:
        if node:
            leases.expire_dead_processes(ctx.db_url, node)
        reap_stalled(ctx, requeue)
        with session_scope(ctx.db_url) as s:
            latest = s.scalar(select(func.max(Video.lease_until)).where(Video.status.notin_(FINISHED), Video.job_id.isnot(None)))
        if latest is None:
            return
        sleep(max(0.0, (as_utc(latest) - utcnow()).total_seconds()) + 1.0)
        reap_stalled(ctx, requeue)
    except Exception as exc:  # noqa: BLE001 - never keep a worker from starting; beat's reaper runs anyway
        log.warning("reaper pass at worker start failed (%s: %s)", type(exc).__name__, exc)


def backfill_alert_rows(ctx, now: datetime) -> int:
    """Alert rows (``failed``: the follow-up pass sends them) for recent positives of finished
    pipeline videos that have none, once the alert stage had its ``stall_timeout``; how many."""
    cutoff = now - timedelta(seconds=ctx.settings.stall_timeout)
    with session_scope(ctx.db_url) as s:
        missing = s.execute(
            select(Detection.video_id, Detection.target_name, Detection.id)
            .join(Video, Video.id == Detection.video_id)
            .outerjoin(AlertRow, and_(AlertRow.video_id == Detection.video_id, AlertRow.target_name == Detection.target_name))
            .where(
                Detection.verdict == "positive",
                AlertRow.id.is_(None),
                Video.status == VideoStatus.DONE,
                Video.job_id.isnot(None),
                Video.updated_at < cutoff,
                Video.updated_at > now - ALERT_LOOKBACK,
            )
            .order_by(Detection.video_id)
        ).all()
    added = 0
    for video_id, target, detection_id in missing:
        with session_scope(ctx.db_url) as s:
            decision, row_id = alerting.open_alert(s, ctx.settings, video_id, target, detection_id, now, AlertStatus.FAILED)
            if row_id is not None and decision is Decision.SEND:
                row = s.get(AlertRow, row_id)
                row.error = NO_ALERT_ROW
        if row_id is not None:
            added += 1
            log.warning("video %s: positive for %s had no alert row; the follow-up pass sends it", video_id, target)
    return added
