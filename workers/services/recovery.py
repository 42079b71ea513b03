"""``tiktok-tracker requeue``: an operator publishes again, by hand, videos left mid-way.

The reaper does the same on its own (``workers.pipeline.reaper``: a worker gone is noticed
within ``lease_seconds``, a stall after ``stall_timeout``); this is for what an operator decides
to rerun now. A requeue by hand is not counted against ``stall_requeues``. Stages are
idempotent and a delivery that finds its video leased by a live worker does nothing, so a
requeue never makes a second verdict or alert.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select

from workers.errors import TrackerError
from workers.settings import Settings
from workers.storage import results, videos
from workers.storage.db import session_scope
from workers.storage.models import Video, VideoStatus, utcnow


@dataclass(frozen=True)
class Requeued:
    video_id: int
    job_id: str | None
    status: str
    stage: str  # the stage its chain starts from again
    why: str  # what it was found as (a worker gone, stalled, or held by a live worker)


def requeue(settings: Settings, ident: str | None = None, stuck: bool = False) -> list[Requeued]:
    """Requeue the video ``ident`` (a job id, a unique prefix of one, or a video id; it must be
    mid-way) or, with ``stuck``, every video whose lease expired or that stalled (``videos.stuck``).
    ``BrokerUnavailable`` when the broker cannot be reached (nothing changed)."""
    from workers.pipeline.celery_app import app
    from workers.pipeline.stages import RESUME_AT
    from workers.pipeline.submit import check_broker
    from workers.pipeline.tasks import requeue_chain

    check_broker(app, settings.broker_connect_timeout)
    now = utcnow()
    found: list[Requeued] = []
    with session_scope(settings.resolved_database_url) as s:
        if stuck:
            rows = list(
                s.scalars(
                    select(Video).where(videos.stuck(now, settings.stall_timeout)).order_by(Video.id).with_for_update(skip_locked=True)
                )
            )
        else:
            video = results.find_video(s, ident or "")
            if video is None:
                raise TrackerError(f"no job or video with id {ident!r}")
            if video.status in VideoStatus.FINISHED or video.status not in RESUME_AT:
                raise TrackerError(
                    f"video {video.id} is {video.status}, not mid-way: nothing to requeue "
                    f"(to run it again: tiktok-tracker enqueue --force SOURCE)"
                )
            rows = [video]
        for video in rows:
            found.append(Requeued(video.id, video.job_id, video.status, RESUME_AT[video.status], _found_as(video, settings, now)))
            videos.mark_requeued(video, now)
    for item in found:
        requeue_chain(item.video_id, item.stage)
    return found


def _found_as(video: Video, settings: Settings, now) -> str:
    lease = videos.lease_of(video)
    if lease is not None:
        state = "gone" if lease.expired(now) else "still renewing: it may be running"
        return f"was on worker {lease.worker}, lease until {lease.until:%H:%M:%S} UTC ({state})"
    if videos.is_stuck(video, now, settings.stall_timeout):
        return f"stalled: no progress since {video.updated_at:%Y-%m-%d %H:%M:%S} UTC"
    return "no stage running: it was waiting in a queue"
