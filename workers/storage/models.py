"""SQLAlchemy models: the same schema on SQLite and Postgres.

- ``Video``: one submitted video (a file or a URL), its status through the
  pipeline and why it failed, its content hash and metadata, and what its
  stages need to find again (``workers.storage.videos`` reads and changes that).
- ``Detection``: the verdict of one target (name + version) on one video.
- ``FrameScore``: the per-frame scores behind a detection.
- ``StageTiming``: when each pipeline stage ran, and on which worker.
- ``AlertRow``: the one alert per (video, target): held, sent or failed.
- ``Watch``: a source scraped on a schedule (by celery beat) for given targets.
- ``FrameHash`` / ``FrameHashChunk``: each sampled frame's PDQ hash, and the
  multi-index-hashing entries that find near hashes without scanning them all.
- ``Review``: a person's say on a detection (confirmed / rejected) or on one
  of its frames (target / not_target); the latest row per (detection, frame) holds.
- ``Account``: a review app login (name, role, password hash).
"""

from __future__ import annotations

from datetime import datetime, timezone

from sqlalchemy import (
    JSON,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    false,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship, validates

from workers.video_ref import source_key


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


def as_utc(moment: datetime | None) -> datetime | None:
    """A stored time as an aware UTC datetime (SQLite hands them back naive)."""
    if moment is None:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)


class Base(DeclarativeBase):
    pass


class VideoStatus:
    """The words stored in ``videos.status`` and shown to users. Which stage shows which,
    and their order, is the pipeline's stage table (``workers.pipeline.stages.STAGES``)."""

    QUEUED = "queued"
    DOWNLOADING = "downloading"
    EXTRACTING = "extracting"
    SCORING = "scoring"
    DONE = "done"
    FAILED = "failed"
    FINISHED = (DONE, FAILED)


