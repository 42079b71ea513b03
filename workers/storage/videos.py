"""A video's state through the pipeline, and the named operations that change it.

A stage reads a ``VideoState``, an immutable snapshot of its video loaded once at the start
of a step (``begin_stage``), and writes through the operations here: what a column means
and when it is reset is decided in this module only, not by the stages, the reaper or
``submit``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime

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


def queued_video(job_id: str, source: str, targets: Sequence[str], watch_id: int | None = None) -> Video:
    """The row of a new pipeline job (not yet added to a session)."""
    return Video(job_id=job_id, source=source, status=VideoStatus.QUEUED, targets=list(targets), watch_id=watch_id)


def reset_for_requeue(video: Video, targets: Sequence[str], job_id: str) -> None:
    """Make a finished video a new queued job for ``targets``. Its stored file and results stay
    (stages reuse or replace them), its frames are linked again, a repost waits afresh; the
    reaper's count of requeues is kept."""
    video.targets = list(targets)
    video.frames_linked = False
    video.repost_wait_since = None
    video.job_id = job_id
    set_status(video, VideoStatus.QUEUED)


# --- the stages' progress -------------------------------------------------------------


def set_video_key(video: Video, key: str) -> None:
    """The download stage stored the file under ``key``."""
    video.video_key = key


def mark_frames_linked(video: Video) -> None:
    """The frames stage recorded the frames' hashes and the repost link: a rerun only acts on the link."""
    video.frames_linked = True


def wait_for_original(video: Video, now: datetime | None = None) -> float:
    """A repost waits for its original's verdicts: seconds since it first did (0 the first time)."""
    now = now or utcnow()
    if video.repost_wait_since is None:
        video.repost_wait_since = now
    return (now - as_utc(video.repost_wait_since)).total_seconds()


def count_requeue(video: Video, now: datetime) -> int:
    """The reaper requeues a stalled video: count it, and give it a whole ``stall_timeout`` again."""
    video.requeues = (video.requeues or 0) + 1
    video.updated_at = now
    return video.requeues


# --- what sources listed ----------------------------------------------------------------


def platform_ids(video: Video) -> tuple[str | None, str | None]:
    """(platform, platform id): its own, else the listed ones (a row that could not claim its
    platform id, because another row of the same platform video holds it)."""
    listed = video.ref or {}
    return video.platform or listed.get("platform"), video.platform_id or listed.get("platform_id")
