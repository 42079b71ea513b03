"""Beat's reaper: no video stays in a non-final state without a task behind it.

A stage's task retries transient errors for ``task_retry_window`` seconds; a
video can still be left mid-way when even its failure could not be recorded
(the database was down for longer than that), when the broker lost the
retry, or when a worker vanished with a message the broker no longer has.
Every ``reaper_interval`` seconds the reaper looks for pipeline videos (those
with a job id) whose status has not changed for ``stall_timeout`` seconds:

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
from collections.abc import Callable
from datetime import datetime, timedelta

from sqlalchemy import and_, select

from workers.alerts import Decision
from workers.media.keys import media_id
from workers.pipeline import alerting
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
    cutoff = now - timedelta(seconds=settings.stall_timeout)
    to_requeue: list[tuple[int, str]] = []
    to_discard: list[tuple[str, str | None]] = []  # media name, video key
    with session_scope(ctx.db_url) as s:
        stalled = s.scalars(
            select(Video)
            .where(Video.status.notin_(FINISHED), Video.job_id.isnot(None), Video.updated_at < cutoff)
            .order_by(Video.id)
            .with_for_update(skip_locked=True)
        ).all()
        for video in stalled:
            requeues = video.requeues
            idle = (now - as_utc(video.updated_at)).total_seconds()
            if requeues >= settings.stall_requeues or video.status not in RESUME_AT:
                reason = (
                    f"stalled: no progress for {idle:.0f} s while {video.status}, "
                    f"after {requeues} requeue(s) (stall_timeout, stall_requeues)"
                )
                results.set_status(video, VideoStatus.FAILED, reason)
                log.warning("video %s failed: %s", video.id, reason)
                to_discard.append((media_id(video.job_id, video.id), video.video_key))
            else:
                videos.count_requeue(video, now)  # the next look waits a whole stall_timeout again
                to_requeue.append((video.id, RESUME_AT[video.status]))
    for media, key in to_discard:
        discard_media(ctx, media, key)
    requeued = 0
    for video_id, stage in to_requeue:
        try:
            requeue(video_id, stage)
            requeued += 1
            log.warning("video %s had stalled: requeued from %s", video_id, stage)
        except Exception as exc:  # noqa: BLE001 - broker down: the next pass after stall_timeout tries again
            log.error("video %s stalled and could not be requeued (%s: %s)", video_id, type(exc).__name__, exc)
    report = {"requeued": requeued, "failed": len(to_discard), "alert_rows": backfill_alert_rows(ctx, now)}
    if any(report.values()):
        log.info("reaper: %s", report)
    return report


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
