"""What the review app shows and does, as plain functions over a database
session (no web framework): the web pages, the CLI and the tests call these.

- ``inbox``: detections, newest first, filtered;
- ``video_view``: one video with its detections, frames, reviews and timings;
- ``review_detection`` / ``mark_frames``: record reviews (frame marks on a face
  target also correct the target: see ``workers.review.corrections``);
- ``targets_view`` / ``pipeline_view``: the targets and the pipeline at a glance.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone

from sqlalchemy import Select, select, tuple_
from sqlalchemy.orm import Session, selectinload

from workers.detect.registry import kinds
from workers.errors import TrackerError
from workers.review.training import retrainable
from workers.review.verdicts import ShownVerdict, shown
from workers.settings import Settings
from workers.storage import results, reviews
from workers.storage.db import session_scope
from workers.storage.models import Detection, Review, ReviewVerdict, Video, VideoStatus, as_utc
from workers.targets.bundle import list_targets, target_meta

REVIEW_STATES = (reviews.UNREVIEWED, *ReviewVerdict.DETECTION)


@dataclass(frozen=True)
class Cursor:
    """A place in the inbox's order (newest first: created, then id): the "older" and "newer"
    links page from it, and stay right while new detections arrive above it."""

    created_at: datetime
    id: int

    EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)  # noqa: UP017 - Python 3.10 has no datetime.UTC

    @classmethod
    def of(cls, detection: Detection) -> Cursor:
        return cls(as_utc(detection.created_at), detection.id)

    @classmethod
    def parse(cls, token: str) -> Cursor:
        micros, _, ident = token.partition("-")
        try:
            if not (micros.isdigit() and ident.isdigit() and len(micros) <= 17 and int(ident) < 2**63):
                raise ValueError(token)
            return cls(cls.EPOCH + timedelta(microseconds=int(micros)), int(ident))
        except (ValueError, OverflowError):
            raise TrackerError(f"not a page of the inbox: {token[:40]!r}") from None

    @property
    def token(self) -> str:
        return f"{(self.created_at - self.EPOCH) // timedelta(microseconds=1)}-{self.id}"

    def key(self):
        return tuple_(self.created_at, self.id)


def _order_key():
    return tuple_(Detection.created_at, Detection.id)


@dataclass
class InboxFilter:
    target: str | None = None
    verdict: str | None = None  # positive | negative (None: both; the web inbox asks for positives unless its filter says "any")
    review: str | None = None  # unreviewed | confirmed | rejected
    watch: int | None = None  # a watch id
    source: str | None = None  # text in the video's URL or path
    since: datetime | None = None
    limit: int = 100
    history: bool = False  # superseded verdicts too (a newer verdict of the same video and target replaced them)
    older_than: Cursor | None = None  # the page after one that ended here
    newer_than: Cursor | None = None  # the page before one that began here (when older_than is not set)


@dataclass
class InboxItem:
    detection: Detection
    video: Video
    review: str  # review state (the review that holds for the video and target, across reruns)
    superseded: bool = False
    held: Review | None = None  # that review

    @property
    def shown(self) -> ShownVerdict:
        return shown(self.detection, self.held, self.superseded)


def _inbox_query(flt: InboxFilter) -> Select:
    """The filter's detections (and whether each is superseded), in no order, at no cursor."""
    superseded = results.superseded_clause()
    query = select(Detection, superseded.label("superseded")).join(Video).options(selectinload(Detection.video))
    if not flt.history:
        query = query.where(~superseded)
    if flt.target:
        query = query.where(Detection.target_name == flt.target)
    if flt.verdict:
        query = query.where(Detection.verdict == flt.verdict)
    if flt.since is not None:
        query = query.where(Detection.created_at >= flt.since)
    if flt.source:
        query = query.where(Video.source.contains(flt.source))
    if flt.watch is not None:
        query = query.where(Video.watch_id == flt.watch)
    return query


def inbox(session: Session, flt: InboxFilter) -> list[InboxItem]:
    """Current verdicts (``flt.history``: superseded ones too, flagged) newest first (positive
    first only through the filter), with their videos and review state: the ``flt.limit``
    just older than ``flt.older_than``, else just newer than ``flt.newer_than``, else the newest."""
    return _read_inbox(session, flt)[0]


