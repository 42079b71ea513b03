"""A detection's timeline completed in place (``complete_positive_timelines``).

The follow-up that scores a positive video's remaining frames writes its result into
the detection the early verdict stored, the same row (its id is what reviews, alerts
and the web app hold on to): frame scores replaced, counts, positive timestamps, best
frame and evidence updated. ``Detection.timeline_complete`` then says so.
"""

from __future__ import annotations

from collections.abc import Mapping

from sqlalchemy import select
from sqlalchemy.orm import Session

from workers.detect.scoring import TargetOutcome
from workers.storage.models import Detection, Video
from workers.storage.results import copy_row, frame_score_rows


def incomplete_detection(session: Session, video_id: int, target_name: str, target_version: str, scored: int) -> Detection | None:
    """The detection of (video, target version) still as an early verdict left it (``scored``
    frames with a score, fewer than the video's), locked until the transaction ends (Postgres),
    so that of two follow-ups at once only one writes; None when it is complete or gone."""
    query = select(Detection).where(
        Detection.video_id == video_id, Detection.target_name == target_name, Detection.target_version == target_version
    )
    if session.get_bind().dialect.name == "postgresql":
        query = query.with_for_update()
    det = session.scalars(query).first()
    if det is None or det.timeline_complete or det.scored_frames != scored:
        return None
    return det


def complete_detection(
    session: Session, det: Detection, outcome: TargetOutcome, evidence_key: str | None, frame_keys: Mapping[int, str] | None = None
) -> set[str]:
    """Write ``outcome`` (all frames scored) into ``det``, same row; ``evidence_key``: the best
    frame's JPEG (None: keep the one it has); ``frame_keys``: frame index -> evidence JPEG.
    Returns the evidence keys of frames that left the strip (for the caller to delete)."""
    frame_keys = frame_keys or {}
    before = {f.evidence_key for f in det.frame_scores if f.evidence_key}
    v = outcome.verdict
    det.verdict = v.label
    det.frames, det.scored_frames, det.reused_frames = v.frames, v.scored_frames, v.reused_frames
    det.positive_frames, det.positive_timestamps = v.positive_frames, list(v.positive_timestamps)
    det.best_timestamp = v.best.timestamp if v.best else None
    det.best_score = v.best.score if v.best else None
    det.evidence_key = evidence_key or det.evidence_key
    det.frame_scores = frame_score_rows(outcome, frame_keys)
    session.flush()
    complete_reposts(session, det)
    return before - set(frame_keys.values())


# What a completed timeline changes in a detection, and so in the copies reposts took of it.
_TIMELINE_COLUMNS = (
    "verdict", "frames", "scored_frames", "reused_frames", "positive_frames",
    "positive_timestamps", "best_timestamp", "best_score", "evidence_key",
)  # fmt: skip


def complete_reposts(session: Session, det: Detection) -> int:
    """Reposts that took ``det``'s early verdict (``results.reuse_verdicts``, before the
    follow-up ran) take its completed timeline too, in their own rows; returns how many."""
    copies = session.scalars(
        select(Detection)
        .join(Video, Detection.video_id == Video.id)
        .where(
            Video.duplicate_of == det.video_id,
            Detection.target_name == det.target_name,
            Detection.target_version == det.target_version,
            Detection.scored_frames < det.scored_frames,
        )
    ).all()
    for copy in copies:
        for column in _TIMELINE_COLUMNS:
            setattr(copy, column, getattr(det, column))
        copy.frame_scores = [copy_row(f, detection_id=None) for f in det.frame_scores]
    session.flush()
    return len(copies)
