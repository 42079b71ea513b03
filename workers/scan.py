"""In-process scan: the whole flow for local files, no broker needed.

The steps of ``workers.processing`` in a row, in one process: identify (by
source; a copy of a known video's bytes is a linked repost row, never that
video's row) -> sample frames (+ PDQ hashes, repost link) -> score all targets
(shared backbone work) -> verdicts -> evidence thumbnails -> results database.
The distributed pipeline (``workers.pipeline.stages``) runs the same steps as
separate stages, so both give the same scores and verdicts. This module adds
only the wiring: cached verdicts, output rows, decoding the next file while
this one is scored.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from workers import processing
from workers.detect.base import Extractor, Target
from workers.detect.registry import make_extractors
from workers.detect.scoring import TargetOutcome, check_targets, needed_extractors
from workers.errors import TrackerError
from workers.media import store_from_settings
from workers.processing import ScoringOptions
from workers.settings import Settings
from workers.storage import results
from workers.storage.db import session_scope
from workers.storage.models import Detection, Video, VideoStatus
from workers.targets.bundle import load_target
from workers.video.sampling import content_hash

log = logging.getLogger(__name__)


@dataclass
class ScanRow:
    """One (video, target) line of a scan's output."""

    video: str
    target: str
    verdict: str  # positive | negative | failed
    frames: int = 0
    scored_frames: int = 0
    positive_frames: int = 0
    positive_timestamps: list[float] = field(default_factory=list)
    best_score: float | None = None
    error: str | None = None
    cached: bool = False
    reused_frames: int = 0  # of the scored frames, those that reused a near-identical frame's scores
    partial: bool = False  # the file decoded to fewer frames than it promised (truncated): verdict on part of it
    repost_of: str | None = None  # the original whose verdicts this repost took (matched by frame hashes)

    def to_json(self) -> dict:
        return {
            "video": self.video,
            "target": self.target,
            "frames": self.frames,
            "scored_frames": self.scored_frames,
            "reused_frames": self.reused_frames,
            "positive_frames": self.positive_frames,
            "verdict": self.verdict,
            "positive_timestamps": self.positive_timestamps,
            "best_score": None if self.best_score is None else round(self.best_score, 4),
            "cached": self.cached,
            "error": self.error,
            "partial": self.partial,
            "repost_of": self.repost_of,
        }