def _read_inbox(session: Session, flt: InboxFilter) -> tuple[list[InboxItem], list[Detection]]:
    """``inbox``, and the detections read for it, newest first: with a review filter (applied
    here, not in SQL) more are read than shown, and the next page starts after the last read."""
    query = _inbox_query(flt)
    upward = flt.older_than is None and flt.newer_than is not None
    if flt.older_than is not None:
        query = query.where(_order_key() < flt.older_than.key())
    elif upward:
        query = query.where(_order_key() > flt.newer_than.key())
    if upward:
        query = query.order_by(Detection.created_at, Detection.id)
    else:
        query = query.order_by(Detection.created_at.desc(), Detection.id.desc())
    rows = list(session.execute(query.limit(flt.limit * (50 if flt.review is not None else 1))))
    held = reviews.holding(session, [d.id for d, _ in rows])
    items = [InboxItem(d, d.video, held[d.id].verdict if held[d.id] else reviews.UNREVIEWED, bool(old), held[d.id]) for d, old in rows]
    if flt.review:
        items = [i for i in items if i.review == flt.review]
    items, read = items[: flt.limit], [d for d, _ in rows]
    return (items[::-1], read[::-1]) if upward else (items, read)


@dataclass
class InboxPage:
    items: list[InboxItem]
    older: Cursor | None  # where the "older" link starts (None: nothing older)
    newer: Cursor | None  # where the "newer" link starts (None: this is the newest page)


def inbox_page(session: Session, flt: InboxFilter) -> InboxPage:
    """``inbox`` with its links: one cheap look each way for a detection beyond this page.
    A page that a review filter left short goes on from the last detection read, not shown
    (by the SQL filter: such a link may lead to a page with none)."""
    items, read = _read_inbox(session, flt)
    if not read:
        return InboxPage(items, None, None)  # the page shows its "newest" link
    full = len(items) == flt.limit
    first = Cursor.of(items[0].detection if full else read[0])
    last = Cursor.of(items[-1].detection if full else read[-1])
    base = _inbox_query(flt).limit(1)
    older = session.execute(base.where(_order_key() < last.key())).first() is not None
    newer = session.execute(base.where(_order_key() > first.key())).first() is not None
    return InboxPage(items, last if older else None, first if newer else None)


@dataclass
class FrameView:
    index: int
    timestamp: float
    score: float
    positive: bool
    reused: bool
    box: list | None
    evidence_key: str | None
    mark: str | None  # the frame review that holds: target | not_target


@dataclass
class DetectionView:
    detection: Detection
    review: str
    frames: list[FrameView]
    reviews: list[Review]
    rule: str  # the verdict rule, in words
    why: str  # why it fired (or did not)
    superseded: bool = False  # a newer verdict of the same target replaced it (shown below the current one)
    held: Review | None = None  # the detection review that holds (``review`` is its verdict)

    @property
    def shown(self) -> ShownVerdict:
        return shown(self.detection, self.held, self.superseded)

    @property
    def corrected_by_marks(self) -> bool:
        """Frame marks on it make a new target version at once (a face gallery), not only reviews."""
        kind = kinds().get(self.detection.target_kind)
        return kind is not None and kind.corrected_by_marks


@dataclass
class VideoView:
    video: Video
    detections: list[DetectionView]
    timings: list[tuple[str, float, str | None]]  # stage, seconds, worker
    repost_of: Video | None = None


def rule_text(meta: dict | None, detection: Detection) -> str:
    """The target's verdict rule in words (from its saved bundle when it is there)."""
    rule = (meta or {}).get("rule") or {}
    fraction, minimum = float(rule.get("min_fraction", 0)), int(rule.get("min_frames", 1))
    parts = []
    if fraction:
        parts.append(f"at least {fraction:.0%} of the sampled frames")
    parts.append(f"at least {minimum} frame{'s' if minimum != 1 else ''}")
    return f"a frame is positive at score >= {detection.threshold:.2f}; the video when {' and '.join(parts)} are"


def why_text(detection: Detection) -> str:
    found = f"{detection.positive_frames} of {detection.frames} sampled frames positive ({detection.scored_frames} scored)"
    return f"{found}: {detection.verdict}"


def video_view(settings: Settings, session: Session, video_id: int) -> VideoView | None:
    video = session.get(Video, video_id)
    if video is None:
        return None
    held = reviews.latest(session, [d.id for d in video.detections])
    old = {d.id for d, superseded in results.verdicts(session, video_id=video.id, history=True) if superseded}
    views = []
    # Per target: the current verdict first, then the superseded ones, newest first.
    for d in sorted(video.detections, key=lambda d: (d.target_name, d.id in old, -d.created_at.timestamp(), -d.id)):
        try:
            meta = target_meta(settings.models_dir, d.target_name)
        except TrackerError:
            meta = None
        frames = [
            FrameView(
                f.frame_index,
                f.timestamp,
                f.score,
                f.score >= d.threshold,
                f.reused_from is not None,
                f.box,
                f.evidence_key,
                held[(d.id, f.frame_index)].verdict if (d.id, f.frame_index) in held else None,
            )
            for f in d.frame_scores
        ]
        history = reviews.about(session, d)  # every run's and version's reviews of this video and target
        state = held[(d.id, None)].verdict if (d.id, None) in held else reviews.UNREVIEWED
        views.append(DetectionView(d, state, frames, history, rule_text(meta, d), why_text(d), d.id in old, held.get((d.id, None))))
    timings = [(t.stage, (t.finished_at - t.started_at).total_seconds(), t.worker) for t in results.stage_timings(session, video.id)]
    repost = session.get(Video, video.duplicate_of) if video.duplicate_of else None
    return VideoView(video, views, timings, repost)


