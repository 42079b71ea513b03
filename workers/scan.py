"""In-process scan: the whole flow for local files, no broker needed.

sample frames -> score all targets (shared backbone work) -> verdicts ->
evidence thumbnails -> results database. The distributed pipeline
(``workers.pipeline.stages``) runs the same pieces as separate stages:
``read_sampled``, ``results.record_sampling``, ``collect_scores`` and
``outcomes_for`` (together: ``score_frames``), ``save_evidence``,
``results.finish_video``; so both give the same scores and verdicts.
"""

from __future__ import annotations

import logging
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator, Sequence

from workers.detect.base import Extractor, Target
from workers.detect.registry import make_extractors
from workers.detect.scoring import TargetOutcome, check_targets, needed_extractors, score_frames, scoring_frames
from workers.errors import TrackerError
from workers.pipeline.evidence import save_evidence
from workers.media import store_from_settings
from workers.reposts import linking
from workers.reposts.hashing import FrameHash, hash_frames
from workers.settings import Settings
from workers.storage import results
from workers.storage.db import session_scope
from workers.storage.models import Detection, Video, VideoStatus
from workers.targets.bundle import load_target
from workers.video.sampling import Frame, SampledVideo, content_hash, read_sampled

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
        self.early_verdict = settings.early_verdict and not all_frames
        self.duplicate_tolerance = 0.0 if all_frames else settings.duplicate_tolerance
        self.db_url = settings.resolved_database_url
        self.store = store_from_settings(settings)

    @classmethod
    def for_names(cls, settings: Settings, names: Sequence[str], **kwargs) -> "Scanner":
        if not names:
            raise TrackerError("name at least one target (--target NAME); see `tiktok-tracker target list`")
        targets = [load_target(settings.models_dir, n) for n in dict.fromkeys(names)]
        return cls(settings, targets, **kwargs)

    def _failed(self, source: str, reason: str) -> list[ScanRow]:
        return [ScanRow(source, t.name, "failed", error=reason) for t in self.targets]

    def scan_file(
        self, path: Path, force: bool = False, on_frames: Callable[[int], None] | None = None, source: str | None = None
    ) -> list[ScanRow]:
        """Scan one file; never raises for bad input (the rows say ``failed``). ``source``: the
        name the video is known by (a rescan of a downloaded video keeps its URL); default the path."""
        return self._finish(self._prepare(path, force, source), on_frames)

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

    def _prepare(self, path: Path, force: bool, source: str | None = None) -> "_Prepared":
        """Hash the file, find stored verdicts, decode the sampled frames (never raises for bad input)."""
        source = source or str(path)
        try:
            digest = content_hash(path)
        except OSError as exc:
            return _Prepared(source, rows=self._failed(source, f"{path}: cannot read ({exc.strerror or exc})"))
        with session_scope(self.db_url) as s:
            video = results.get_or_create_video(s, source, digest)
            prepared = _Prepared(source, video_id=video.id)
            if not force:
                for t in self.targets:
                    det = results.find_detection(s, video.id, t.name, t.version)
                    if det is not None:
                        prepared.cached[t.name] = _cached_row(source, det)
            if len(prepared.cached) == len(self.targets):
                prepared.rows = [prepared.cached[t.name] for t in self.targets]
                return prepared
            prepared.todo = [t for t in self.targets if t.name not in prepared.cached]
            results.set_status(video, VideoStatus.EXTRACTING)
        try:
            prepared.sampled = read_sampled(path, self.settings.frame_rate, self.settings.max_frame_side)
            prepared.scoring = scoring_frames(prepared.sampled.frames, prepared.todo)  # here: overlaps scoring too
            if self.settings.repost_matching:
                prepared.hashes = hash_frames(prepared.sampled.frames)
        except TrackerError as exc:
            prepared.error = str(exc)
        return prepared

    def _finish(self, prepared: "_Prepared", on_frames: Callable[[int], None] | None = None) -> list[ScanRow]:
        """Score a prepared file and store its verdicts (never raises for bad input)."""
        if prepared.rows is not None:
            return prepared.rows
        source, video_id, todo, sampled = prepared.source, prepared.video_id, prepared.todo, prepared.sampled
        try:
            if prepared.error is not None:
                raise TrackerError(prepared.error)
            with session_scope(self.db_url) as s:
                video = s.get(Video, video_id)
                results.record_sampling(video, sampled.info, len(sampled.frames), sampled.decoding)
                partial = results.is_partial(video)
                reposted = self._reuse_original(s, video, prepared)
                if reposted is None:
                    results.set_status(video, VideoStatus.SCORING)
            if reposted is not None:
                return reposted
            outcomes = score_frames(
                prepared.scoring,
                todo,
                self.extractors,
                self.settings.batch_size,
                self.early_verdict,
                on_frames,
                self.duplicate_tolerance,
            )
        except TrackerError as exc:
            with session_scope(self.db_url) as s:
                results.set_status(s.get(Video, video_id), VideoStatus.FAILED, str(exc))
            return [prepared.cached.get(t.name) or ScanRow(source, t.name, "failed", error=str(exc)) for t in self.targets]
        warning = sampled.decoding.warning(source) if sampled.decoding else None
        if warning:
            log.warning("%s", warning)
        evidence, frame_evidence = save_evidence(
            self.store, video_id, outcomes.values(), sampled.frames, self.settings.evidence_frames
        )
        with session_scope(self.db_url) as s:
            results.finish_video(s, s.get(Video, video_id), outcomes.values(), evidence, frame_evidence)
        return [prepared.cached.get(t.name) or _row(source, outcomes[t.name], partial) for t in self.targets]

    def _reuse_original(self, session, video: Video, prepared: "_Prepared") -> list[ScanRow] | None:
        """Link a repost to its original by frame hashes (``workers.reposts.linking``); rows
        from the original's verdicts when the match is strong and they are all stored."""
        if not prepared.hashes:
            return None
        link = linking.link_repost(session, video, prepared.hashes, self.settings.repost_link_at)
        if link.action(self.settings.repost_reuse_at) != linking.REUSE:
            return None  # a scan scores in order: an original still in the pipeline is not waited for
        original = session.get(Video, link.original_id)
        if not results.reuse_verdicts(session, original, video, {t.name: t.version for t in prepared.todo}):
            return None
        rows = {d.target_name: _cached_row(prepared.source, d, original.source) for d in original.detections}
        return [prepared.cached.get(t.name) or rows[t.name] for t in self.targets]


@dataclass
class _Prepared:
    """A file between ``Scanner._prepare`` and ``Scanner._finish``."""

    source: str
    video_id: int | None = None
    rows: list[ScanRow] | None = None  # final already: every verdict cached, or unreadable
    cached: dict[str, ScanRow] = field(default_factory=dict)
    todo: list[Target] = field(default_factory=list)
    sampled: SampledVideo | None = None
    scoring: list[Frame] = field(default_factory=list)  # the sampled frames as the models read them
    error: str | None = None  # why the frames could not be read
    hashes: list[FrameHash] = field(default_factory=list)  # PDQ hashes of the sampled frames


def _cached_row(source: str, det: Detection, repost_of: str | None = None) -> ScanRow:
    """A row from a stored detection (same video content, or the original it reposts; same target version)."""
    return ScanRow(
        source, det.target_name, det.verdict, det.frames, det.scored_frames, det.positive_frames,
        list(det.positive_timestamps or []), det.best_score, cached=True, reused_frames=det.reused_frames or 0,
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
