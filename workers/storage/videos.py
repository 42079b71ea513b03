"""A video's state through the pipeline, and the named operations that change it.

A stage reads a ``VideoState``, an immutable snapshot of its video loaded once at the start
of a step (``begin_stage``), and writes through the operations here: what a column means
and when it is reset is decided in this module only, not by the stages, the reaper or
``submit``.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import ColumnElement, and_, or_, select, update
from sqlalchemy.orm import Session

from workers.storage.models import Video, VideoStatus, as_utc, utcnow
from workers.storage.results import set_status
from workers.video_ref import VideoRef


@dataclass(frozen=True)
class VideoState:
    """What the stages read of a video (detached: it outlives its session)."""

    id: int
    job_id: str | None
    source: str
    status: str
    content_hash: str | None
    video_key: str | None  # where the download stage put the file in the media store
    frames_linked: bool  # the frames stage stored its frames' hashes and linked the video
    targets: tuple[str, ...]  # the target names it is scored for
    all_frames: bool = False  # every sampled frame scored in the first pass (``enqueue --all-frames``)
    expires_at: datetime | None = None  # not started by then: expired (its watch's ``--expire-after``)
    ref_json: dict | None = field(default=None, repr=False)  # ``videos.ref``: read it as ``ref``

    @property
    def finished(self) -> bool:
        return self.status in VideoStatus.FINISHED

    @property
    def ref(self) -> VideoRef | None:
        """What its source listed (a watch, an export), else what the downloader learnt."""
        return VideoRef.from_json(self.ref_json) if self.ref_json else None


def state_of(video: Video) -> VideoState:
    """A snapshot of ``video`` (a row in its session, or loaded in one)."""
    return VideoState(
        id=video.id,
        job_id=video.job_id,
        source=video.source,
        status=video.status,
        content_hash=video.content_hash,
        video_key=video.video_key,
        frames_linked=bool(video.frames_linked),
        targets=tuple(video.targets or ()),
        all_frames=bool(video.all_frames),
        expires_at=as_utc(video.expires_at),
        ref_json=dict(video.ref) if video.ref else None,
    )


def begin_stage(session: Session, video_id: int, status: str | None) -> VideoState | None:
    """The video as a stage starts on it, its status set to ``status`` (None: left as it is)
    unless it is finished; None when there is no such video."""
    video = session.get(Video, video_id)
    if video is None:
        return None
    if status is not None and video.status not in VideoStatus.FINISHED:
        set_status(video, status)
    return state_of(video)


def mark_failed(session: Session, video_id: int, reason: str) -> VideoState | None:
    """Fail the video with ``reason``, unless it is done (or unknown: then None)."""
    video = session.get(Video, video_id)
    if video is None or video.status == VideoStatus.DONE:
        return None
    set_status(video, VideoStatus.FAILED, reason)
    return state_of(video)


# --- submitting -----------------------------------------------------------------------


def queued_video(job_id: str, source: str, targets: Sequence[str], watch_id: int | None = None, all_frames: bool = False) -> Video:
    """The row of a new pipeline job (not yet added to a session); ``all_frames``: no early verdict."""
    return Video(job_id=job_id, source=source, status=VideoStatus.QUEUED, targets=list(targets), watch_id=watch_id, all_frames=all_frames)


def reset_for_requeue(video: Video, targets: Sequence[str], job_id: str, all_frames: bool = False) -> None:
    """Make a finished video a new queued job for ``targets``. Its stored file and results stay
    (stages reuse or replace them), its frames are linked again, a repost waits afresh; the
    reaper's count of requeues is kept."""
    video.targets = list(targets)
    video.all_frames = all_frames
    video.frames_linked = False
    video.repost_wait_since = None
    video.job_id = job_id
    video.lease_worker = video.lease_until = None  # a worker gone mid-way (``--force``) held it
    set_status(video, VideoStatus.QUEUED)


# --- the stages' progress -------------------------------------------------------------


def set_video_key(video: Video, key: str) -> None:
    """The download stage stored the file under ``key``."""
    video.video_key = key


def mark_frames_linked(video: Video) -> None:
    """The frames stage recorded the frames' hashes and the repost link: a rerun only acts on the link."""
    video.frames_linked = True


def wait_for_original(video: Video, now: datetime | None = None) -> float:
    """A repost waits for its original's verdicts: seconds since it first did (0 the first time).
    Each check counts as progress (``updated_at``): the reaper does not take a waiting copy for a stalled one."""
    now = now or utcnow()
    if video.repost_wait_since is None:
        video.repost_wait_since = now
    video.updated_at = now
    return (now - as_utc(video.repost_wait_since)).total_seconds()


def count_requeue(video: Video, now: datetime) -> int:
    """The reaper requeues a stalled video (or one whose worker is gone): count it, give it a
    whole ``stall_timeout`` again, and free it for the worker that takes the new message."""
    video.requeues = (video.requeues or 0) + 1
    mark_requeued(video, now)
    return video.requeues


