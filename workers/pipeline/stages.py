"""The pipeline's stages as plain functions (no Celery):

    download -> frames -> score -> verdict -> alert

Each takes a ``StageContext`` and a video id, reads its video once (a
``VideoState`` snapshot) and its input from the media store, writes its output
there and through ``workers.storage`` operations, and says what comes next
(``Next``): the next stage; nothing, when the video is already finished
(``done`` or ``failed``), so a repeated or redelivered message changes nothing;
or straight to the alert stage (a repost whose verdicts were reused from the
original needs no frames, scores or verdicts).
Every stage can be re-run: outputs are replaced, never added to.

``STAGES``, at the end, is the one table of stages: name, function, queue and
status. The Celery tasks and their routing (``tasks``, ``celery_app``), the
reaper's resume points and the statuses ``tiktok-tracker status`` lists derive from it.

The work of each stage is a step of ``workers.processing`` (identify, sample,
score, decide, keep evidence, record), the same steps ``workers.scan`` and
``target eval`` run in one process; what this module adds is the wiring:
store keys, statuses, waiting (``Postponed``) and clean-up.
``workers.pipeline.tasks`` wraps these in Celery tasks.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import Enum
from pathlib import Path

from sqlalchemy import func, select

from workers import processing
from workers.detect.base import Extractor, Target
from workers.detect.registry import by_view, make_extractor
from workers.detect.scoring import TargetOutcome, needed_extractors
from workers.detect.shared_passes import passes_for
from workers.download import fetch_ref, fetch_video
from workers.errors import BadVideo, Postponed, TrackerError
from workers.media import store_from_settings
from workers.media.frame_batch import open_frames, write_frame_stream
from workers.media.keys import evidence_face_key, frames_key, media_id, media_of_key, scores_key, video_key
from workers.media.scores import decode_scores, encode_scores
from workers.media.store import MediaMissing, MediaStore
from workers.pipeline import alerting
from workers.pipeline.counters import FRAMES_SCORED, STAGE_RUNS, STAGE_SECONDS, VIDEOS_FINISHED, Counters, counters_for
from workers.processing import ScoringOptions
from workers.reposts import linking
from workers.settings import Settings
from workers.storage import results, timelines, videos
from workers.storage.db import session_scope
from workers.storage.models import Video, VideoStatus, as_utc, utcnow
from workers.storage.videos import VideoState
from workers.targets.published import TargetCatalog, catalog_for
from workers.verdict import FrameScore
from workers.video.sampling import Frame, content_hash, read_frames_at
from workers.video_ref import VideoRef, is_url

log = logging.getLogger(__name__)

FINISHED = VideoStatus.FINISHED
REPOST_POLL_SECONDS = 2.0  # how often a repost waiting for its original looks again
# The kinds of work, one Celery queue each, so that each scales on its own (``celery_app`` routes by them).
IO, CPU, SCORE = "io", "cpu", "score"
QUEUES = (IO, CPU, SCORE)


class Next(Enum):
    """What a stage says comes next for its video (``tasks.StageTask`` acts on it)."""

    CONTINUE = "continue"  # the next stage
    STOP = "stop"  # nothing: the video is finished (done or failed) or unknown; the chain ends
    TO_ALERT = "to_alert"  # straight to the alert stage: its verdicts are stored (a repost took its original's)


class LoadedModels:
    """Targets and extractors loaded once per process and reused by every task
    it runs. Built lazily on first use, so a worker's models are loaded in the
    process that scores (after the fork), never in the parent. A target is
    reloaded when its saved (or published) version changes: ``catalog`` says
    where targets are (``workers.targets.published``)."""

    def __init__(self, settings: Settings, catalog: TargetCatalog | None = None) -> None:
        self.settings = settings
        self.catalog = catalog if catalog is not None else catalog_for(settings)
        self._targets: dict[str, Target] = {}
        self._extractors: dict[str, Extractor] = {}

    def meta(self, name: str) -> dict:
        """A target's saved metadata (cheap: no model is loaded)."""
        return self.catalog.meta(name)

    def targets(self, names: Iterable[str]) -> list[Target]:
        out = []
        for name in names:
            version = self.meta(name).get("version", "")
            cached = self._targets.get(name)
            if cached is None or cached.version != version:
                cached = self._targets[name] = self.catalog.load(name)
            out.append(cached)
        return out

    def extractors(self, keys: Iterable[str]) -> dict[str, Extractor]:
        for key in keys:
            if key not in self._extractors:
                self._extractors[key] = make_extractor(key, self.settings)
        return dict(self._extractors)

    def warm(self) -> list[str]:
        """Load every saved target and the extractors they need, and trace each
        extractor at every batch size it will see, so that a worker's first video
        is scored as fast as the rest. Returns the names warmed; a bundle that
        cannot be loaded is skipped here (its videos fail with the reason later)."""
        names = []
        for name in self.catalog.names():
            try:
                self.targets([name])
            except TrackerError as exc:
                log.warning("not warming target %s: %s", name, exc)
                continue
            names.append(name)
        loaded = [self._targets[n] for n in names]
        for extractor in self.extractors(needed_extractors(loaded)).values():
            extractor.warm(self.settings.batch_size)
        return names


