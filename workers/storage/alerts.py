"""The ``alerts`` table: one row per positive (video, target), ever.

The row is written *before* anything is sent (its unique key is what makes
a redelivered task send nothing twice), then updated with the delivery's
outcome. ``workers.alerts.policy`` decides from the history read here; this
module only reads and writes rows.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import func, or_, select, text, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from workers.alerts.policy import AlertRecord
from workers.storage.models import AlertRow, AlertStatus, as_utc

_PG_ALERT_LOCK = 0x7474_616C  # "ttal": namespace of the per-target advisory locks


def video_key(video_id: int) -> str:
    """What the alert policy counts "one alert per (video, target)" by."""
    return f"video:{video_id}"


def as_record(row: AlertRow) -> AlertRecord:
    """A row as the policy sees it: an alert being sent counts as sent."""
    status = AlertStatus.SENT if row.status == AlertStatus.PENDING else row.status
    moment = row.sent_at if row.status == AlertStatus.SENT else row.updated_at
    return AlertRecord(video_key(row.video_id), row.target_name, status, as_utc(moment or row.created_at))


def lock_target(session: Session, target: str) -> None:
    """Serialise alert decisions for ``target`` until the transaction ends (cooldowns stay exact
    with many workers). Postgres only: SQLite already lets one writer in at a time."""
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text("SELECT pg_advisory_xact_lock(:ns, hashtext(:target))"), {"ns": _PG_ALERT_LOCK, "target": target})


def _latest_sent(session: Session, target: str) -> AlertRow | None:
    return session.scalars(
        select(AlertRow)
        .where(AlertRow.target_name == target, AlertRow.status.in_((AlertStatus.SENT, AlertStatus.PENDING)))
        .order_by(AlertRow.updated_at.desc())
        .limit(1)
    ).first()


def history(session: Session, video_id: int, target: str) -> list[AlertRecord]:
    """What ``alert_decision`` needs: this pair's row, and the target's latest alert sent (or being sent)."""
    rows = list(session.scalars(select(AlertRow).where(AlertRow.video_id == video_id, AlertRow.target_name == target)))
    latest = _latest_sent(session, target)
    if latest is not None and latest not in rows:
        rows.append(latest)
    return [as_record(r) for r in rows]


def insert(session: Session, video_id: int, target: str, detection_id: int | None, status: str, now: datetime) -> AlertRow | None:
    """The pair's row, new; None when it already exists (another delivery of the task got there first)."""
    row = AlertRow(
        video_id=video_id,
        target_name=target,
        detection_id=detection_id,
        status=status,
        attempts=0,
        channels=[],
        created_at=now,
        updated_at=now,
    )
    try:
        with session.begin_nested():
            session.add(row)
            session.flush()
    except IntegrityError:
        return None
    return row


def claim(session: Session, row_ids: list[int], status: str, now: datetime, untouched_since: datetime | None = None) -> bool:
    """Mark rows that are all still ``status`` (and, with ``untouched_since``, not updated
    since then) as being sent (``pending``); False, and nothing changed, when another
    worker took any of them first."""
    if not row_ids:
        return False
    query = update(AlertRow).where(AlertRow.id.in_(row_ids), AlertRow.status == status)
    if untouched_since is not None:
        query = query.where(AlertRow.updated_at < untouched_since)
    with session.begin_nested() as nested:
        done = session.execute(query.values(status=AlertStatus.PENDING, updated_at=now).execution_options(synchronize_session=False))
        if done.rowcount != len(row_ids):
            nested.rollback()
            return False
    return True


def record_delivery(
    session: Session,
    row_ids: list[int],
    report: list[dict],
    delivered: bool,
    error: str | None,
    now: datetime,
    undelivered: str = AlertStatus.FAILED,
) -> None:
    """A delivery's outcome: ``sent``, or ``undelivered`` (failed; held again for a digest) with the error."""
    for row in session.scalars(select(AlertRow).where(AlertRow.id.in_(row_ids))):
        row.attempts = (row.attempts or 0) + 1
        row.channels = report
        row.error = error
        row.updated_at = now
        if delivered:
            row.status, row.sent_at = AlertStatus.SENT, now
        else:
            row.status = undelivered


