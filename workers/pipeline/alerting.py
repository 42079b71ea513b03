"""Alerts from the pipeline: the alert stage, and the follow-up pass that celery beat runs.

For each new positive (video, target), the alert stage:

1. decides with ``workers.alerts.alert_decision`` over the ``alerts`` table
   (decisions for one target are serialised, so cooldowns hold with many
   workers): skip (already alerted or held), hold (inside the target's
   cooldown: it goes out in the next digest) or send;
2. inserts the pair's row *first* (``pending`` or ``held``); the unique
   (video, target) key means a redelivered or concurrent task finds the row
   and sends nothing;
3. sends through every configured channel (``deliver_with_settings``: each
   channel retried with backoff, none blocking another) an ``Alert`` built
   from the video's metadata, the verdict and the best-frame thumbnail;
4. records ``sent`` (some channel got it) or ``failed``, with the
   per-channel report. The stage itself never fails because of a channel.

The follow-up pass (``alert_followups``) retries ``failed`` alerts (after 1,
2, 4 ... minutes, at most an hour apart), takes over alerts left ``pending``
by a worker that died (older than the longest a delivery can take:
``stale_pending_after``), and sends each target's held alerts as one digest
when its cooldown is over (``due_digests``).

Delivery is at least once: a worker killed between a channel accepting the
alert and the row being marked ``sent`` leaves it ``pending``, and the next
pass sends it again. Every alert carries a stable idempotency key (payload
``idempotency_key``, header ``Idempotency-Key``, e-mail ``Message-ID``) so
that the receiver can drop the repeat.

Reposts: a video whose bytes another video already had alerted for the
target (a copy enqueued again, or under another name), and with
``repost_alerts = "cluster"`` (the default) a video whose repost cluster (its
original and the videos linked to it) already has an alert for the target,
gets a ``repost`` row instead, never sent; the target's next alert or digest
says how many such reposts came since its previous one.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime, timedelta

from sqlalchemy import select

from workers.alerts import (
    Alert,
    Decision,
    DeliveryReport,
    Digest,
    alert_decision,
    deliver_with_settings,
    delivery_deadline,
    due_digests,
)
from workers.alerts.channels import NO_CHANNEL
from workers.alerts.message import AlertMessage, idempotency_key, thumbnail_from_file
from workers.detect.registry import scores_distance
from workers.errors import AlertError
from workers.media.store import MediaMissing, MediaStore
from workers.pipeline.counters import ALERT_DELIVERIES
from workers.storage import alerts as alert_rows
from workers.storage import reviews, videos
from workers.storage.db import session_scope
from workers.storage.models import AlertRow, AlertStatus, Detection, Video, VideoStatus, as_utc, utcnow
from workers.verdict_text import partial_note

log = logging.getLogger(__name__)

# Bookkeeping time allowed on top of a delivery's own deadline before a pending row counts as abandoned.
PENDING_MARGIN = timedelta(seconds=10)


def stale_pending_after(settings) -> timedelta:
    """A worker that died while sending leaves its alert ``pending``: once it is older than the
    longest a delivery can take (``delivery_deadline``) plus a margin, the next pass sends it again,
    with the same idempotency key (the receiver may have had it: it drops the repeat)."""
    return timedelta(seconds=delivery_deadline(settings)) + PENDING_MARGIN


def thumbnail(store: MediaStore, key: str | None) -> bytes | None:
    """The alert thumbnail (JPEG) of an evidence image in the store; None when there is none."""
    if not key:
        return None
    try:
        with store.local_path(key) as path:
            return thumbnail_from_file(path)
    except MediaMissing:
        return None


def alert_message(video: Video, target: str, detection: Detection | None, image: bytes | None, repost_of: str | None = None) -> Alert:
    """The alert about ``target`` in ``video``, from the stored rows (text is sanitised when rendered)."""
    platform, platform_id = videos.platform_ids(video)
    return Alert(
        target=target,
        video_url=video.source,
        confidence=detection.best_score if detection else None,
        positive_timestamps=list(detection.positive_timestamps or []) if detection else [],
        author=video.author,
        caption=video.caption,
        platform=platform,
        platform_id=platform_id,
        posted_at=as_utc(video.posted_at),
        thumbnail=image,
        best_timestamp=detection.best_timestamp if detection else None,
        video_key=alert_rows.video_key(video.id),
        found_at=as_utc(detection.created_at) if detection else utcnow(),
        repost_of=repost_of,
        match_tolerance=1.0 - detection.threshold if detection and scores_distance(detection.target_kind) else None,
        partial_note=partial_note(video.decoded_frames, video.promised_frames) if video.partial else None,
        # The job id, not the database id: a reset database never reuses a key.
        key=idempotency_key("alert", video.job_id or f"video:{video.id}", target),
    )


def _alert_for_row(store: MediaStore, session, row: AlertRow) -> Alert:
    video = row.video
    detection = session.get(Detection, row.detection_id) if row.detection_id else None
    if detection is None:  # its verdict was written again since: take the current one
        detection = session.scalars(
            select(Detection)
            .where(Detection.video_id == video.id, Detection.target_name == row.target_name, Detection.verdict == "positive")
            .order_by(Detection.id.desc())
        ).first()
    original = session.get(Video, video.duplicate_of) if video.duplicate_of else None
    image = thumbnail(store, detection.evidence_key if detection else None)
    return alert_message(video, row.target_name, detection, image, original.source if original else None)


def send(message: AlertMessage, settings) -> tuple[DeliveryReport, str | None]:
    """Deliver through the configured channels; never raises. The error says what failed, if anything."""
    try:
        report = deliver_with_settings(message, settings)
    except AlertError as exc:  # a channel's settings are incomplete
        return DeliveryReport(), str(exc)
    if not report.results:
        return report, NO_CHANNEL
    failures = "; ".join(f"{r.channel}: {r.error}" for r in report.failures)
    return report, failures or None


def deliver_rows(ctx, row_ids: Sequence[int], digest_target: str | None = None, now: datetime | None = None) -> bool:
    """Send the alert of one claimed (``pending``) row, or the digest of several rows of
    ``digest_target``, and record the outcome; whether some channel got it."""
    with session_scope(ctx.db_url) as s:
        rows = [row for row in (s.get(AlertRow, i) for i in row_ids) if row is not None]
        alerts = [_alert_for_row(ctx.store, s, row) for row in rows]
    if not alerts:  # their videos were deleted meanwhile
        return False
    with session_scope(ctx.db_url) as s:
        target = digest_target or rows[0].target_name
        reposts = alert_rows.reposts_since(s, target, alert_rows.last_sent_at(s, target, list(row_ids)))
    if reposts:
        alerts[0] = replace(alerts[0], reposts_since=reposts)
    message: AlertMessage = Digest(digest_target, alerts) if digest_target else alerts[0]
    report, error = send(message, ctx.settings)
    undelivered = AlertStatus.HELD if digest_target else AlertStatus.FAILED
    with session_scope(ctx.db_url) as s:
        alert_rows.record_delivery(s, list(row_ids), report.to_json(), report.delivered, error, now or utcnow(), undelivered)
    for result in report.results:
        ctx.counters.add(ALERT_DELIVERIES, {"channel": result.channel, "outcome": "sent" if result.ok else "failed"})
    if not report.delivered:
        log.warning("alert for %s not delivered, will retry: %s", message.title(), error)
    elif error:
        log.warning("alert for %s sent, but: %s", message.title(), error)
    return report.delivered


def alert_video(ctx, video_id: int, now: datetime | None = None) -> bool:
    """The alert stage: see the module docstring. False when the video is not done."""
    with session_scope(ctx.db_url) as s:
        video = s.get(Video, video_id)
        if video is None or video.status != VideoStatus.DONE:
            return False
        # A detection a person rejected (or the one this repost copies) raises no alert.
        positives = [(d.id, d.target_name) for d in video.detections if d.verdict == "positive" and not reviews.is_rejected(s, d)]
    for detection_id, target in positives:
        moment = now or utcnow()
        with session_scope(ctx.db_url) as s:
            decision, row_id = open_alert(s, ctx.settings, video_id, target, detection_id, moment)
        if row_id is None:
            continue  # alerted, held or being sent already
        if decision is Decision.HOLD:
            log.info("alert for %s in video %s held: inside the cooldown, goes out in a digest", target, video_id)
        else:
            deliver_rows(ctx, [row_id])
    return True


def open_alert(
    session,
    settings,
    video_id: int,
    target: str,
    detection_id: int | None,
    moment: datetime,
    send_as: str = AlertStatus.PENDING,
) -> tuple[Decision, int | None]:
    """Decide on one positive (video, target) and insert its row: ``send_as`` (``pending``: the
    caller sends it now; ``failed``: the follow-up pass sends it) or ``held``. The row id is None
    when the pair already has a row (alerted, held or being sent)."""
    alert_rows.lock_target(session, target)
    video = session.get(Video, video_id)
    # One alert per video content, ever (a copy, however it came, is a repost of it), and with
    # repost_alerts = "cluster" one per repost cluster: this one is counted in the target's next alert instead.
    related = alert_rows.same_content(session, video)
    if settings.repost_alerts == "cluster":
        related += alert_rows.cluster_of(session, video)
    if alert_rows.cluster_alerted(session, [i for i in related if i != video_id], target):
        alert_rows.insert(session, video_id, target, detection_id, AlertStatus.REPOST, moment)
        return Decision.SKIP, None
    history = alert_rows.history(session, video_id, target)
    decision = alert_decision(alert_rows.video_key(video_id), target, history, moment, settings.alert_cooldown_minutes)
    if decision is Decision.SKIP:
        return decision, None
    status = send_as if decision is Decision.SEND else AlertStatus.HELD
    row = alert_rows.insert(session, video_id, target, detection_id, status, moment)
    return decision, row.id if row is not None else None


def send_due_digests(ctx, now: datetime) -> int:
    """Send each target's held alerts as one digest once its cooldown is over; how many digests went."""
    with session_scope(ctx.db_url) as s:
        records, row_ids = alert_rows.digest_history(s)
    sent = 0
    for target, keys in due_digests(records, now, ctx.settings.alert_cooldown_minutes).items():
        ids = [row_ids[(target, key)] for key in keys]
        with session_scope(ctx.db_url) as s:
            claimed = alert_rows.claim(s, ids, AlertStatus.HELD, now)
        if claimed and deliver_rows(ctx, ids, digest_target=target, now=now):
            sent += 1
    return sent


def alert_followups(ctx, now: datetime | None = None) -> dict:
    """Beat's pass: retry failed alerts whose wait is over, take over stale pending ones, send due digests."""
    now = now or utcnow()
    with session_scope(ctx.db_url) as s:
        stale_after = stale_pending_after(ctx.settings)
        due = alert_rows.due_for_retry(s, now, stale_after)
    retried = delivered = 0
    for row_id, status in due:
        with session_scope(ctx.db_url) as s:
            stale = now - stale_after if status == AlertStatus.PENDING else None
            claimed = alert_rows.claim(s, [row_id], status, now, untouched_since=stale)
        if claimed:
            retried += 1
            delivered += deliver_rows(ctx, [row_id], now=now)
    report = {"retried": retried, "delivered": delivered, "digests": send_due_digests(ctx, now)}
    if retried or report["digests"]:
        log.info("alert follow-ups: %s", report)
    return report