@dataclass
class StageContext:
    """What every stage needs: settings, the media store, this process's models."""

    settings: Settings
    store: MediaStore
    models: LoadedModels = field(repr=False)
    # Queues a positive video's timeline follow-up (``complete_timeline``) at a lower priority;
    # None (stages run in one process, no broker): not queued, housekeeping drops its media later.
    complete_later: Callable[[int], None] | None = field(default=None, repr=False)
    # What the stages did, counted for ``tiktok-tracker metrics`` (in the broker's Redis; none without one).
    counters: Counters = field(default_factory=lambda: Counters(None), repr=False)

    @classmethod
    def from_settings(cls, settings: Settings) -> StageContext:
        store = store_from_settings(settings)
        return cls(settings, store, LoadedModels(settings, catalog_for(settings, store)), counters=counters_for(settings.broker_url))

    @property
    def db_url(self) -> str:
        return self.settings.resolved_database_url


def _begin(ctx: StageContext, video_id: int, stage: str) -> VideoState | None:
    """The video as ``stage`` starts on it, its status set to the stage's (``STAGES``) unless
    it is finished: the one read of the video a step needs. None when there is no such video."""
    with session_scope(ctx.db_url) as s:
        return videos.begin_stage(s, video_id, STAGE[stage].status)


def _media(video: Video | VideoState) -> str:
    """The video's name in the media store (its job id: see ``media_id``)."""
    return media_id(video.job_id, video.id)


def _video_key(video: VideoState) -> str:
    if not video.video_key:
        raise MediaMissing(f"{video.source}: the download stage has not stored this video")
    return video.video_key


# --- download -------------------------------------------------------------------


def fetch_url(ctx: StageContext, video: VideoState) -> tuple[str, VideoRef]:
    """Download the video (its listed reference, else ``video.source``) through yt-dlp into
    the store's download area, under a generated name; return its key and metadata.

    Raises ``DownloadError``/``UnsafeURL``/``BadVideo`` (final: the video fails
    with the reason) or ``TransientDownloadError`` (retried by the task).
    """
    listed = video.ref
    with ctx.store.download_area() as folder:
        if listed:
            fetched = fetch_ref(listed, folder, ctx.settings)
        else:
            fetched = fetch_video(video.source, folder, ctx.settings)
        key = video_key(_media(video), fetched.path.suffix)
        ctx.store.put_file(key, fetched.path, move=True)
    return key, fetched.ref