def retry_delay(attempts: int, first: float = 60.0, longest: float = 3600.0) -> timedelta:
    """How long a failed alert waits before its next delivery: 1, 2, 4 ... minutes, at most an hour
    (none for a row never tried: one the reaper added for a positive the alert stage missed)."""
    if attempts <= 0:
        return timedelta(0)
    return timedelta(seconds=min(longest, first * 2 ** max(0, attempts - 1)))


def due_for_retry(session: Session, now: datetime, stale_after: timedelta) -> list[tuple[int, str]]:
    """(id, status) of failed alerts whose wait is over, and of alerts left ``pending`` by a
    worker that died while sending (older than ``stale_after``)."""
    rows = session.scalars(
        select(AlertRow)
        .where(
            or_(
                AlertRow.status == AlertStatus.FAILED,
                (AlertRow.status == AlertStatus.PENDING) & (AlertRow.updated_at < now - stale_after),
            )
        )
        .order_by(AlertRow.id)
    )
    return [(r.id, r.status) for r in rows if r.status == AlertStatus.PENDING or as_utc(r.updated_at) + retry_delay(r.attempts) <= now]


def digest_history(session: Session) -> tuple[list[AlertRecord], dict[tuple[str, str], int]]:
    """Held alerts, and each of their targets' latest alert sent, as policy records; plus
    (target, video key) -> row id of the held ones."""
    held = list(session.scalars(select(AlertRow).where(AlertRow.status == AlertStatus.HELD).order_by(AlertRow.id)))
    records = [as_record(r) for r in held]
    for target in sorted({r.target_name for r in held}):
        latest = _latest_sent(session, target)
        if latest is not None:
            records.append(as_record(latest))
    return records, {(r.target_name, video_key(r.video_id)): r.id for r in held}


def recent(session: Session, limit: int = 50) -> list[AlertRow]:
    return list(session.scalars(select(AlertRow).order_by(AlertRow.id.desc()).limit(limit)))


def cluster_of(session: Session, video) -> list[int]:
    """The ids of the repost cluster ``video`` belongs to: its original and every video linked to it."""
    from workers.storage.models import Video

    root = video.duplicate_of or video.id
    return [root, *session.scalars(select(Video.id).where(Video.duplicate_of == root))]


def cluster_alerted(session: Session, video_ids: list[int], target: str) -> bool:
    """Whether some video of the cluster already has an alert row for ``target`` (sent, held, failed or pending)."""
    return (
        session.scalar(
            select(AlertRow.id)
            .where(AlertRow.video_id.in_(video_ids), AlertRow.target_name == target, AlertRow.status != AlertStatus.REPOST)
            .limit(1)
        )
        is not None
    )


def same_content(session: Session, video) -> list[int]:
    """The ids of the other videos with ``video``'s bytes (its content hash), whichever way they came."""
    from workers.storage.models import Video

    if not video.content_hash:
        return []
    return list(session.scalars(select(Video.id).where(Video.content_hash == video.content_hash, Video.id != video.id)))


def reposts_since(session: Session, target: str, since: datetime | None) -> int:
    """Reposts of already alerted videos recorded for ``target`` since ``since`` (all: None)."""
    query = select(func.count()).select_from(AlertRow).where(AlertRow.target_name == target, AlertRow.status == AlertStatus.REPOST)
    if since is not None:
        query = query.where(AlertRow.created_at > since)
    return session.scalar(query) or 0


def last_sent_at(session: Session, target: str, excluding: list[int]) -> datetime | None:
    """When ``target``'s latest alert went out, other than the rows ``excluding`` (being sent now)."""
    return session.scalar(
        select(func.max(AlertRow.sent_at)).where(
            AlertRow.target_name == target, AlertRow.status == AlertStatus.SENT, AlertRow.id.notin_(excluding)
        )
    )
