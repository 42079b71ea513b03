"""What the pipeline has been doing lately, read for the metrics, ``health`` and the pipeline page:
videos finished in a window, the last one finished, alerts by status, the watches' runs."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from workers.storage.models import AlertRow, StageTiming, Video, VideoStatus, Watch, as_utc


def finished_since(session: Session, since: datetime, last_stage: str) -> dict[str, int]:
    """Videos done (their ``last_stage`` ran through) and failed since ``since``."""
    done = session.scalar(select(func.count()).where(StageTiming.stage == last_stage, StageTiming.finished_at >= since))
    failed = session.scalar(select(func.count()).where(Video.status == VideoStatus.FAILED, Video.updated_at >= since))
    return {VideoStatus.DONE: int(done or 0), VideoStatus.FAILED: int(failed or 0)}


def last_finished_at(session: Session, last_stage: str) -> datetime | None:
    """When a video last ran through ``last_stage`` (the newest finish first: an index walk)."""
    return as_utc(session.scalar(select(func.max(StageTiming.finished_at)).where(StageTiming.stage == last_stage)))


def alert_counts(session: Session) -> dict[str, int]:
    """Alert rows by status (``AlertStatus``)."""
    return {status: int(n) for status, n in session.execute(select(AlertRow.status, func.count()).group_by(AlertRow.status))}


def all_watches(session: Session) -> list[Watch]:
    return list(session.scalars(select(Watch).order_by(Watch.id)))


def backlog(session: Session, watch_id: int | None = None) -> int:
    """Videos queued or in a stage (of one watch)."""
    query = select(func.count()).select_from(Video).where(Video.status.notin_(VideoStatus.FINISHED))
    if watch_id is not None:
        query = query.where(Video.watch_id == watch_id)
    return int(session.scalar(query) or 0)


def finish_times(session: Session, since: datetime, last_stage: str) -> tuple[list[datetime], list[datetime]]:
    """When each video done (through ``last_stage``) and failed since ``since`` finished."""
    done = session.scalars(select(StageTiming.finished_at).where(StageTiming.stage == last_stage, StageTiming.finished_at >= since))
    failed = session.scalars(select(Video.updated_at).where(Video.status == VideoStatus.FAILED, Video.updated_at >= since))
    return [as_utc(t) for t in done], [as_utc(t) for t in failed]


def arrival_times(session: Session, since: datetime) -> list[datetime]:
    """When each video accepted since ``since`` was queued."""
    return [as_utc(t) for t in session.scalars(select(Video.created_at).where(Video.created_at >= since))]


def recent_stage_seconds(session: Session, stage: str, limit: int = 2000) -> list[float]:
    """How long the stage's newest ``limit`` runs took (newest first: an index walk)."""
    rows = session.execute(
        select(StageTiming.started_at, StageTiming.finished_at)
        .where(StageTiming.stage == stage)
        .order_by(StageTiming.finished_at.desc())
        .limit(limit)
    )
    return [(finished - started).total_seconds() for started, finished in rows]
