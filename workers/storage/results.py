"""Reading and writing results: the only module that knows the SQL models'
shape on the write side. Every write is idempotent per (video, target
version): re-running a stage replaces its rows, never duplicates them."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime

from sqlalchemy import case, delete, func, select, text, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, selectinload

from workers.detect.scoring import TargetOutcome
from workers.storage.db import session_scope
from workers.storage.models import Base, Detection, FrameScore, StageTiming, Video, VideoStatus, utcnow
from workers.video.sampling import Decoding, VideoInfo
from workers.video_ref import VideoRef

_PG_CONTENT_LOCK = 0x7474_6368  # "ttch": namespace of the per-content advisory locks


def video_by_source(session: Session, source: str) -> Video | None:
    """The (oldest) video submitted or scanned as ``source`` (a path or URL)."""
    return session.scalars(select(Video).where(Video.source == source).order_by(Video.id).limit(1)).first()


def lock_content(session: Session, content_hash: str) -> None:
    """Serialise linking videos of this content until the transaction ends, so that of two
    copies hashed at once one is the original and the other its repost (never each other's).
    Postgres only: SQLite already lets one writer in at a time."""
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text("SELECT pg_advisory_xact_lock(:ns, hashtext(:digest))"), {"ns": _PG_CONTENT_LOCK, "digest": content_hash})


def video_by_platform_id(session: Session, platform: str, platform_id: str) -> Video | None:
    return session.scalars(select(Video).where(Video.platform == platform, Video.platform_id == platform_id).limit(1)).first()


class KnownVideos:
    """``"tiktok:123" in KnownVideos(url)``: whether the database has that platform video
    (``VideoRef.key``); what watches pass to ``list_videos(seen=...)``."""

    def __init__(self, db_url: str) -> None:
        self.db_url = db_url

    def __contains__(self, key: object) -> bool:
        platform, _, platform_id = str(key).partition(":")
        with session_scope(self.db_url) as s:
            return video_by_platform_id(s, platform, platform_id) is not None


def apply_metadata(video: Video, ref: VideoRef) -> None:
    """Keep what a source or the downloader learnt about the video on its row, as given
    (output sanitises it). The platform id is claimed separately (``claim_platform_id``)."""
    video.platform = ref.platform
    video.author = ref.author or video.author
    video.caption = ref.caption or video.caption
    video.posted_at = ref.posted_at or video.posted_at
    video.ref = ref.to_json()


def claim_platform_id(session: Session, video: Video, ref: VideoRef) -> Video | None:
    """Record that ``video`` is ``ref``'s platform video, unless another video already is:
    then leave it unset and return that other video."""
    if video.platform_id == ref.platform_id and video.platform == ref.platform:
        return None
    holder = video_by_platform_id(session, ref.platform, ref.platform_id)
    if holder is not None and holder.id != video.id:
        return holder
    try:
        with session.begin_nested():
            video.platform, video.platform_id = ref.platform, ref.platform_id
            session.flush()
    except IntegrityError:  # claimed a moment ago by a concurrent download
        session.refresh(video)
        return video_by_platform_id(session, ref.platform, ref.platform_id)
    return None


def original_of(session: Session, video: Video, same: Video | None = None) -> Video | None:
    """The video that ``video`` repeats: the original of ``same`` (another row of the same
    platform video) when given, else another video with the same content that is not
    itself a repost (a scored one first, then the oldest)."""
    if same is not None:
        return session.get(Video, same.duplicate_of) if same.duplicate_of else same
    if not video.content_hash:
        return None
    return session.scalars(
        select(Video)
        .where(Video.content_hash == video.content_hash, Video.id != video.id, Video.duplicate_of.is_(None))
        .order_by(case((Video.status == VideoStatus.DONE, 0), else_=1), Video.id)
        .limit(1)
    ).first()


def _copy(row: Base, **changes):
    """A new row of the same model with the same column values (not its primary key), plus ``changes``."""
    table = type(row).__table__
    values = {c.key: getattr(row, c.key) for c in table.columns if not c.primary_key}
    return type(row)(**{**values, **changes})


def reuse_verdicts(session: Session, original: Video, video: Video, targets: Mapping[str, str]) -> bool:
    """Give ``video`` (a repost of ``original``) the original's verdicts for ``targets``
    (name -> version) and mark it done, when the original has them all; else change nothing."""
    if original.status != VideoStatus.DONE:
        return False
    found = {(d.target_name, d.target_version): d for d in original.detections}
    chosen = [found.get((name, version)) for name, version in targets.items()]
    if not chosen or any(d is None for d in chosen):
        return False
    for det in chosen:
        session.execute(
            delete(Detection).where(
                Detection.video_id == video.id,
                Detection.target_name == det.target_name,
                Detection.target_version == det.target_version,
            )
        )
        scores = [_copy(f, detection_id=None) for f in det.frame_scores]
        copy = _copy(det, video_id=video.id, created_at=utcnow(), frame_scores=scores)
        session.add(copy)
    for column in ("fps", "width", "height", "duration", "sampled_frames"):
        setattr(video, column, getattr(original, column))
    set_status(video, VideoStatus.DONE)
    session.flush()
    return True


def find_detection(session: Session, video_id: int, target_name: str, target_version: str) -> Detection | None:
    return session.scalars(
        select(Detection).where(
            Detection.video_id == video_id,
            Detection.target_name == target_name,
            Detection.target_version == target_version,
        )
    ).first()


def save_outcome(
    session: Session,
    video: Video,
    outcome: TargetOutcome,
    evidence_key: str | None = None,
    frame_keys: Mapping[int, str] | None = None,
) -> Detection:
    """Store one target's verdict and frame scores (``frame_keys``: frame index -> evidence JPEG),
    replacing a previous run's (``partial``
    when the video's frames were only part of it)."""
    frame_keys = frame_keys or {}
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
        reused_frames=v.reused_frames,
        positive_frames=v.positive_frames,
        positive_timestamps=v.positive_timestamps,
        threshold=t.threshold,
        best_timestamp=v.best.timestamp if v.best else None,
        best_score=v.best.score if v.best else None,
        evidence_key=evidence_key,
        partial=is_partial(video),
        frame_scores=[
            FrameScore(
                frame_index=s.index,
                timestamp=s.timestamp,
                score=s.score,
                box=list(s.box) if s.box else None,
                reused_from=s.reused_from,
                evidence_key=frame_keys.get(s.index),
            )
            for s in outcome.scores
        ],
    )
    session.add(det)
    session.flush()
    return det


