"""The pipeline's stages as plain functions (no Celery):

    download -> frames -> score -> verdict -> alert

Each takes a ``StageContext`` and a video id, reads its input from the
database and the media store, writes its output there, and returns whether the
video goes on to the next stage: ``False`` means the video is already finished
(``done`` or ``failed``), so a repeated or redelivered message changes nothing;
a stage name (``ALERT``) means "go straight there" (a repost whose verdicts
were reused from the original needs no frames, scores or verdicts).
Every stage can be re-run: outputs are replaced, never added to.

``workers.pipeline.tasks`` wraps these in Celery tasks; ``workers.scan`` runs
the same pieces in one process (``read_sampled``, ``record_sampling``,
``collect_scores``/``outcomes_for``, ``save_evidence``, ``finish_video``).
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Iterable

from sqlalchemy import func, select

from workers.detect.backbone import INPUT_SIZE
from workers.detect.base import Extractor, Target
from workers.detect.registry import make_extractor
from workers.detect.scoring import (
    backbone_frames_suffice,
    check_targets,
    collect_scores,
    needed_extractors,
    outcomes_for,
)
from workers.download import fetch_ref, fetch_video
from workers.errors import BadVideo, TrackerError
from workers.pipeline import alerting
from workers.pipeline.evidence import evidence_frame_indices, save_evidence
from workers.pipeline.media import (
    MediaMissing,
    MediaStore,
    decode_scores,
    encode_scores,
    frames_key,
    load_frames,
    scores_key,
    store_from_settings,
    video_key,
    write_frames,
)
from workers.settings import Settings
from workers.sources.base import VideoRef
from workers.storage import results
from workers.storage.db import session_scope
from workers.storage.models import Video, VideoStatus, utcnow
from workers.targets.bundle import list_targets, load_target, target_meta
from workers.video.sampling import Frame, content_hash, read_frames_at, read_sampled

log = logging.getLogger(__name__)

STAGES = ("download", "frames", "score", "verdict", "alert")
ALERT = "alert"
FINISHED = (VideoStatus.DONE, VideoStatus.FAILED)
_URL = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")


def is_url(source: str) -> bool:
    return bool(_URL.match(source))


class LoadedModels:
    """Targets and extractors loaded once per process and reused by every task
    it runs. Built lazily on first use, so a worker's models are loaded in the
    process that scores (after the fork), never in the parent. A target is
    reloaded when its saved version changes."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._targets: dict[str, Target] = {}
        self._extractors: dict[str, Extractor] = {}

    def targets(self, names: Iterable[str]) -> list[Target]:
        out = []
        for name in names:
            version = target_meta(self.settings.models_dir, name).get("version", "")
            cached = self._targets.get(name)
            if cached is None or cached.version != version:
                cached = self._targets[name] = load_target(self.settings.models_dir, name)
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
        for name in list_targets(self.settings.models_dir):
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

    @classmethod
    def from_settings(cls, settings: Settings) -> "StageContext":
        return cls(settings, store_from_settings(settings), LoadedModels(settings))

    @property
    def db_url(self) -> str:
        return self.settings.resolved_database_url


def _begin(ctx: StageContext, video_id: int, status: str | None) -> Video | None:
    """The video (detached), its status set to ``status``; None when finished or unknown."""
    with session_scope(ctx.db_url) as s:
        video = s.get(Video, video_id)
        if video is None or video.status in FINISHED:
            return None
        if status is not None:
            results.set_status(s, video, status)
        return video


def _video_key(video: Video) -> str:
    key = (video.meta or {}).get("video_key")
    if not key:
        raise MediaMissing(f"{video.source}: the download stage has not stored this video")
    return key


# --- download -------------------------------------------------------------------


def fetch_url(ctx: StageContext, video: Video) -> tuple[str, VideoRef]:
    """Download the video (its listed reference, else ``video.source``) through yt-dlp into
    the store's download area, under a generated name; return its key and metadata.

    Raises ``DownloadError``/``UnsafeURL``/``BadVideo`` (final: the video fails
    with the reason) or ``TransientDownloadError`` (retried by the task).
    """
    listed = (video.meta or {}).get("ref")
    with ctx.store.download_area() as folder:
        if listed:
            fetched = fetch_ref(VideoRef.from_json(listed), folder, ctx.settings)
        else:
            fetched = fetch_video(video.source, folder, ctx.settings)
        key = video_key(video.id, fetched.path.suffix)
        ctx.store.put_file(key, fetched.path, move=True)
    return key, fetched.ref


