"""Which videos' data has outlived its retention, and removing it in small transactions.

Two things happen to an old video (``pipeline.retention`` decides when, from the settings):

- its *frame data* is dropped (per-frame scores, frame hashes with their index rows, stage
  timings) and it leaves the repost index (no frame hashes, no content hash): the video and
  its verdicts stay, so a watch does not queue it again and ``results`` still lists it;
- the video is *deleted*: its row and everything that hangs off it (verdicts, reviews, alert
  rows, frame data; a repost of it keeps its own rows and loses the link).

A video with a positive verdict (any version) or any review is *kept*: it has its own,
longer retention. Each call touches at most ``limit`` videos in one short transaction, so
running workers never wait long on the rows it locks.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import Engine, Select, and_, delete, exists, func, select, text, update
from sqlalchemy.orm import Session

from workers.media.keys import media_id
from workers.storage.db import batches
from workers.storage.models import (
    AlertRow,
    Base,
    Detection,
    FrameHash,
    FrameHashChunk,
    FrameScore,
    Review,
    StageTiming,
    Video,
    VideoStatus,
)

FRAME_DATA, NEGATIVE, FAILED, KEPT = "frame data", "negative videos", "failed videos", "positive or reviewed videos"
# The tables a kind removes rows from, in the order the report lists them.
FRAME_TABLES = ("frame_scores", "frame_hashes", "frame_hash_chunks", "stage_timings")
VIDEO_TABLES = ("videos", "detections", "reviews", "alerts", *FRAME_TABLES)


def kept_clause():
    """A video with a positive verdict or a review: kept longer than the others."""
    positive = exists(select(Detection.id).where(Detection.video_id == Video.id, Detection.verdict == "positive"))
    reviewed = exists(select(Review.id).join(Detection, Review.detection_id == Detection.id).where(Detection.video_id == Video.id))
    return positive | reviewed


def due_query(kind: str, cutoff: datetime) -> Select:
    """The ids of the videos ``kind`` applies to, finished before ``cutoff``."""
    finished_before = Video.updated_at < cutoff
    if kind == FRAME_DATA:
        where = and_(Video.status == VideoStatus.DONE, Video.pruned_at.is_(None), finished_before, ~kept_clause())
    elif kind == NEGATIVE:
        where = and_(Video.status == VideoStatus.DONE, finished_before, ~kept_clause())
    elif kind == FAILED:
        where = and_(Video.status == VideoStatus.FAILED, finished_before)
    elif kind == KEPT:
        where = and_(Video.status == VideoStatus.DONE, finished_before, kept_clause())
    else:
        raise ValueError(f"unknown kind {kind!r}")
    return select(Video.id).where(where).order_by(Video.id)


def due(session: Session, kind: str, cutoff: datetime, limit: int, after_id: int = 0) -> list[int]:
    """At most ``limit`` video ids of ``kind`` due at ``cutoff``, after ``after_id`` (pages)."""
    return list(session.scalars(due_query(kind, cutoff).where(Video.id > after_id).limit(limit)))


def _frame_hash_ids(video_ids: Sequence[int]):
    return select(FrameHash.id).where(FrameHash.video_id.in_(video_ids))


def _detection_ids(video_ids: Sequence[int]):
    return select(Detection.id).where(Detection.video_id.in_(video_ids))


def row_counts(session: Session, video_ids: Sequence[int], tables: Sequence[str]) -> dict[str, int]:
    """Rows of each of ``tables`` that belong to the videos."""
    counts = dict.fromkeys(tables, 0)
    for chunk in batches(video_ids):
        for table in tables:
            counts[table] += int(session.scalar(_count(table, chunk)) or 0)
    return counts


def _count(table: str, video_ids: Sequence[int]) -> Select:
    where = {
        "videos": Video.id.in_(video_ids),
        "detections": Detection.video_id.in_(video_ids),
        "reviews": Review.detection_id.in_(_detection_ids(video_ids)),
        "alerts": AlertRow.video_id.in_(video_ids),
        "frame_scores": FrameScore.detection_id.in_(_detection_ids(video_ids)),
        "frame_hashes": FrameHash.video_id.in_(video_ids),
        "frame_hash_chunks": FrameHashChunk.frame_hash_id.in_(_frame_hash_ids(video_ids)),
        "stage_timings": StageTiming.video_id.in_(video_ids),
    }[table]
    return select(func.count()).where(where)


def media_ids(session: Session, video_ids: Sequence[int]) -> list[str]:
    """What the videos' objects in the media store are named by (``media_id``): their evidence
    is under ``evidence/<media>/``, a kept file under ``videos/<media>/``."""
    return [media_id(job, vid) for vid, job in session.execute(select(Video.id, Video.job_id).where(Video.id.in_(video_ids)))]


def _delete_frame_rows(session: Session, video_ids: Sequence[int]) -> None:
    session.execute(delete(FrameScore).where(FrameScore.detection_id.in_(_detection_ids(video_ids))))
    session.execute(delete(FrameHashChunk).where(FrameHashChunk.frame_hash_id.in_(_frame_hash_ids(video_ids))))
    session.execute(delete(FrameHash).where(FrameHash.video_id.in_(video_ids)))
    session.execute(delete(StageTiming).where(StageTiming.video_id.in_(video_ids)))


def drop_frame_data(session: Session, video_ids: Sequence[int], now: datetime) -> None:
    """Remove the videos' frame data and take them out of the repost index (see the module docstring)."""
    _delete_frame_rows(session, video_ids)
    session.execute(
        update(Video)
        .where(Video.id.in_(video_ids))
        .values(pruned_at=now, content_hash=None, updated_at=Video.updated_at)  # its age stays its finish time
        .execution_options(synchronize_session=False)
    )