class Scanner:
    """Scans local files for a fixed set of targets, reusing loaded models."""

    def __init__(
        self,
        settings: Settings,
        targets: Sequence[Target],
        extractors: dict[str, Extractor] | None = None,
        all_frames: bool = False,
        backbone_weights: str | None = None,
        backbone_preprocessing: str | None = None,
    ) -> None:
        self.settings = settings
        self.targets = list(targets)
        self.extractors = extractors or make_extractors(
            needed_extractors(self.targets),
            settings,
            weights=backbone_weights,
            preprocessing=backbone_preprocessing,
        )
        check_targets(self.targets, self.extractors)
        # --all-frames: every sampled frame goes through the models (no early verdict, no reuse).
        self.options = ScoringOptions.from_settings(settings, all_frames=all_frames)
        self.db_url = settings.resolved_database_url
        self.store = store_from_settings(settings)

    @classmethod
    def for_names(cls, settings: Settings, names: Sequence[str], **kwargs) -> Scanner:
        if not names:
            raise TrackerError("name at least one target (--target NAME); see `tiktok-tracker target list`")
        targets = [load_target(settings.models_dir, n) for n in dict.fromkeys(names)]
        return cls(settings, targets, **kwargs)

    def _failed(self, source: str, reason: str) -> list[ScanRow]:
        return [ScanRow(source, t.name, "failed", error=reason) for t in self.targets]

    def scan_file(
        self,
        path: Path,
        force: bool = False,
        on_frames: Callable[[int], None] | None = None,
        source: str | None = None,
        video_id: int | None = None,
    ) -> list[ScanRow]:
        """Scan one file; never raises for bad input (the rows say ``failed``). ``source``: the
        name the video is known by (default the path); ``video_id``: the known video this file
        is (a rescan of a downloaded video keeps its row and URL)."""
        return self._finish(self._prepare(path, force, source, video_id), on_frames)

    def scan_files(self, paths: Sequence[Path], force: bool = False) -> Iterator[tuple[Path, list[ScanRow]]]:
        """``scan_file`` over ``paths``, in order, the next file decoded (in a thread)
        while this one is scored: decoding and the forward passes overlap, as the
        pipeline's stages do. At most two videos' frames are held at once."""
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="scan-decode") as pool:
            ahead = pool.submit(self._prepare, paths[0], force) if paths else None
            for i, path in enumerate(paths):
                prepared = ahead.result()
                ahead = pool.submit(self._prepare, paths[i + 1], force) if i + 1 < len(paths) else None
                yield path, self._finish(prepared)

    def _prepare(self, path: Path, force: bool, source: str | None = None, video_id: int | None = None) -> _Prepared:
        """Identify the file, find stored verdicts, decode the sampled frames (never raises for bad input)."""
        source = source or str(path)
        try:
            digest = content_hash(path)
        except OSError as exc:
            return _Prepared(source, rows=self._failed(source, f"{path}: cannot read ({exc.strerror or exc})"))
        with session_scope(self.db_url) as s:
            video, same_content = processing.identify_file(s, source, digest, video_id)
            prepared = _Prepared(source, video_id=video.id, force=force)
            if not force and same_content:
                for t in self.targets:
                    det = results.find_detection(s, video.id, t.name, t.version)
                    if det is not None:
                        prepared.cached[t.name] = _cached_row(source, det)
            if len(prepared.cached) == len(self.targets):
                prepared.rows = [prepared.cached[t.name] for t in self.targets]
                return prepared
            prepared.todo = [t for t in self.targets if t.name not in prepared.cached]
            results.set_status(video, VideoStatus.EXTRACTING)
        try:  # here, in the decoding thread: overlaps the previous file's scoring
            prepared.frames = processing.sample_file(path, self.settings, prepared.todo, with_hashes=True)
        except TrackerError as exc:
            prepared.error = str(exc)
        return prepared

    def _finish(self, prepared: _Prepared, on_frames: Callable[[int], None] | None = None) -> list[ScanRow]:
        """Score a prepared file and store its verdicts (never raises for bad input)."""
        if prepared.rows is not None:
            return prepared.rows
        source, video_id, todo = prepared.source, prepared.video_id, prepared.todo
        try:
            if prepared.error is not None:
                raise TrackerError(prepared.error)
            sampled = prepared.frames.sampled
            with session_scope(self.db_url) as s:
                video = s.get(Video, video_id)
                partial, reposted = self._link(s, video, prepared)
                if reposted is None:
                    results.set_status(video, VideoStatus.SCORING)
            if reposted is not None:
                return reposted
            scores = processing.score(prepared.frames.frames_for, todo, self.extractors, self.options.reporting(on_frames))
            outcomes = processing.decide(todo, scores, len(sampled.frames))
            if self.settings.complete_positive_timelines:  # as the pipeline's follow-up does, at once
                outcomes.update(self._complete_timelines(prepared, todo, scores, outcomes))
        except TrackerError as exc:
            with session_scope(self.db_url) as s:
                results.set_status(s.get(Video, video_id), VideoStatus.FAILED, str(exc))
            return [prepared.cached.get(t.name) or ScanRow(source, t.name, "failed", error=str(exc)) for t in self.targets]
        warning = sampled.decoding.warning(source) if sampled.decoding else None
        if warning:
            log.warning("%s", warning)
        evidence = processing.keep_evidence(
            self.store, video_id, outcomes, processing.frames_from(sampled.frames), self.settings.evidence_frames
        )
        with session_scope(self.db_url) as s:
            processing.record(s, s.get(Video, video_id), outcomes, evidence)
        return [prepared.cached.get(t.name) or _row(source, outcomes[t.name], partial) for t in self.targets]

    def _complete_timelines(self, prepared: _Prepared, todo: Sequence[Target], scores, outcomes) -> dict[str, TargetOutcome]:
        """The positive early verdicts' outcomes on all their frames (``processing.timeline``)."""
        names = processing.incomplete_positives(outcomes.values())
        if not names:
            return {}
        targets = [t for t in todo if t.name in names]
        total = len(prepared.frames.sampled.frames)
        full = processing.complete_scores(prepared.frames.frames_for, targets, self.extractors, self.options, scores, total)
        return processing.decide(targets, full, total)

    def _link(self, session, video: Video, prepared: _Prepared) -> tuple[bool, list[ScanRow] | None]:
        """Record the sampling and the repost link (``processing.record_frames``); whether the
        video is partial, and its rows when it took its original's verdicts (a repost of a
        finished video: same bytes, or frames matching strongly) instead of being scored."""
        sampled, hashes = prepared.frames.sampled, prepared.frames.hashes
        link = processing.record_frames(session, video, sampled.info, len(sampled.frames), sampled.decoding, hashes, self.settings)
        partial = results.is_partial(video)
        same_bytes = processing.link_by_content(session, video)
        if same_bytes.original_id is not None:  # the strongest link there is
            link = same_bytes
        if prepared.force:
            return partial, None
        versions = {t.name: t.version for t in prepared.todo}
        if processing.repost_action(session, video, link, versions, self.settings, may_wait=False) != processing.REUSE:
            return partial, None
        original = session.get(Video, link.original_id)
        rows = {d.target_name: _cached_row(prepared.source, d, original.source) for d in original.detections}
        return partial, [prepared.cached.get(t.name) or rows[t.name] for t in self.targets]


@dataclass
class _Prepared:
    """A file between ``Scanner._prepare`` and ``Scanner._finish``."""

    source: str
    video_id: int | None = None
    force: bool = False  # score again: no cached verdicts, none taken from an original
    rows: list[ScanRow] | None = None  # final already: every verdict cached, or unreadable
    cached: dict[str, ScanRow] = field(default_factory=dict)
    todo: list[Target] = field(default_factory=list)
    frames: processing.SampledFile | None = None  # as sampled and as the models read them, with PDQ hashes
    error: str | None = None  # why the frames could not be read


def _cached_row(source: str, det: Detection, repost_of: str | None = None) -> ScanRow:
    """A row from a stored detection (same video content, or the original it reposts; same target version)."""
    return ScanRow(
        source,
        det.target_name,
        det.verdict,
        det.frames,
        det.scored_frames,
        det.positive_frames,
        list(det.positive_timestamps or []),
        det.best_score,
        cached=True,
        reused_frames=det.reused_frames or 0,
        partial=bool(det.partial),
        repost_of=repost_of,
    )


def _row(source: str, outcome: TargetOutcome, partial: bool = False) -> ScanRow:
    v = outcome.verdict
    return ScanRow(
        source,
        outcome.target.name,
        v.label,
        v.frames,
        v.scored_frames,
        v.positive_frames,
        v.positive_timestamps,
        v.best.score if v.best else None,
        reused_frames=v.reused_frames,
        partial=partial,
    )
