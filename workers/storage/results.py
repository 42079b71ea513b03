"""Reading and writing results: the only module that knows the SQL models'
shape on the write side. Every write is idempotent per (video, target
version): re-running a stage replaces its rows, never duplicates them."""

from __future__ import annotations

from typing import Iterable, Mapping

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session, selectinload

from workers.detect.scoring import TargetOutcome
from workers.storage.models import Detection, FrameScore, StageTiming, Video, VideoStatus
from workers.video.sampling import VideoInfo


def video_by_hash(session: Session, content_hash: str) -> Video | None:
    return session.scalars(
        select(Video).where(Video.content_hash == content_hash).order_by(Video.id).limit(1)
    ).first()


def get_or_create_video(session: Session, source: str, content_hash: str | None) -> Video:
    """The video with this content (files scanned twice are one video)."""
    video = video_by_hash(session, content_hash) if content_hash else None
    if video is None:
        video = Video(source=source, content_hash=content_hash, status=VideoStatus.QUEUED, meta={})
        session.add(video)
        session.flush()
    else:
        video.source = source
    return video


def find_detection(session: Session, video_id: int, target_name: str, target_version: str) -> Detection | None:
    return session.scalars(
        select(Detection).where(
            Detection.video_id == video_id,
            Detection.target_name == target_name,
            Detection.target_version == target_version,
        )
    ).first()


def save_outcome(session: Session, video: Video, outcome: TargetOutcome, evidence_key: str | None = None) -> Detection:
    """Store one target's verdict and frame scores, replacing a previous run's."""
    t, v = outcome.target, outcome.verdict
    session.execute(
        delete(Detection).where(
            Detection.video_id == video.id,
            Detection.target_name == t.name,
            Detection.target_version == t.version,
        )
    )
    det = Detection(
        video_id=video.id,
        target_name=t.name,
        target_version=t.version,
        target_kind=t.kind,
        verdict=v.label,
        frames=v.frames,
        scored_frames=v.scored_frames,
        positive_frames=v.positive_frames,
        positive_timestamps=v.positive_timestamps,
        threshold=t.threshold,
        best_timestamp=v.best.timestamp if v.best else None,
        best_score=v.best.score if v.best else None,
        evidence_key=evidence_key,
        frame_scores=[
            FrameScore(
                frame_index=s.index,
                timestamp=s.timestamp,
                score=s.score,
                box=list(s.box) if s.box else None,
            )
            for s in outcome.scores
        ],
    )
    session.add(det)
    session.flush()
    return det


def set_status(session: Session, video: Video, status: str, error: str | None = None) -> None:
    video.status = status
    video.error = error


def record_sampling(video: Video, info: VideoInfo, sampled_frames: int) -> None:
    """What frame sampling learnt about the video (rate, size, length, frames kept)."""
    video.fps, video.width, video.height = info.fps, info.width, info.height
    video.duration = info.duration
    video.sampled_frames = sampled_frames


def finish_video(
    session: Session, video: Video, outcomes: Iterable[TargetOutcome], evidence: Mapping[str, str] | None = None
) -> list[Detection]:
    """Store every target's outcome (``evidence``: target name -> media key) and mark the video done."""
    evidence = evidence or {}
    rows = [save_outcome(session, video, o, evidence.get(o.target.name)) for o in outcomes]
    set_status(session, video, VideoStatus.DONE)
    return rows


def record_timing(session: Session, video_id: int, stage: str, worker: str, started_at, finished_at) -> None:
    """When ``stage`` ran for the video, replacing a previous run's row (re-runs add no rows)."""
    session.execute(delete(StageTiming).where(StageTiming.video_id == video_id, StageTiming.stage == stage))
    session.add(StageTiming(video_id=video_id, stage=stage, worker=worker, started_at=started_at, finished_at=finished_at))


# --- reading ---------------------------------------------------------------------


def find_video(session: Session, ident: str | int) -> Video | None:
    """A video by job id, or by numeric video id."""
    text = str(ident).strip()
    video = session.scalars(select(Video).where(Video.job_id == text)).first()
    if video is None and text.isdigit():
        video = session.get(Video, int(text))
    return video


def status_counts(session: Session) -> dict[str, int]:
    rows = session.execute(select(Video.status, func.count()).group_by(Video.status)).all()
    return {status: count for status, count in rows}


def recent_videos(session: Session, limit: int = 20) -> list[Video]:
    return list(session.scalars(select(Video).order_by(Video.id.desc()).limit(limit)))


def stage_timings(session: Session, video_id: int | None = None) -> list[StageTiming]:
    query = select(StageTiming).order_by(StageTiming.started_at)
    if video_id is not None:
        query = query.where(StageTiming.video_id == video_id)
    return list(session.scalars(query))


def detections(session: Session, target: str | None = None, positive_only: bool = False) -> list[Detection]:
    """Verdicts, newest video first, with their videos loaded."""
    query = select(Detection).join(Video).options(selectinload(Detection.video)).order_by(Video.id.desc(), Detection.target_name)
    if target:
        query = query.where(Detection.target_name == target)
    if positive_only:
        query = query.where(Detection.verdict == "positive")
    return list(session.scalars(query))