class Video(Base):
    __tablename__ = "videos"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    job_id: Mapped[str | None] = mapped_column(String(36), unique=True)
    source: Mapped[str] = mapped_column(Text)  # URL as submitted, or absolute path (``video_ref.canonical_source``)
    # SHA-256 of ``source``, unique: one row per source, even for two submissions at the same
    # instant (set with it: ``set_source``); NULL on older duplicate rows (migration 0011).
    source_key: Mapped[str | None] = mapped_column(String(64), index=True, unique=True)
    content_hash: Mapped[str | None] = mapped_column(String(64), index=True)
    platform: Mapped[str | None] = mapped_column(String(32))
    platform_id: Mapped[str | None] = mapped_column(String(128))
    author: Mapped[str | None] = mapped_column(Text)
    caption: Mapped[str | None] = mapped_column(Text)
    posted_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # What a source listed or the downloader learnt (``VideoRef.to_json``): counts, hashtags ...
    ref: Mapped[dict | None] = mapped_column(JSON(none_as_null=True))
    # The target names it is (to be) scored for; the watch that queued it (not a foreign key:
    # a removed watch's videos keep its id, as they keep its results).
    targets: Mapped[list] = mapped_column(JSON, default=list, server_default=text("'[]'"))
    watch_id: Mapped[int | None] = mapped_column(Integer, index=True)
    # The pipeline's progress, so that a retried or redelivered stage picks it up: where the
    # download stage put the file in the media store; whether the frames stage stored the
    # frames' hashes and linked the video; since when a repost waits for its original's
    # verdicts; how often the reaper requeued it.
    video_key: Mapped[str | None] = mapped_column(Text)
    frames_linked: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    repost_wait_since: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    requeues: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    # The stage lease (``videos.take_lease``): the worker running a stage on it, and until when it
    # holds the video unless it renews; both NULL between stages. Expired: the reaper requeues it.
    lease_worker: Mapped[str | None] = mapped_column(Text)
    lease_until: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    status: Mapped[str] = mapped_column(String(16), default=VideoStatus.QUEUED, index=True)
    error: Mapped[str | None] = mapped_column(Text)
    fps: Mapped[float | None] = mapped_column(Float)
    width: Mapped[int | None] = mapped_column(Integer)
    height: Mapped[int | None] = mapped_column(Integer)
    duration: Mapped[float | None] = mapped_column(Float)
    sampled_frames: Mapped[int | None] = mapped_column(Integer)
    # Frames the container promised against those that decoded; ``partial``: so few that a
    # verdict saw only part of the video (truncated or corrupt: ``Decoding.partial``).
    promised_frames: Mapped[int | None] = mapped_column(Integer)
    decoded_frames: Mapped[int | None] = mapped_column(Integer)
    partial: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    # Every sampled frame scored in the first pass (``enqueue --all-frames``): no early verdict, no reuse.
    all_frames: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    # The earlier video with the same content (a repost): its verdicts are reused when it was scored.
    # No ON DELETE action: SQLite can only add this key inline, where its options are not reflected.
    duplicate_of: Mapped[int | None] = mapped_column(ForeignKey("videos.id"), index=True)
    # How strongly it matches the original: 1.0 for the same file, else the weaker share of vPDQ frame matches.
    duplicate_match: Mapped[float | None] = mapped_column(Float)
    # Not started by then (its watch's ``expire_after_seconds``): the download stage fails it as expired.
    expires_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # When retention dropped its frame data (``storage.retention``): out of the repost index since.
    pruned_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow, onupdate=utcnow)

    detections: Mapped[list[Detection]] = relationship(back_populates="video", cascade="all, delete-orphan")
    timings: Mapped[list[StageTiming]] = relationship(back_populates="video", cascade="all, delete-orphan")

    # One row per platform video: what keeps a watch from enqueueing a known video again. The
    # finished videos by age: what retention reads (``storage.retention``).
    __table_args__ = (
        Index("ix_videos_platform_id", "platform", "platform_id", unique=True),
        Index("ix_videos_finished_age", "status", "updated_at"),
        Index("ix_videos_unpruned_age", "status", "pruned_at", "updated_at"),
        Index("ix_videos_created", "created_at"),  # arrivals per hour (the pipeline page's backlog chart)
    )

    @validates("source")
    def _set_source_key(self, _name: str, source: str) -> str:
        """Every row written with a source gets its unique key (one row per source)."""
        self.source_key = source_key(source) if source else None
        return source


class Detection(Base):
    __tablename__ = "detections"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    video_id: Mapped[int] = mapped_column(ForeignKey("videos.id", ondelete="CASCADE"), index=True)
    target_name: Mapped[str] = mapped_column(String(64), index=True)
    target_version: Mapped[str] = mapped_column(String(32))
    target_kind: Mapped[str] = mapped_column(String(16))
    verdict: Mapped[str] = mapped_column(String(16))  # positive | negative
    frames: Mapped[int] = mapped_column(Integer)
    scored_frames: Mapped[int] = mapped_column(Integer)  # frames with a score (early verdict: fewer)
    reused_frames: Mapped[int] = mapped_column(Integer, default=0, server_default="0")  # of those, scores reused
    # Made from part of the video: it decoded to fewer frames than its container promised (truncated).
    partial: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    positive_frames: Mapped[int] = mapped_column(Integer)
    positive_timestamps: Mapped[list] = mapped_column(JSON, default=list)
    threshold: Mapped[float] = mapped_column(Float)
    best_timestamp: Mapped[float | None] = mapped_column(Float)
    best_score: Mapped[float | None] = mapped_column(Float)
    evidence_key: Mapped[str | None] = mapped_column(Text)  # media-store key of the best frame
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)

    video: Mapped[Video] = relationship(back_populates="detections")
    frame_scores: Mapped[list[FrameScore]] = relationship(
        back_populates="detection", cascade="all, delete-orphan", order_by="FrameScore.frame_index"
    )

    @property
    def timeline_complete(self) -> bool:
        """Every sampled frame has a score: its positive frames and timestamps are every appearance
        (an early verdict scored a prefix; ``complete_positive_timelines`` scores the rest later)."""
        return self.scored_frames >= self.frames

    __table_args__ = (
        UniqueConstraint("video_id", "target_name", "target_version", name="uq_detection"),
        # Each (video, target)'s newest row is its current verdict (``results.verdicts``).
        Index("ix_detections_video_target", "video_id", "target_name", "created_at"),
        # The inbox's order (newest first) and its keyset pages.
        Index("ix_detections_created", "created_at", "id"),
    )


