"""Reading and writing results: the only module that knows the SQL models'
shape on the write side. Every write is idempotent per (video, target
version): re-running a stage replaces its rows, never duplicates them."""

from __future__ import annotations

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from workers.detect.scoring import TargetOutcome
from workers.storage.models import Detection, FrameScore, Video, VideoStatus


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