def fetch_local(ctx: StageContext, video: VideoState) -> str:
    """Copy a local file (seen from this worker's host) into the store; return its key."""
    path = Path(video.source)
    if not path.is_file():
        raise BadVideo(f"{video.source}: no such file on the worker that downloads it")
    key = video_key(_media(video), path.suffix)
    ctx.store.put_file(key, path)
    return key


def download(ctx: StageContext, video_id: int) -> Next:
    """Put the video into the media store (once), record its content hash and metadata.

    A video that another one already is (same platform id, or same bytes: a
    repost) is linked to it (``processing.identify_download``); when that one
    was scored for the same target versions, its verdicts are reused and the
    video goes straight to the alert stage; while it is still being scored,
    this one waits for it (``Postponed``) rather than being scored twice.
    A video past its ``expires_at`` (its watch's ``--expire-after``) fails as expired instead.
    """
    video = _begin(ctx, video_id, "download")
    if video is None or video.finished:
        return Next.STOP
    if not video.video_key and video.expires_at is not None and utcnow() > video.expires_at:
        raise TrackerError(f"expired: not started by {video.expires_at:%Y-%m-%d %H:%M} UTC (its watch's --expire-after)")
    key, ref = video.video_key, None
    if key and ctx.store.exists(key) and video.content_hash:  # run again (waiting for its original)
        return _act_on_link(ctx, video)
    if not key or not ctx.store.exists(key):
        if is_url(video.source):
            key, ref = fetch_url(ctx, video)
        else:
            key = fetch_local(ctx, video)
    with ctx.store.local_path(key) as path:
        digest = content_hash(path)
    with session_scope(ctx.db_url) as s:
        stored = s.get(Video, video_id)
        videos.set_video_key(stored, key)
        link = processing.identify_download(s, stored, digest, ref)
        video = videos.state_of(stored)
    return _act_on_link(ctx, video, link)


def _target_versions(ctx: StageContext, video: VideoState) -> dict[str, str]:
    """Name -> saved version of the video's targets (read from their bundles; no model loaded)."""
    return {name: ctx.models.meta(name).get("version", "") for name in _target_names(video)}


def _target_names(video: VideoState) -> list[str]:
    if not video.targets:
        raise TrackerError(f"{video.source}: no targets were named for this video")
    return list(video.targets)


# --- frames ---------------------------------------------------------------------


def extract_frames(ctx: StageContext, video_id: int) -> Next:
    """Sample frames (``frame_rate`` per second) into a frame batch in the store, streamed:
    one chunk of frames in memory at a time, whatever the video's length, with each frame's
    PDQ hashes taken on the way. A video that decodes to fewer frames than its container
    promises (truncated) is recorded as such, with a warning; its verdicts will say
    ``partial``. A video whose frames match an earlier video's is linked to it
    (``workers.reposts.linking``) and, when the match is strong, takes its verdicts
    (straight to the alert stage) or waits for them (``Postponed``: run again later)."""
    video = _begin(ctx, video_id, "frames")
    if video is None or video.finished:
        return Next.STOP
    media = _media(video)
    if ctx.store.exists(frames_key(media)) and video.frames_linked:  # run again while waiting for an original
        return _act_on_link(ctx, video)
    hashes: list = []
    # Each frame in the views the targets' kinds read (``workers.detect.views``), nothing more.
    views = list(by_view(_target_kinds(ctx, video)))
    with ctx.store.local_path(_video_key(video)) as path:
        try:
            with processing.sample(path, ctx.settings, hashes) as (reader, frames):
                with ctx.store.writer(frames_key(media)) as fh:
                    count = write_frame_stream(fh, frames, lambda: reader.info, views, extra=lambda: reader.decoding().to_json())
                info, decoding = reader.info, reader.decoding()
        except BadVideo as exc:
            # Name the video as the user gave it, not its place in the store.
            raise BadVideo(str(exc).replace(str(path), video.source)) from None
    warning = decoding.warning(video.source)
    if warning:
        log.warning("video %s: %s", video_id, warning)
    with session_scope(ctx.db_url) as s:
        stored = s.get(Video, video_id)
        link = processing.record_frames(s, stored, info, count, decoding, hashes, ctx.settings)
        videos.mark_frames_linked(stored)
    return _act_on_link(ctx, video, link)