def mark_requeued(video: Video, now: datetime) -> None:
    """Its stage is published again (by the reaper, or by hand: not counted): its lease is dropped,
    so a worker whose renewals still arrive learns it lost it, and the new delivery may take it."""
    video.lease_worker = None
    video.lease_until = None
    video.updated_at = now


# --- stage leases -----------------------------------------------------------------------
# A running stage holds its video: ``lease_worker`` runs it, and holds it until ``lease_until``
# unless it renews (``workers.pipeline.leases`` does, from a thread of the worker process).
# The lease never touches ``updated_at``: a stage that hangs with a live worker still stalls.


@dataclass(frozen=True)
class Lease:
    """Who runs a stage on a video, and until when it holds it unless renewed."""

    worker: str
    until: datetime

    def expired(self, now: datetime) -> bool:
        return as_utc(self.until) <= now


def lease_of(video: Video) -> Lease | None:
    return Lease(video.lease_worker or "", as_utc(video.lease_until)) if video.lease_until is not None else None


def take_lease(session: Session, video_id: int, worker: str, now: datetime, seconds: float, replacing: str | None = None) -> Lease | None:
    """Claim the video for a stage run by ``worker`` until ``now + seconds``, in one statement (two
    deliveries at once: one wins). Returns who holds it now: ``worker``'s new lease, or the lease
    of another worker whose lease has not expired (this delivery repeats work in progress); None
    when there is nothing to lease (a finished or unknown video: its stage stops anyway).
    ``replacing``: a holder known to be gone (its lease is taken over before it expires)."""
    until = now + timedelta(seconds=seconds)
    taken = session.execute(
        update(Video)
        .where(
            Video.id == video_id,
            Video.status.notin_(VideoStatus.FINISHED),
            or_(Video.lease_until.is_(None), Video.lease_until <= now, Video.lease_worker.in_([worker, replacing or worker])),
        )
        .values(lease_worker=worker, lease_until=until, updated_at=Video.updated_at)
        .execution_options(synchronize_session=False)
    )
    if taken.rowcount:
        return Lease(worker, until)
    video = session.get(Video, video_id)
    if video is None or video.status in VideoStatus.FINISHED:
        return None
    return lease_of(video)


def renew_leases(session: Session, video_ids: Collection[int], worker: str, now: datetime, seconds: float) -> set[int]:
    """Move ``worker``'s leases on ``video_ids`` to ``now + seconds``; returns the ids it still
    held (the others were requeued since: another worker may be on them)."""
    if not video_ids:
        return set()
    renewed = session.execute(
        update(Video)
        .where(Video.id.in_(list(video_ids)), Video.lease_worker == worker)
        .values(lease_until=now + timedelta(seconds=seconds), updated_at=Video.updated_at)
        .returning(Video.id)
        .execution_options(synchronize_session=False)
    )
    return set(renewed.scalars())


def release_lease(session: Session, video_id: int, worker: str) -> None:
    """The stage ended (done, failed, or to be retried): the video is no longer ``worker``'s."""
    session.execute(
        update(Video)
        .where(Video.id == video_id, Video.lease_worker == worker)
        .values(lease_worker=None, lease_until=None, updated_at=Video.updated_at)
        .execution_options(synchronize_session=False)
    )


def running_lease_holders(session: Session, now: datetime) -> list[str]:
    """The workers holding an unexpired lease on a video mid-way."""
    found = session.scalars(select(Video.lease_worker).distinct().where(Video.lease_until > now, Video.status.notin_(VideoStatus.FINISHED)))
    return [holder for holder in found if holder]


def expire_leases(session: Session, holders: Collection[str], now: datetime) -> None:
    """End now the leases of ``holders``, known to be gone (the reaper's next pass requeues their videos)."""
    if holders:
        session.execute(
            update(Video)
            .where(Video.lease_worker.in_(list(holders)), Video.lease_until > now)
            .values(lease_until=now, updated_at=Video.updated_at)
            .execution_options(synchronize_session=False)
        )


def stuck(now: datetime, stall_timeout: float) -> ColumnElement[bool]:
    """Pipeline videos (with a job id) mid-way whose worker is gone (lease expired) or that have
    not moved for ``stall_timeout`` seconds: what the reaper and ``requeue --stuck`` rerun."""
    return and_(
        Video.status.notin_(VideoStatus.FINISHED),
        Video.job_id.isnot(None),
        or_(Video.lease_until <= now, Video.updated_at < now - timedelta(seconds=stall_timeout)),
    )


def is_stuck(video: Video, now: datetime, stall_timeout: float) -> bool:
    """``stuck`` for one loaded row."""
    if video.status in VideoStatus.FINISHED or video.job_id is None:
        return False
    lease = lease_of(video)
    return (lease is not None and lease.expired(now)) or (now - as_utc(video.updated_at)).total_seconds() > stall_timeout


# --- what sources listed ----------------------------------------------------------------


def platform_ids(video: Video) -> tuple[str | None, str | None]:
    """(platform, platform id): its own, else the listed ones (a row that could not claim its
    platform id, because another row of the same platform video holds it)."""
    listed = video.ref or {}
    return video.platform or listed.get("platform"), video.platform_id or listed.get("platform_id")