def _detection(session: Session, detection_id: int) -> Detection:
    detection = session.get(Detection, detection_id)
    if detection is None:
        raise TrackerError(f"no detection {detection_id}")
    return detection


def review_detection(settings: Settings, detection_id: int, verdict: str, reviewer: str | None = None) -> Review:
    """Confirm or reject a detection (a rejected one raises no further alerts)."""
    with session_scope(settings.resolved_database_url) as s:
        review = reviews.add_review(s, _detection(s, detection_id), verdict, reviewer)
        s.expunge(review)
        return review


@dataclass
class MarkResult:
    marked: int
    target_version: str | None = None  # the new version a face correction made
    problems: list[str] = field(default_factory=list)


def mark_frames(
    settings: Settings, detection_id: int, frame_indices: Sequence[int], verdict: str, reviewer: str | None = None
) -> MarkResult:
    """Mark frames of a detection ``target`` / ``not_target``; on a face target the marked
    faces go into its gallery / negative gallery as one new target version."""
    from workers.review.corrections import apply_frame_marks

    indices = sorted(set(int(i) for i in frame_indices))
    if not indices:
        raise TrackerError("mark at least one frame")
    with session_scope(settings.resolved_database_url) as s:  # validate before changing the target
        detection = _detection(s, detection_id)
        known = {f.frame_index for f in detection.frame_scores}
        unknown = [i for i in indices if i not in known]
        if unknown:
            raise TrackerError(f"detection {detection_id} has no scored frame {unknown[0]}")
        if verdict not in ReviewVerdict.FRAME:
            raise TrackerError(f"frame marks are {' or '.join(ReviewVerdict.FRAME)}, not {verdict!r}")
    correction = apply_frame_marks(settings, detection_id, indices, verdict, reviewer)
    with session_scope(settings.resolved_database_url) as s:
        detection = _detection(s, detection_id)
        for index in indices:
            reviews.add_review(s, detection, verdict, reviewer, index, correction.version)
    return MarkResult(len(indices), correction.version, correction.problems)


@dataclass
class TargetView:
    name: str
    meta: dict
    history: list[dict]
    counts: dict[str, int]
    detections: int
    error: str | None = None

    @property
    def retrainable(self) -> bool:
        return retrainable(self.meta)


def targets_view(settings: Settings, session: Session) -> list[TargetView]:
    counts = reviews.counts_by_target(session)
    found: dict[str, int] = {}
    for name in session.scalars(select(Detection.target_name)):
        found[name] = found.get(name, 0) + 1
    views = []
    for name in list_targets(settings.models_dir):
        try:
            meta = target_meta(settings.models_dir, name)
            error = None
        except TrackerError as exc:
            meta, error = {}, str(exc)
        current = {
            "version": meta.get("version"),
            "created": meta.get("created"),
            "change": meta.get("change", "created"),
            "by": meta.get("by"),
        }
        views.append(TargetView(name, meta, [*meta.get("history", []), current], counts.get(name, {}), found.get(name, 0), error))
    return views


@dataclass
class PipelineView:
    statuses: dict[str, int]
    queues: dict[str, int | None]  # None: the broker could not be asked
    broker_error: str | None
    failures: list[Video]
    flower_url: str | None
    health: list = field(default_factory=list)  # ``services.health.Check``: the checks of ``tiktok-tracker health``
    backlog: int = 0
    backlog_limit: int = 0
    finished_last_hour: dict[str, int] = field(default_factory=dict)


def pipeline_view(settings: Settings, session: Session, snap, health: list, flower_url: str | None = None) -> PipelineView:
    """The pipeline page: the health checks first (``snap``, ``services.health.Snapshot``, and its
    ``health`` checks), then videos per status, queues and the recent failures."""
    from workers.pipeline.stages import QUEUES, STATUSES

    statuses = {s: 0 for s in STATUSES} | snap.statuses
    queues = snap.queues or {q: None for q in QUEUES}
    broker_error = snap.broker_error if settings.broker_url else "no broker configured (TT_BROKER_URL)"
    failures = list(session.scalars(select(Video).where(Video.status == VideoStatus.FAILED).order_by(Video.updated_at.desc()).limit(20)))
    return PipelineView(
        statuses, queues, broker_error, failures, flower_url, health, snap.backlog, settings.backlog_limit, snap.finished_last_hour
    )