def _act_on_link(ctx: StageContext, video: VideoState, link: linking.RepostLink | None = None) -> Next:
    """Reuse a strongly matching original's verdicts (straight to the alert stage), wait
    for them (``Postponed``: this stage runs again), or go on (``processing.repost_action``).
    ``link``: the one just recorded; None: a stage run again, the link recorded earlier
    (``linking.current_link``), with its original's status now."""
    video_id = video.id
    if link is not None and link.original_id is None:
        return Next.CONTINUE
    with session_scope(ctx.db_url) as s:
        stored = s.get(Video, video_id)
        if link is None:
            link = linking.current_link(s, stored)
        if link.original_id is None:
            return Next.CONTINUE
        action = processing.repost_action(s, stored, link, _target_versions(ctx, video), ctx.settings)
    if action == processing.WAIT:
        raise Postponed(f"video {video_id} waits for the verdicts of its original, video {link.original_id}", REPOST_POLL_SECONDS)
    if action == processing.REUSE:
        log.info("video %s reposts video %s (match %.2f): its verdicts are reused", video_id, link.original_id, link.match.strength)
        discard_media(ctx, _media(video), video.video_key)
        return Next.TO_ALERT
    if link.action(ctx.settings.repost_reuse_at) == linking.WAIT:
        log.info("video %s: its original %s is still not scored; scoring it itself", video_id, link.original_id)
    return Next.CONTINUE


def _target_kinds(ctx: StageContext, video: VideoState) -> list[str]:
    """The kinds of the video's targets, as saved in their bundles (no model loaded)."""
    return [ctx.models.meta(name).get("kind", "") for name in _target_names(video)]


# --- score ----------------------------------------------------------------------


def score(ctx: StageContext, video_id: int) -> Next:
    """Per-frame scores of every target of the video (backbone work shared)."""
    video = _begin(ctx, video_id, "score")
    if video is None or video.finished:
        return Next.STOP
    if ctx.store.exists(scores_key(_media(video))):
        return Next.CONTINUE  # scored by an earlier delivery of this message
    targets = ctx.models.targets(_target_names(video))
    extractors = ctx.models.extractors(needed_extractors(targets))
    with open_frames(ctx.store, frames_key(_media(video))) as batch:
        total = batch.count
        # Streamed: one chunk read, one frame decoded at a time; each target reads its kind's
        # view of the frames (a view the batch lacks fails the video with the reason).
        scores = processing.score(
            batch.frames,
            targets,
            extractors,
            ScoringOptions.from_settings(ctx.settings, all_frames=video.all_frames),  # enqueue --all-frames: no early verdict
            total,
            passes=passes_for(ctx.settings),  # forward passes shared with this process's other videos
        )
    ctx.store.put(scores_key(_media(video)), encode_scores(targets, scores, total))
    _count_scored(ctx, scores)
    return Next.CONTINUE


def _count_scored(
    ctx: StageContext, scores: Mapping[str, Sequence[FrameScore]], before: Mapping[str, Sequence[FrameScore]] | None = None
) -> None:
    """Frames each target's model scored (a reused score is not counted), beyond those ``before`` had."""
    for name, frames in scores.items():
        had = sum(1 for f in (before or {}).get(name, ()) if f.reused_from is None)
        ctx.counters.add(FRAMES_SCORED, {"target": name}, sum(1 for f in frames if f.reused_from is None) - had)


# --- verdict --------------------------------------------------------------------


