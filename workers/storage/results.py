"""Reading and writing results: the only module that knows the SQL models'
shape on the write side. Every write is idempotent per (video, target
version): re-running a stage replaces its rows, never duplicates them."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime

from sqlalchemy import and_, case, exists, func, or_, select, text, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, aliased, selectinload

from workers.detect.scoring import TargetOutcome
from workers.errors import TrackerError
from workers.storage.db import session_scope
from workers.storage.models import Base, Detection, FrameScore, StageTiming, Video, VideoStatus, utcnow
from workers.video.sampling import Decoding, VideoInfo
from workers.video_ref import VideoRef

_JOB_PREFIX = re.compile(r"[0-9a-fA-F-]+")  # job ids are uuids
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


def copy_row(row: Base, **changes):
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
        scores = [copy_row(f, detection_id=None) for f in det.frame_scores]
        values = {c.key: getattr(det, c.key) for c in Detection.__table__.columns if not c.primary_key}
        _store_detection(session, {**values, "video_id": video.id, "created_at": utcnow()}, scores)
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
    replacing a previous run's of the same target version in place (its reviews stay; ``partial``
    when the video's frames were only part of it). Another version's row stays, superseded."""
    frame_keys = frame_keys or {}
    t, v = outcome.target, outcome.verdict
    values = dict(
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
        created_at=utcnow(),
    )
    return _store_detection(session, values, frame_score_rows(outcome, frame_keys))


def frame_score_rows(outcome: TargetOutcome, frame_keys: Mapping[int, str] | None = None) -> list[FrameScore]:
    """The rows of an outcome's frame scores (``frame_keys``: frame index -> evidence JPEG)."""
    frame_keys = frame_keys or {}
    return [
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


def _store_detection(session: Session, values: dict, scores: list[FrameScore]) -> Detection:
    """Write a (video, target, version)'s verdict into its row, updated in place when a run
    already made one (a forced rerun, a redelivery): the row keeps its id, so the reviews
    about it (``reviews.detection_id``) survive; its frame scores are replaced."""
    key = (values["video_id"], values["target_name"], values["target_version"])
    det = find_detection(session, *key)
    if det is None:
        try:
            with session.begin_nested():
                det = Detection(**values, frame_scores=scores)
                session.add(det)
                session.flush()
            return det
        except IntegrityError:  # a concurrent delivery inserted it first: update that row
            det = find_detection(session, *key)
            assert det is not None
    for column, value in values.items():
        setattr(det, column, value)
    det.frame_scores = []
    session.flush()  # the old frame scores go before the new ones come
    det.frame_scores = scores
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


MIN_JOB_PREFIX = 4  # shorter prefixes of a job id are not looked up (a digit string is a video id)


class AmbiguousId(TrackerError):
    """A job id prefix that more than one job starts with; ``candidates``: their job ids."""

    def __init__(self, prefix: str, candidates: Sequence[str]) -> None:
        shown = ", ".join(candidates[:10]) + (f" (and {len(candidates) - 10} more)" if len(candidates) > 10 else "")
        super().__init__(f"{prefix!r} is the start of more than one job id: {shown}")
        self.candidates = list(candidates)


def find_video(session: Session, ident: str | int) -> Video | None:
    """A video by job id, a unique prefix of one (as git takes commits: ``AmbiguousId``
    when several jobs start with it), or a numeric video id. The one lookup of every
    command that takes a job id. A whole number is a video id first, then a job id prefix."""
    text = str(ident).strip()
    if not text:
        return None
    video = session.scalars(select(Video).where(Video.job_id == text)).first()
    if video is None and text.isdigit():
        video = session.get(Video, int(text))
    if video is None and len(text) >= MIN_JOB_PREFIX and _JOB_PREFIX.fullmatch(text):
        pattern = text.lower() + "%"
        found = list(session.scalars(select(Video).where(Video.job_id.like(pattern)).order_by(Video.job_id).limit(51)))
        if len(found) > 1:
            raise AmbiguousId(text, [v.job_id or "" for v in found])
        video = found[0] if found else None
    return video


def short_job_ids(session: Session, job_ids: Iterable[str | None], least: int = 8) -> dict[str, str]:
    """Each job id's shortest prefix of at least ``least`` characters that no other job starts
    with (what tables show at 80 columns; ``find_video`` takes it back)."""
    out: dict[str, str] = {}
    for job_id in {j for j in job_ids if j}:
        length = least
        while length < len(job_id):
            prefix = job_id[:length]
            others = session.scalar(select(func.count()).where(Video.job_id.like(prefix + "%"), Video.job_id != job_id))
            if not others:
                break
            length += 4
        out[job_id] = job_id[:length]
    return out


def status_counts(session: Session) -> dict[str, int]:
    rows = session.execute(select(Video.status, func.count()).group_by(Video.status)).all()
    return {status: count for status, count in rows}


def recent_videos(session: Session, limit: int = 20) -> list[Video]:
    """The ``limit`` most recently updated videos (a rerun of an old video comes first)."""
    return list(session.scalars(select(Video).order_by(Video.updated_at.desc(), Video.id.desc()).limit(limit)))


def stage_timings(session: Session, video_id: int | None = None) -> list[StageTiming]:
    query = select(StageTiming).order_by(StageTiming.started_at)
    if video_id is not None:
        query = query.where(StageTiming.video_id == video_id)
    return list(session.scalars(query))


def superseded_clause():
    """SQL true when a detection row is superseded: its (video, target) has a newer row (another
    target version scored later; ties broken by id). The current verdict is the row without one.
    A correlated NOT EXISTS on the index ``ix_detections_video_target``: cheap at 10^6 videos."""
    newer = aliased(Detection)
    return exists().where(
        newer.video_id == Detection.video_id,
        newer.target_name == Detection.target_name,
        or_(newer.created_at > Detection.created_at, and_(newer.created_at == Detection.created_at, newer.id > Detection.id)),
    )


def verdicts(
    session: Session,
    target: str | None = None,
    positive_only: bool = False,
    since: datetime | None = None,
    history: bool = False,
    video_id: int | None = None,
    limit: int | None = None,
) -> list[tuple[Detection, bool]]:
    """The one query of every listing of verdicts: ``(detection, superseded)`` pairs, newest
    video first, with their videos loaded. By default only the current verdict of each
    (video, target) (its newest row); ``history``: superseded rows too, flagged. The filters
    (``positive_only``, ``since``: found at or after) apply to the rows listed, so a video whose
    current verdict is negative is not listed as positive for an older version's positive."""
    superseded = superseded_clause()
    query = (
        select(Detection, superseded.label("superseded"))
        .join(Video, Detection.video_id == Video.id)
        .options(selectinload(Detection.video))
        .order_by(Video.id.desc(), Detection.target_name, Detection.created_at.desc(), Detection.id.desc())
    )
    if not history:
        query = query.where(~superseded)
    if target:
        query = query.where(Detection.target_name == target)
    if positive_only:
        query = query.where(Detection.verdict == "positive")
    if since is not None:
        query = query.where(Detection.created_at >= since)
    if video_id is not None:
        query = query.where(Detection.video_id == video_id)
    if limit is not None:
        query = query.limit(limit)
    return [(d, bool(old)) for d, old in session.execute(query)]
