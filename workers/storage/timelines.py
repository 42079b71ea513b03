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
from workers.storage.models import Detection, FrameScore


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
    det.frame_scores = [
        FrameScore(
            frame_index=s.index,
            timestamp=s.timestamp,
            score=s.score,
            box=list(s.box) if s.box else None,
            reused_from=s.reused_from,
            evidence_key=frame_keys.get(s.index),
        )
        for s in outcome.scores
    ]
    session.flush()
    return before - set(frame_keys.values())