def verdict(ctx: StageContext, video_id: int) -> Next:
    """Verdicts from the scores, evidence thumbnails, results rows; the video is done.

    Found done already (an earlier delivery committed, then its bookkeeping failed
    and the task was retried): straight to the alert stage, which is idempotent,
    so that no positive misses its alert."""
    video = _begin(ctx, video_id, "verdict")
    if video is None or video.finished:
        return Next.TO_ALERT if video is not None and video.status == VideoStatus.DONE else Next.STOP
    specs, scores, total = decode_scores(ctx.store.get(scores_key(_media(video))))
    outcomes = processing.decide(specs, scores, total)
    evidence = processing.keep_evidence(
        ctx.store, _media(video), outcomes, lambda wanted: _evidence_frames(ctx, video, wanted), ctx.settings.evidence_frames
    )
    with session_scope(ctx.db_url) as s:
        processing.record(s, s.get(Video, video_id), outcomes, evidence)
    if not _timeline_pending(ctx, outcomes):
        discard_media(ctx, _media(video), video.video_key)
    # else its frames, scores and file stay for ``complete_timeline``, which discards them
    return Next.CONTINUE


def _timeline_pending(ctx: StageContext, outcomes: Mapping[str, TargetOutcome]) -> bool:
    """Whether a positive early verdict left frames for a follow-up to score (``complete_positive_timelines``;
    only where one can be queued: not in stages run in one process)."""
    if ctx.complete_later is None or not ctx.settings.complete_positive_timelines:
        return False
    return bool(processing.incomplete_positives(outcomes.values()))


def _evidence_frames(ctx: StageContext, video: VideoState, wanted: list[int]) -> list[Frame]:
    """The evidence frames of the positive outcomes (``evidence_frame_indices``), decoded
    again from the video (cheaper than keeping every full frame for the few videos that are positive)."""
    if not wanted:
        return []
    with ctx.store.local_path(_video_key(video)) as path:
        return read_frames_at(path, wanted, ctx.settings.max_frame_side, ctx.settings.skip_loop_filter)


# --- alert ----------------------------------------------------------------------


def alert(ctx: StageContext, video_id: int) -> Next:
    """Alert on the video's new positive verdicts through every configured channel, one
    alert per (video, target) ever (see ``workers.pipeline.alerting``). A failing
    channel never fails the stage: the alert is recorded ``failed`` and retried later."""
    if not alerting.alert_video(ctx, video_id):
        return Next.STOP
    _queue_timeline(ctx, video_id)
    return Next.CONTINUE


def _queue_timeline(ctx: StageContext, video_id: int) -> None:
    """After the alert: queue the follow-up that completes the timeline when the verdict stage
    kept the video's scores for it (a positive early verdict; a repeat finds nothing to do)."""
    if ctx.complete_later is None or not ctx.settings.complete_positive_timelines:
        return
    with session_scope(ctx.db_url) as s:
        video = s.get(Video, video_id)
        media = _media(video) if video is not None and video.status == VideoStatus.DONE else None
    if media is not None and ctx.store.exists(scores_key(media)):
        ctx.complete_later(video_id)


# --- timeline (a follow-up, not a stage of the chain) ------------------------------------------


