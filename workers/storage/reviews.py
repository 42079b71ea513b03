"""The ``reviews`` table: what people said about detections and their frames.

Every review is kept (who said what, when); the latest one for a detection
(``frame_index`` NULL) or for one of its frames is what holds, across reruns and
target versions of the same (video, target): reviews are about the video, the
target and its frames, and a rerun never deletes them.
"""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import and_, select
from sqlalchemy.orm import Session, aliased

from workers.errors import TrackerError
from workers.storage.db import batches
from workers.storage.models import AlertRow, AlertStatus, Detection, Review, ReviewVerdict, Video, as_utc

UNREVIEWED = "unreviewed"
# What a rejected detection's waiting alerts become: no pass picks them up again.
CANCELLED = "cancelled"


def add_review(
    session: Session,
    detection: Detection,
    verdict: str,
    reviewer: str | None = None,
    frame_index: int | None = None,
    target_version: str | None = None,
) -> Review:
    """Record a review; a rejection also cancels the detection's alerts not yet sent."""
    allowed = ReviewVerdict.DETECTION if frame_index is None else ReviewVerdict.FRAME
    if verdict not in allowed:
        what = "a detection" if frame_index is None else "a frame"
        raise TrackerError(f"review verdict of {what} must be one of {', '.join(allowed)}, not {verdict!r}")
    if frame_index is not None and frame_index not in {f.frame_index for f in detection.frame_scores}:
        raise TrackerError(f"detection {detection.id} has no scored frame {frame_index}")
    review = Review(
        detection_id=detection.id,
        frame_index=frame_index,
        verdict=verdict,
        reviewer=reviewer,
        target_version=target_version,
    )
    session.add(review)
    if verdict == ReviewVerdict.REJECTED:
        for row in session.scalars(
            select(AlertRow).where(
                AlertRow.video_id == detection.video_id,
                AlertRow.target_name == detection.target_name,
                AlertRow.status.in_((AlertStatus.HELD, AlertStatus.FAILED)),
            )
        ):
            row.status = CANCELLED
    session.flush()
    return review


def latest(session: Session, detection_ids: Iterable[int]) -> dict[tuple[int, int | None], Review]:
    """The review that holds, per (detection id, frame index or None): the newest one about the
    same video, target and frame, whichever run or target version it was made on (a rerun or a
    rescan with a new version keeps what people said; ``disagrees`` flags a verdict that now
    contradicts it)."""
    ids = list(set(detection_ids))
    if not ids:
        return {}
    asked, about = aliased(Detection), aliased(Detection)
    held: dict[tuple[int, int | None], Review] = {}
    for batch in batches(sorted(ids)):  # a detection's reviews all come with its batch, oldest first
        rows = session.execute(
            select(asked.id, Review)
            .join(about, Review.detection_id == about.id)
            .join(asked, and_(asked.video_id == about.video_id, asked.target_name == about.target_name))
            .where(asked.id.in_(batch))
            .order_by(Review.created_at, Review.id)
        )
        held.update({(detection_id, r.frame_index): r for detection_id, r in rows})
    return held


def about(session: Session, detection: Detection) -> list[Review]:
    """Every review of the detection's video and target (all runs and target versions), oldest first."""
    return list(
        session.scalars(
            select(Review)
            .join(Detection, Review.detection_id == Detection.id)
            .where(Detection.video_id == detection.video_id, Detection.target_name == detection.target_name)
            .order_by(Review.created_at, Review.id)
        )
    )


def made_before(review: Review, detection: Detection) -> bool:
    """Whether ``review`` was about an earlier result than ``detection`` now holds: another run
    or target version's row, or this row before a rerun updated it in place."""
    return review.detection_id != detection.id or as_utc(review.created_at) < as_utc(detection.created_at)


def holding(session: Session, detection_ids: Iterable[int]) -> dict[int, Review | None]:
    """The detection review that holds per detection (None: unreviewed), across reruns and versions."""
    ids = list(detection_ids)
    held = latest(session, ids)
    return {i: held.get((i, None)) for i in ids}


def states(session: Session, detection_ids: Iterable[int]) -> dict[int, str]:
    """Review state per detection: confirmed, rejected or unreviewed."""
    return {i: r.verdict if r is not None else UNREVIEWED for i, r in holding(session, detection_ids).items()}


def is_rejected(session: Session, detection: Detection) -> bool:
    """Whether a person rejected this detection, or the same verdict on the video this one reposts."""
    if states(session, [detection.id])[detection.id] == ReviewVerdict.REJECTED:
        return True
    video = session.get(Video, detection.video_id)
    if video is None or video.duplicate_of is None:
        return False
    original = session.scalars(
        select(Detection).where(
            Detection.video_id == video.duplicate_of,
            Detection.target_name == detection.target_name,
            Detection.target_version == detection.target_version,
        )
    ).first()
    return original is not None and states(session, [original.id])[original.id] == ReviewVerdict.REJECTED


def counts_by_target(session: Session) -> dict[str, dict[str, int]]:
    """Per target name: detections confirmed / rejected, frames marked target / not_target."""
    rows = session.execute(
        select(Review, Detection.target_name, Detection.video_id)
        .join(Detection, Review.detection_id == Detection.id)
        .order_by(Review.created_at, Review.id)
    )
    held: dict[tuple[int, str, int | None], tuple[str, str]] = {}  # one per (video, target, frame), across versions
    for review, target, video_id in rows:
        held[(video_id, target, review.frame_index)] = (target, review.verdict)
    out: dict[str, dict[str, int]] = {}
    for target, verdict in held.values():
        counts = out.setdefault(target, {v: 0 for v in (*ReviewVerdict.DETECTION, *ReviewVerdict.FRAME)})
        counts[verdict] += 1
    return out