def fetch_local(ctx: StageContext, video: Video) -> str:
    """Copy a local file (seen from this worker's host) into the store; return its key."""
    path = Path(video.source)
    if not path.is_file():
        raise BadVideo(f"{video.source}: no such file on the worker that downloads it")
    key = video_key(video.id, path.suffix)
    ctx.store.put_file(key, path)
    return key


def download(ctx: StageContext, video_id: int) -> bool | str:
    """Put the video into the media store (once), record its content hash and metadata.

    A video that another one already is (same platform id, or same content: a
    repost) is linked to it (``duplicate_of``); when that one was scored for
    the same target versions, its verdicts are reused and the video goes
    straight to the alert stage.
    """
    video = _begin(ctx, video_id, VideoStatus.DOWNLOADING)
    if video is None:
        return False
    key = (video.meta or {}).get("video_key")
    ref = None
    if not key or not ctx.store.exists(key):
        if is_url(video.source):
            key, ref = fetch_url(ctx, video)
        else:
            key = fetch_local(ctx, video)
    with ctx.store.local_path(key) as path:
        digest = content_hash(path)
    with session_scope(ctx.db_url) as s:
        stored = s.get(Video, video_id)
        stored.content_hash = digest
        stored.meta = {**(stored.meta or {}), "video_key": key}
        same = None
        if ref is not None:
            results.apply_metadata(stored, ref)
            same = results.claim_platform_id(s, stored, ref)
        original = results.original_of(s, stored, same)
        reused = False
        if original is not None:
            stored.duplicate_of = original.id
            reused = results.reuse_verdicts(s, original, stored, _target_versions(ctx, video))
        meta = stored.meta
    if reused:
        log.info("video %s is a repost of video %s: its verdicts are reused", video_id, stored.duplicate_of)
        discard_media(ctx, video_id, meta)
        return ALERT
    return True


def _target_versions(ctx: StageContext, video: Video) -> dict[str, str]:
    """Name -> saved version of the video's targets (read from their bundles; no model loaded)."""
    return {name: target_meta(ctx.settings.models_dir, name).get("version", "") for name in _target_names(video)}


def _target_names(video: Video) -> list[str]:
    names = (video.meta or {}).get("targets", [])
    if not names:
        raise TrackerError(f"{video.source}: no targets were named for this video")
    return names


# --- frames ---------------------------------------------------------------------


def extract_frames(ctx: StageContext, video_id: int) -> bool:
    """Sample frames (``frame_rate`` per second) into a frame batch in the store."""
    video = _begin(ctx, video_id, VideoStatus.EXTRACTING)
    if video is None:
        return False
    with ctx.store.local_path(_video_key(video)) as path:
        try:
            sampled = read_sampled(path, ctx.settings.frame_rate, ctx.settings.max_frame_side)
        except BadVideo as exc:
            # Name the video as the user gave it, not its place in the store.
            raise BadVideo(str(exc).replace(str(path), video.source)) from None
    with ctx.store.writer(frames_key(video_id)) as fh:
        write_frames(fh, sampled, backbone_size=INPUT_SIZE, full_frames=_needs_full_frames(ctx, video))
    with session_scope(ctx.db_url) as s:
        results.record_sampling(s.get(Video, video_id), sampled.info, len(sampled.frames))
    return True


def _needs_full_frames(ctx: StageContext, video: Video) -> bool:
    """Classifier targets read only the backbone-sized frames (the verdict stage
    decodes the few evidence frames again); face targets detect on the frames as sampled."""
    kinds = {target_meta(ctx.settings.models_dir, name).get("kind") for name in _target_names(video)}
    return kinds != {"classifier"}


# --- score ----------------------------------------------------------------------


def score(ctx: StageContext, video_id: int) -> bool:
    """Per-frame scores of every target of the video (backbone work shared)."""
    video = _begin(ctx, video_id, VideoStatus.SCORING)
    if video is None:
        return False
    if ctx.store.exists(scores_key(video_id)):
        return True  # scored by an earlier delivery of this message
    targets = ctx.models.targets(_target_names(video))
    extractors = ctx.models.extractors(needed_extractors(targets))
    check_targets(targets, extractors)
    # Targets that need only VGG16 features read the small, already resized frames.
    frames = load_frames(ctx.store, frames_key(video_id), backbone_frames_suffice(targets)).frames
    scores = collect_scores(
        frames,
        targets,
        extractors,
        ctx.settings.batch_size,
        ctx.settings.early_verdict,
        duplicate_tolerance=ctx.settings.duplicate_tolerance,
    )
    ctx.store.put(scores_key(video_id), encode_scores(targets, scores, len(frames)))
    return True


