"""SQLAlchemy models: the same schema on SQLite and Postgres.

- ``Video``: one submitted video (a file or a URL), its status through the
  pipeline and why it failed, its content hash and metadata.
- ``Detection``: the verdict of one target (name + version) on one video.
- ``FrameScore``: the per-frame scores behind a detection.
- ``StageTiming``: when each pipeline stage ran, and on which worker.
"""

from __future__ import annotations

from datetime import datetime, timezone

from sqlalchemy import (
    JSON,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


class Base(DeclarativeBase):
    pass


class VideoStatus:
    QUEUED = "queued"
    DOWNLOADING = "downloading"
    EXTRACTING = "extracting"
    SCORING = "scoring"
    DONE = "done"
    FAILED = "failed"
    ALL = (QUEUED, DOWNLOADING, EXTRACTING, SCORING, DONE, FAILED)


class Video(Base):
    __tablename__ = "videos"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    job_id: Mapped[str | None] = mapped_column(String(36), unique=True)
    source: Mapped[str] = mapped_column(Text)  # path or URL as submitted
    content_hash: Mapped[str | None] = mapped_column(String(64), index=True)
    platform: Mapped[str | None] = mapped_column(String(32))
    platform_id: Mapped[str | None] = mapped_column(String(128))
    author: Mapped[str | None] = mapped_column(Text)
    caption: Mapped[str | None] = mapped_column(Text)
    posted_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    meta: Mapped[dict] = mapped_column(JSON, default=dict)
    status: Mapped[str] = mapped_column(String(16), default=VideoStatus.QUEUED, index=True)
    error: Mapped[str | None] = mapped_column(Text)
    fps: Mapped[float | None] = mapped_column(Float)
    width: Mapped[int | None] = mapped_column(Integer)
    height: Mapped[int | None] = mapped_column(Integer)
    duration: Mapped[float | None] = mapped_column(Float)
    sampled_frames: Mapped[int | None] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow, onupdate=utcnow)

    detections: Mapped[list["Detection"]] = relationship(back_populates="video", cascade="all, delete-orphan")
    timings: Mapped[list["StageTiming"]] = relationship(back_populates="video", cascade="all, delete-orphan")

    __table_args__ = (Index("ix_videos_platform_id", "platform", "platform_id"),)


class Detection(Base):
    __tablename__ = "detections"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    video_id: Mapped[int] = mapped_column(ForeignKey("videos.id", ondelete="CASCADE"), index=True)
    target_name: Mapped[str] = mapped_column(String(64), index=True)
    target_version: Mapped[str] = mapped_column(String(32))
    target_kind: Mapped[str] = mapped_column(String(16))
    verdict: Mapped[str] = mapped_column(String(16))  # positive | negative
    frames: Mapped[int] = mapped_column(Integer)
    scored_frames: Mapped[int] = mapped_column(Integer)
    positive_frames: Mapped[int] = mapped_column(Integer)
    positive_timestamps: Mapped[list] = mapped_column(JSON, default=list)
    threshold: Mapped[float] = mapped_column(Float)
    best_timestamp: Mapped[float | None] = mapped_column(Float)
    best_score: Mapped[float | None] = mapped_column(Float)
    evidence_key: Mapped[str | None] = mapped_column(Text)  # media-store key of the best frame
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)

    video: Mapped[Video] = relationship(back_populates="detections")
    frame_scores: Mapped[list["FrameScore"]] = relationship(
        back_populates="detection", cascade="all, delete-orphan", order_by="FrameScore.frame_index"
    )

    __table_args__ = (UniqueConstraint("video_id", "target_name", "target_version", name="uq_detection"),)


class FrameScore(Base):
    __tablename__ = "frame_scores"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    detection_id: Mapped[int] = mapped_column(ForeignKey("detections.id", ondelete="CASCADE"), index=True)
    frame_index: Mapped[int] = mapped_column(Integer)
    timestamp: Mapped[float] = mapped_column(Float)
    score: Mapped[float] = mapped_column(Float)
    box: Mapped[list | None] = mapped_column(JSON)

    detection: Mapped[Detection] = relationship(back_populates="frame_scores")


class StageTiming(Base):
    __tablename__ = "stage_timings"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    video_id: Mapped[int] = mapped_column(ForeignKey("videos.id", ondelete="CASCADE"), index=True)
    stage: Mapped[str] = mapped_column(String(16))
    worker: Mapped[str | None] = mapped_column(String(255))
    started_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    finished_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))

    video: Mapped[Video] = relationship(back_populates="timings")