def delete_videos(session: Session, video_ids: Sequence[int]) -> None:
    """Delete the videos and every row that hangs off them (reposts of them lose the link)."""
    session.execute(
        update(Video)
        .where(Video.duplicate_of.in_(video_ids))
        .values(duplicate_of=None, updated_at=Video.updated_at)
        .execution_options(synchronize_session=False)
    )
    _delete_frame_rows(session, video_ids)  # the big tables first, each in one statement
    session.execute(delete(Review).where(Review.detection_id.in_(_detection_ids(video_ids))))
    session.execute(delete(AlertRow).where(AlertRow.video_id.in_(video_ids)))
    session.execute(delete(Detection).where(Detection.video_id.in_(video_ids)))
    session.execute(delete(Video).where(Video.id.in_(video_ids)))


TABLES = tuple(Base.metadata.tables)  # every table of the schema, for its size


def table_bytes(session: Session) -> dict[str, int]:
    """Bytes each table takes with its indexes (Postgres: ``pg_total_relation_size``; SQLite: its
    pages, from ``dbstat`` where SQLite has it, else the file's share by rows)."""
    dialect = session.get_bind().dialect.name
    if dialect == "postgresql":
        return {t: int(session.scalar(text("SELECT pg_total_relation_size(CAST(:t AS regclass))"), {"t": t}) or 0) for t in TABLES}
    try:
        rows = session.execute(text("SELECT name, SUM(pgsize) FROM dbstat GROUP BY name")).all()
        sizes = dict(rows)
        indexes = session.execute(text("SELECT name, tbl_name FROM sqlite_master WHERE type = 'index'")).all()
        out = {t: int(sizes.get(t, 0)) for t in TABLES}
        for index, table in indexes:
            if table in out:
                out[table] += int(sizes.get(index, 0))
        return out
    except Exception:  # noqa: BLE001 - SQLite built without dbstat
        page = int(session.scalar(text("PRAGMA page_size")) or 4096) * int(session.scalar(text("PRAGMA page_count")) or 0)
        counts = {t: int(session.scalar(text(f"SELECT COUNT(*) FROM {t}")) or 0) for t in TABLES}  # noqa: S608 - fixed names
        total = sum(counts.values()) or 1
        return {t: page * n // total for t, n in counts.items()}


def row_bytes(session: Session) -> dict[str, float]:
    """Average bytes a row of each table takes (its share of ``table_bytes``), for estimates
    (Postgres: rows as its statistics count them, without counting every row)."""
    sizes = table_bytes(session)
    postgres = session.get_bind().dialect.name == "postgresql"
    out = {}
    for table in TABLES:
        if postgres:
            rows = float(session.scalar(text("SELECT reltuples FROM pg_class WHERE oid = CAST(:t AS regclass)"), {"t": table}) or 0)
        else:
            rows = float(session.scalar(text(f"SELECT COUNT(*) FROM {table}")) or 0)  # noqa: S608 - fixed names
        out[table] = sizes[table] / rows if rows > 0 else 0.0
    return out


def vacuum(engine: Engine) -> None:
    """Postgres: ``VACUUM (ANALYZE)`` the tables retention thins, so that their freed space is
    reused (autovacuum would, later) and the planner sees their new sizes. SQLite reuses freed
    pages by itself. Plain VACUUM takes no lock that blocks reads or writes."""
    if engine.dialect.name != "postgresql":
        return
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        for table in VIDEO_TABLES:
            conn.execute(text(f"VACUUM (ANALYZE) {table}"))