def complete_timeline(ctx: StageContext, video_id: int) -> Next:
    """Score the rest of a positive video's sampled frames (its early verdict scored a prefix)
    and write the complete timeline into the same detection rows (``storage.timelines``):
    every positive frame and timestamp, the best frame and evidence strip among all of them.
    Runs after the alert, at a lower priority than the stages. Then its media are dropped.

    Idempotent: a video not done (a rerun on its way), whose kept scores are gone (completed
    already, or never kept) or whose detections are complete is left alone; a target saved in
    another version since keeps the early timeline of the version that scored it."""
    with session_scope(ctx.db_url) as s:
        stored = s.get(Video, video_id)
        if stored is None or stored.status != VideoStatus.DONE:
            return Next.STOP
        video = videos.state_of(stored)
    media = _media(video)
    if not ctx.store.exists(scores_key(media)):
        return Next.STOP
    specs, scores, total = decode_scores(ctx.store.get(scores_key(media)))
    scored_as = {spec.name: spec.version for spec in specs}
    todo = processing.incomplete_positives(processing.decide(specs, scores, total).values())
    targets = [t for t in ctx.models.targets(todo) if t.version == scored_as[t.name]]
    if targets and ctx.store.exists(frames_key(media)):
        extractors = ctx.models.extractors(needed_extractors(targets))
        options = ScoringOptions.from_settings(ctx.settings)
        with open_frames(ctx.store, frames_key(media)) as batch:
            full = processing.complete_scores(batch.frames, targets, extractors, options, scores, total, passes=passes_for(ctx.settings))
        _count_scored(ctx, full, scores)
        outcomes = processing.decide([p for p in specs if p.name in full], full, total)
        evidence, frame_evidence = processing.keep_evidence(
            ctx.store, media, outcomes, lambda wanted: _evidence_frames(ctx, video, wanted), ctx.settings.evidence_frames
        )
        dropped: set[str] = set()  # evidence of the early strip's frames no longer in it
        with session_scope(ctx.db_url) as s:
            for name, outcome in outcomes.items():
                det = timelines.incomplete_detection(s, video_id, name, outcome.target.version, len(scores[name]))
                if det is not None:
                    dropped |= timelines.complete_detection(s, det, outcome, evidence.get(name), frame_evidence.get(name))
        for key in dropped:
            ctx.store.delete(key)
            ctx.store.delete(evidence_face_key(key))
        log.info("video %s: timeline complete for %s (%d frames)", video_id, ", ".join(sorted(full)), total)
    discard_media(ctx, media, video.video_key)
    return Next.CONTINUE


# --- bookkeeping shared by the task wrappers ------------------------------------------


def discard_media(ctx: StageContext, media: str, video_key: str | None) -> None:
    """Remove what the stages left in the store for the video named ``media`` (``media_id``;
    the video file, stored as ``video_key``, only when ``keep_videos`` is off); evidence stays."""
    ctx.store.delete(frames_key(media))
    ctx.store.delete(scores_key(media))
    if video_key and not ctx.settings.keep_videos:
        ctx.store.delete(video_key)


def fail(ctx: StageContext, video_id: int, reason: str) -> None:
    """Record a permanent failure (unless the video is already done) and drop its media."""
    with session_scope(ctx.db_url) as s:
        video = videos.mark_failed(s, video_id, reason)
    if video is not None:
        ctx.counters.add(VIDEOS_FINISHED, {"status": VideoStatus.FAILED})
        discard_media(ctx, _media(video), video.video_key)


def record_timing(
    ctx: StageContext, video_id: int, stage: str, worker: str, started: datetime, finished: datetime, ok: bool = True
) -> None:
    """The stage's row in ``stage_timings``, and its count and duration for the metrics (the last
    stage run through: the video is done)."""
    with session_scope(ctx.db_url) as s:
        if s.get(Video, video_id) is not None:
            results.record_timing(s, video_id, stage, worker, started, finished)
    ctx.counters.add(STAGE_RUNS, {"stage": stage, "outcome": "ok" if ok else "failed"})
    ctx.counters.observe(STAGE_SECONDS, {"stage": stage}, (finished - started).total_seconds())
    if ok and stage == STAGES[-1].name:
        ctx.counters.add(VIDEOS_FINISHED, {"status": VideoStatus.DONE})