def set_status(video: Video, status: str, error: str | None = None) -> None:
    video.status = status
    video.error = error


def record_sampling(video: Video, info: VideoInfo, sampled_frames: int, decoding: Decoding | None = None) -> None:
    """What frame sampling learnt about the video (rate, size, length, frames kept, and how many
    frames decoded against how many the container promised, and whether that makes it partial)."""
    video.fps, video.width, video.height = info.fps, info.width, info.height
    video.duration = info.duration
    video.sampled_frames = sampled_frames
    if decoding is not None:
        video.promised_frames, video.decoded_frames, video.partial = decoding.promised, decoding.decoded, decoding.partial


def is_partial(video: Video) -> bool:
    """Whether the video's frames were only part of it (truncated: see ``record_sampling``)."""
    return bool(video.partial)


def finish_video(
    session: Session,
    video: Video,
    outcomes: Iterable[TargetOutcome],
    evidence: Mapping[str, str] | None = None,
    frame_evidence: Mapping[str, Mapping[int, str]] | None = None,
) -> list[Detection]:
    """Store every target's outcome (``evidence``: target name -> best frame's media key;
    ``frame_evidence``: target name -> frame index -> key) and mark the video done."""
    evidence, frame_evidence = evidence or {}, frame_evidence or {}
    rows = [save_outcome(session, video, o, evidence.get(o.target.name), frame_evidence.get(o.target.name)) for o in outcomes]
    set_status(video, VideoStatus.DONE)
    return rows


def record_timing(session: Session, video_id: int, stage: str, worker: str, started_at, finished_at) -> None:
    """When ``stage`` ran for the video, replacing a previous run's row: re-runs,
    even two deliveries running at once, leave one row (the unique index decides)."""
    values = {"worker": worker, "started_at": started_at, "finished_at": finished_at}
    replace = update(StageTiming).where(StageTiming.video_id == video_id, StageTiming.stage == stage).values(**values)
    if session.execute(replace).rowcount:
        return
    try:
        with session.begin_nested():
            session.add(StageTiming(video_id=video_id, stage=stage, **values))
    except IntegrityError:  # the other delivery inserted first: its row takes this run's times
        session.execute(replace)


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


def detections(session: Session, target: str | None = None, positive_only: bool = False, since: datetime | None = None) -> list[Detection]:
    """Verdicts, newest video first, with their videos loaded (``since``: found at or after)."""
    query = select(Detection).join(Video).options(selectinload(Detection.video)).order_by(Video.id.desc(), Detection.target_name)
    if target:
        query = query.where(Detection.target_name == target)
    if positive_only:
        query = query.where(Detection.verdict == "positive")
    if since is not None:
        query = query.where(Detection.created_at >= since)
    return list(session.scalars(query))