class FrameScore(Base):
    __tablename__ = "frame_scores"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    detection_id: Mapped[int] = mapped_column(ForeignKey("detections.id", ondelete="CASCADE"), index=True)
    frame_index: Mapped[int] = mapped_column(Integer)
    timestamp: Mapped[float] = mapped_column(Float)
    score: Mapped[float] = mapped_column(Float)
    box: Mapped[list | None] = mapped_column(JSON)
    # The frame index whose score this near-identical frame reused (None: scored itself).
    reused_from: Mapped[int | None] = mapped_column(Integer)
    # Media-store key of this frame's evidence JPEG (positive frames, at most ``evidence_frames`` per detection).
    evidence_key: Mapped[str | None] = mapped_column(Text)

    detection: Mapped[Detection] = relationship(back_populates="frame_scores")


class StageTiming(Base):
    __tablename__ = "stage_timings"
    # One row per stage of a video: two deliveries of the same task (a broker
    # redelivery while the first still runs) cannot both add one. By finish time: what finished
    # in the last hour, and the pipeline page's charts.
    __table_args__ = (
        Index("uq_stage_timings_video_stage", "video_id", "stage", unique=True),
        Index("ix_stage_timings_finished", "finished_at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    video_id: Mapped[int] = mapped_column(ForeignKey("videos.id", ondelete="CASCADE"), index=True)
    stage: Mapped[str] = mapped_column(String(16))
    worker: Mapped[str | None] = mapped_column(String(255))
    started_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    finished_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))

    video: Mapped[Video] = relationship(back_populates="timings")


class AlertStatus:
    PENDING = "pending"  # claimed by a worker that is sending it now
    SENT = "sent"  # reached at least one channel (alone, or in a digest)
    HELD = "held"  # inside the target's cooldown: goes out in its next digest
    FAILED = "failed"  # every channel failed; a later pass tries again
    REPOST = "repost"  # a repost of a video already alerted for the target: counted in its next alert, never sent
    ALL = (PENDING, SENT, HELD, FAILED, REPOST)


class AlertRow(Base):
    """The alert of one positive (video, target): at most one row per pair, ever."""

    __tablename__ = "alerts"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    video_id: Mapped[int] = mapped_column(ForeignKey("videos.id", ondelete="CASCADE"), index=True)
    target_name: Mapped[str] = mapped_column(String(64))
    detection_id: Mapped[int | None] = mapped_column(ForeignKey("detections.id", ondelete="SET NULL"))
    status: Mapped[str] = mapped_column(String(16))
    attempts: Mapped[int] = mapped_column(Integer, default=0)  # deliveries tried (each through every channel)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow, onupdate=utcnow)
    sent_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    channels: Mapped[list] = mapped_column(JSON, default=list)  # the last delivery's per-channel report
    error: Mapped[str | None] = mapped_column(Text)

    video: Mapped[Video] = relationship()

    __table_args__ = (
        UniqueConstraint("video_id", "target_name", name="uq_alert_video_target"),
        Index("ix_alerts_target_status", "target_name", "status"),
    )