def housekeeping(ctx: StageContext, stalled_after: timedelta = timedelta(hours=1)) -> dict:
    """Periodic (celery beat): drop media left behind by finished or vanished
    videos (a worker died between its commit and its clean-up), and report
    videos that have not moved for ``stalled_after``."""
    heads: set[str] = set()
    for prefix in ("frames", "scores", "videos"):
        heads.update(h for h in map(media_of_key, ctx.store.keys(prefix)) if h)
    jobs, ids = {h for h in heads if not h.isdigit()}, {int(h) for h in heads if h.isdigit()}
    with session_scope(ctx.db_url) as s:
        owners = {v.job_id: v for v in s.scalars(select(Video).where(Video.job_id.in_(jobs)))} if jobs else {}
        owners.update({str(v.id): v for v in s.scalars(select(Video).where(Video.id.in_(ids)))} if ids else {})
        owners = {head: v for head, v in owners.items() if _media(v) == head}  # an id-named head of a job: stale
        counts = results.status_counts(s)
        stalled = s.scalar(
            select(func.count()).select_from(Video).where(Video.status.notin_(FINISHED), Video.updated_at < utcnow() - stalled_after)
        )
    for head in sorted(heads):
        video = owners.get(head)
        if video is None:  # no such job in this database (deleted, or another database's): not needed
            for key in [frames_key(head), scores_key(head), *ctx.store.keys(f"videos/{head}")]:
                ctx.store.delete(key)
        elif video.status in FINISHED and not _timeline_waits(ctx, head, video, stalled_after):
            discard_media(ctx, head, video.video_key)
    ctx.store.drop_stale_downloads(older_than=2 * ctx.settings.max_download_seconds)
    report = {"statuses": counts, "stalled": stalled}
    if stalled:
        log.warning("%d video(s) have not moved for %s: see `tiktok-tracker status`", stalled, stalled_after)
    log.info("housekeeping: %s", report)
    return report


def _timeline_waits(ctx: StageContext, media: str, video: Video, stalled_after: timedelta) -> bool:
    """A done video's media kept for its timeline follow-up (``complete_timeline``), for at most
    ``stalled_after`` since it was done: a follow-up lost for longer leaves the early timeline."""
    if video.status != VideoStatus.DONE or not ctx.settings.complete_positive_timelines or not ctx.store.exists(scores_key(media)):
        return False
    return as_utc(video.updated_at) > utcnow() - stalled_after


# --- the stages -----------------------------------------------------------------------


@dataclass(frozen=True)
class Stage:
    """One stage of a video's chain. Its Celery task has its name (``tasks``) and is routed to
    its queue (``celery_app``); ``stage_timings`` rows are named after it."""

    name: str
    run: Callable[[StageContext, int], Next]
    queue: str  # IO, CPU or SCORE
    status: str | None  # the video's status from the stage's start; None: it keeps the one it has


STAGES: tuple[Stage, ...] = (
    Stage("download", download, IO, VideoStatus.DOWNLOADING),
    # Users read "extracting frames": the word every release has stored and shown for this stage.
    Stage("frames", extract_frames, CPU, VideoStatus.EXTRACTING),
    Stage("score", score, SCORE, VideoStatus.SCORING),
    # Still "scoring" while its verdicts are made: storing them makes the video "done".
    Stage("verdict", verdict, CPU, None),
    Stage("alert", alert, IO, None),  # runs on a done video
)
STAGE = {stage.name: stage for stage in STAGES}
# Where the reaper requeues a stalled video from, by its status: the stage that set that status
# (a video stalled in verdict shows "scoring": score, run again, finds its scores and goes on).
RESUME_AT = {VideoStatus.QUEUED: STAGES[0].name} | {stage.status: stage.name for stage in STAGES if stage.status}
# Every status in the order a video goes through them (``tiktok-tracker status``, the web app's pipeline page).
STATUSES = (VideoStatus.QUEUED, *(stage.status for stage in STAGES if stage.status), *FINISHED)
# Follow-ups: tasks outside the chain that a stage queues (``StageContext.complete_later``),
# routed to their queue like the stages (``celery_app.ROUTES``), never a video's status.
TIMELINE = Stage("timeline", complete_timeline, SCORE, None)  # queued by the alert stage
FOLLOW_UPS = (TIMELINE,)
# Their Celery priority on the Redis broker (0, the stages' tasks, is taken first ... 9 last):
# a score worker takes a follow-up only when no video waits to be scored.
FOLLOW_UP_PRIORITY = 9