# --- verdict --------------------------------------------------------------------


def verdict(ctx: StageContext, video_id: int) -> bool:
    """Verdicts from the scores, evidence thumbnails, results rows; the video is done."""
    video = _begin(ctx, video_id, None)
    if video is None:
        return False
    specs, scores, total = decode_scores(ctx.store.get(scores_key(video_id)))
    outcomes = outcomes_for(specs, scores, total)
    per_detection = ctx.settings.evidence_frames
    frames = _evidence_frames(ctx, video, evidence_frame_indices(outcomes.values(), per_detection))
    evidence, frame_evidence = save_evidence(ctx.store, video_id, outcomes.values(), frames, per_detection)
    with session_scope(ctx.db_url) as s:
        results.finish_video(s, s.get(Video, video_id), outcomes.values(), evidence, frame_evidence)
    discard_media(ctx, video_id, video.meta)
    return True


def _evidence_frames(ctx: StageContext, video: Video, wanted: list[int]) -> list[Frame]:
    """The evidence frames of the positive outcomes (``evidence_frame_indices``), decoded
    again from the video (cheaper than keeping every full frame for the few videos that are positive)."""
    if not wanted:
        return []
    with ctx.store.local_path(_video_key(video)) as path:
        return read_frames_at(path, wanted, ctx.settings.max_frame_side)


# --- alert ----------------------------------------------------------------------


def alert(ctx: StageContext, video_id: int) -> bool:
    """Alert on the video's new positive verdicts through every configured channel, one
    alert per (video, target) ever (see ``workers.pipeline.alerting``). A failing
    channel never fails the stage: the alert is recorded ``failed`` and retried later."""
    return alerting.alert_video(ctx, video_id)


# --- bookkeeping shared by the task wrappers ------------------------------------------


def discard_media(ctx: StageContext, video_id: int, meta: dict | None) -> None:
    """Remove what the stages left in the store for the video (the video file
    itself only when ``keep_videos`` is off); evidence stays."""
    ctx.store.delete(frames_key(video_id))
    ctx.store.delete(scores_key(video_id))
    key = (meta or {}).get("video_key")
    if key and not ctx.settings.keep_videos:
        ctx.store.delete(key)


def fail(ctx: StageContext, video_id: int, reason: str) -> None:
    """Record a permanent failure (unless the video is already done) and drop its media."""
    with session_scope(ctx.db_url) as s:
        video = s.get(Video, video_id)
        if video is None or video.status == VideoStatus.DONE:
            return
        results.set_status(s, video, VideoStatus.FAILED, reason)
        meta = video.meta
    discard_media(ctx, video_id, meta)


def record_timing(ctx: StageContext, video_id: int, stage: str, worker: str, started: datetime, finished: datetime) -> None:
    with session_scope(ctx.db_url) as s:
        if s.get(Video, video_id) is not None:
            results.record_timing(s, video_id, stage, worker, started, finished)


def housekeeping(ctx: StageContext, stalled_after: timedelta = timedelta(hours=1)) -> dict:
    """Periodic (celery beat): drop media left behind by finished or vanished
    videos (a worker died between its commit and its clean-up), and report
    videos that have not moved for ``stalled_after``."""
    ids: set[int] = set()
    for prefix in ("frames", "scores", "videos"):
        for key in ctx.store.keys(prefix):
            head = key.split("/")[1].split(".")[0]
            if head.isdigit():
                ids.add(int(head))
    with session_scope(ctx.db_url) as s:
        videos = {v.id: v for v in s.scalars(select(Video).where(Video.id.in_(ids)))} if ids else {}
        counts = results.status_counts(s)
        stalled = s.scalar(
            select(func.count()).select_from(Video).where(
                Video.status.notin_(FINISHED), Video.updated_at < utcnow() - stalled_after
            )
        )
    for video_id in sorted(ids):
        video = videos.get(video_id)
        if video is None:  # deleted from the database: nothing of it is needed
            for key in [frames_key(video_id), scores_key(video_id), *ctx.store.keys(f"videos/{video_id}")]:
                ctx.store.delete(key)
        elif video.status in FINISHED:
            discard_media(ctx, video_id, video.meta)
    ctx.store.drop_stale_downloads(older_than=2 * ctx.settings.max_download_seconds)
    report = {"statuses": counts, "stalled": stalled}
    if stalled:
        log.warning("%d video(s) have not moved for %s: see `tiktok-tracker status`", stalled, stalled_after)
    log.info("housekeeping: %s", report)
    return report