class Watch(Base):
    """A source (``source`` is its canonical spec) listed every ``every_seconds`` for ``targets``."""

    __tablename__ = "watches"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    source: Mapped[str] = mapped_column(Text)
    targets: Mapped[list] = mapped_column(JSON, default=list)
    every_seconds: Mapped[float] = mapped_column(Float)
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    last_run_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    next_run_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow, index=True)
    last_listed: Mapped[int | None] = mapped_column(Integer)  # videos the source returned, seen ones included
    last_enqueued: Mapped[int | None] = mapped_column(Integer)  # new videos queued by the last run
    last_warnings: Mapped[list] = mapped_column(JSON, default=list)
    last_error: Mapped[str | None] = mapped_column(Text)
    # The last run that listed its source (no error, not blocked), and the runs in a row since that
    # failed or were blocked: what the metrics and ``health`` report ("failing for 3 runs").
    last_success_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    failed_runs: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    # New videos its last run left for a later run (the backlog was at its bound: ``backlog_limit``).
    last_deferred: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    # Its videos not started within this many seconds fail as expired (None: never).
    expire_after_seconds: Mapped[float | None] = mapped_column(Float)
    all_frames: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())  # its videos: every frame scored
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    changed_by: Mapped[str | None] = mapped_column(String(128))  # the account that added, enabled or disabled it last


class FrameHash(Base):
    """The PDQ hashes of one sampled frame (64 hex digits each), what reposts are recognised by."""

    __tablename__ = "frame_hashes"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    video_id: Mapped[int] = mapped_column(ForeignKey("videos.id", ondelete="CASCADE"), index=True)
    frame_index: Mapped[int] = mapped_column(Integer)
    timestamp: Mapped[float] = mapped_column(Float)
    quality: Mapped[int] = mapped_column(Integer)
    chroma: Mapped[int] = mapped_column(Integer)  # mean colour without brightness, packed 8:8:8 (PDQ sees only luminance)
    pdq: Mapped[str] = mapped_column(String(64))
    centre: Mapped[str] = mapped_column(String(64))  # the hash of the frame's centre (crops)
    # More hashes of its regions (harder crops, content boxes), 64 hex digits each, run together; NULL: none (rows before 0009)
    regions: Mapped[str | None] = mapped_column(Text)


class FrameHashChunk(Base):
    """One multi-index-hashing entry: chunk position and 16-bit value (``chunk``, see
    ``workers.reposts.matching.chunk_key``) -> the frame whose hashes have it (16 per hash)."""

    __tablename__ = "frame_hash_chunks"

    chunk: Mapped[int] = mapped_column(Integer, primary_key=True)
    frame_hash_id: Mapped[int] = mapped_column(ForeignKey("frame_hashes.id", ondelete="CASCADE"), primary_key=True)

    __table_args__ = (Index("ix_frame_hash_chunks_frame_hash_id", "frame_hash_id"), {"sqlite_with_rowid": False})


class ReviewVerdict:
    CONFIRMED = "confirmed"  # the detection is right
    REJECTED = "rejected"  # the detection is wrong: no further alerts
    TARGET = "target"  # this frame shows the target
    NOT_TARGET = "not_target"  # this frame does not
    DETECTION = (CONFIRMED, REJECTED)
    FRAME = (TARGET, NOT_TARGET)


class Review(Base):
    """One review: of a whole detection (``frame_index`` NULL) or of one of its frames."""

    __tablename__ = "reviews"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    detection_id: Mapped[int] = mapped_column(ForeignKey("detections.id", ondelete="CASCADE"), index=True)
    frame_index: Mapped[int | None] = mapped_column(Integer)
    verdict: Mapped[str] = mapped_column(String(16))
    reviewer: Mapped[str | None] = mapped_column(String(128))  # who, when logged in
    note: Mapped[str | None] = mapped_column(Text)
    # The target version a correction made from this review (face galleries), if any.
    target_version: Mapped[str | None] = mapped_column(String(32))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class Account(Base):
    """A person who may use the review app: a name, a role (``workers.accounts.ROLES``) and an
    argon2 hash of the password. ``session_epoch`` grows at each password change: a session
    made under an older epoch is over."""

    __tablename__ = "accounts"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    role: Mapped[str] = mapped_column(String(16))
    password_hash: Mapped[str] = mapped_column(String(255))
    session_epoch: Mapped[int] = mapped_column(Integer, default=0, server_default=text("0"))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    password_changed_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
