"""Score frames for several targets at once, sharing the per-frame work.

Each batch of frames goes once through every extractor that a still-undecided
target needs (one VGG16 pass serves all classifier targets, one face pass all
face targets). With ``early_verdict``, a target stops being scored once no
remaining frame can change its verdict, and the video stops once all are
decided. With a ``duplicate_tolerance``, a frame nearly identical to the last
frame that went through the models (mean absolute difference of their 32x32
grey thumbnails at most the tolerance, on the 0-255 scale) takes that frame's
scores instead (``FrameScore.reused_from``). Pure logic: no Celery, no database.

A video is scored in chunks of ``batch_size`` frames that need the models, or
fewer where fewer could decide it (``VideoScoring.chunk_size``); one forward
pass may carry the next chunk of several videos (``score_pass``,
``collect_scores_of``; the score worker's ``workers.detect.shared_passes``), and
each video is still scored exactly as alone: ``collect_scores`` is the same
code with one video.

``collect_scores`` (the model work) and ``outcomes_for`` (the verdicts) are
separate steps so that the pipeline can run them as separate stages;
``score_frames`` is both.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, replace
from typing import Any

import cv2
import numpy as np

from workers.detect.backbone import resize_frame
from workers.detect.base import Extractor, Target
from workers.verdict import FrameScore, Verdict, VerdictRule, frames_to_decide, verdict_for
from workers.video.sampling import Frame


@dataclass(frozen=True)
class TargetSpec:
    """What a verdict and its stored row need to know about a target: no model.

    The pipeline's score stage records the spec of each target it scored, so the
    verdict stage (on another worker, maybe after the bundle changed) applies
    exactly the threshold and rule the scores were made for.
    """

    name: str
    kind: str
    version: str
    threshold: float
    rule: VerdictRule

    @classmethod
    def of(cls, target: Target) -> TargetSpec:
        return cls(target.name, target.kind, target.version, target.threshold, target.rule)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)  # the rule too, as VerdictRule.to_dict does

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TargetSpec:
        return cls(data["name"], data["kind"], data["version"], float(data["threshold"]), VerdictRule.from_dict(data["rule"]))


@dataclass
class TargetOutcome:
    target: Target | TargetSpec  # anything with name, kind, version, threshold, rule
    scores: list[FrameScore]
    verdict: Verdict


def needed_extractors(targets: Sequence[Target]) -> set[str]:
    return {t.extractor_key for t in targets}


def check_targets(targets: Sequence[Target], extractors: Mapping[str, Extractor]) -> None:
    """Raise ``BackboneMismatch`` before any work if a target cannot use its extractor."""
    for t in targets:
        t.check_extractor(extractors[t.extractor_key])


def _positives(scores: list[FrameScore], threshold: float) -> int:
    return sum(s.score >= threshold for s in scores)


def frame_signature(image: np.ndarray) -> np.ndarray:
    """32x32 grey thumbnail of the frame's 224x224 copy (any view's frame: RGB or grey): the
    same for a frame as sampled and for its VGG16 view (``resize_frame`` is exact)."""
    small = resize_frame(image)
    grey = small if small.ndim == 2 else cv2.cvtColor(small, cv2.COLOR_RGB2GRAY)
    return cv2.resize(grey, (32, 32), interpolation=cv2.INTER_AREA).astype(np.float32)


class _Duplicates:
    """Which frames are near-identical to the last frame that was scored itself."""

    def __init__(self, tolerance: float) -> None:
        self.tolerance = tolerance
        self._reference: tuple[int, np.ndarray] | None = None  # (position, signature)

    def source_of(self, position: int, frame: Frame) -> int | None:
        """Position of the frame whose scores ``frame`` reuses, or None (it must be scored)."""
        if self.tolerance <= 0:
            return None
        signature = frame_signature(frame.image)
        if self._reference is not None:
            ref, ref_signature = self._reference
            if float(np.abs(signature - ref_signature).mean()) <= self.tolerance:
                return ref
        self._reference = (position, signature)
        return None


@dataclass
class _Chunk:
    """One video's share of a forward pass: the frames read since its last chunk."""

    start: int  # position of window[0] in the video's sampled frames
    window: list[Frame]  # every frame read, the near-duplicates too
    fresh: list[int]  # positions of the frames that go through the models
    sources: dict[int, int]  # position of a near-duplicate -> position of the frame it reuses

    def images(self) -> list[np.ndarray]:
        return [self.window[p - self.start].image for p in self.fresh]


class VideoScoring:
    """The scoring of one video (all its sampled frames), one chunk of at most
    ``batch_size`` frames that need the models at a time, so that it can share
    forward passes with other videos (``score_pass``) and still score exactly as
    alone: the same chunks, the same early verdict after each, the same reuse.

    ``frames`` may be an iterator (a frame batch read chunk by chunk): it is read one
    chunk at a time, never held whole; then ``total`` says how many frames it has
    (the early verdict needs it)."""

    def __init__(
        self,
        frames: Iterable[Frame],
        targets: Sequence[Target],
        batch_size: int = 16,
        early_verdict: bool = True,
        on_batch: Callable[[int], None] | None = None,
        duplicate_tolerance: float = 0.0,
        total: int | None = None,
    ) -> None:
        if total is None:
            frames = frames if isinstance(frames, Sequence) else list(frames)
            total = len(frames)
        self.total = total
        self.batch_size = batch_size
        self.early_verdict = early_verdict
        self.on_batch = on_batch
        self.scores: dict[str, list[FrameScore]] = {t.name: [] for t in targets}
        self.pending = list(targets)  # targets whose verdict is still open
        self.position = 0
        self._stream = iter(frames)
        self._duplicates = _Duplicates(duplicate_tolerance)
        if on_batch and not self.pending and total:
            on_batch(total)  # no target: every frame skipped

    @property
    def finished(self) -> bool:
        return self.position >= self.total or not self.pending

    def needs(self) -> set[str]:
        """The extractors this video's next chunk goes through."""
        return needed_extractors(self.pending)

    def chunk_size(self) -> int:
        """Frames the next chunk sends through the models: ``batch_size``, or with the early
        verdict fewer where fewer could decide every pending target (a video whose first 6
        frames could make it positive is looked at after 6, not 16)."""
        if not self.early_verdict:
            return self.batch_size
        return max(1, min(self.batch_size, max(map(self._frames_to_decide, self.pending), default=0)))

    def _frames_to_decide(self, target: Target) -> int:
        """``frames_to_decide`` for ``target`` on its scores so far (0: its verdict is decided)."""
        scores = self.scores[target.name]
        return frames_to_decide(target.rule, self.total, len(scores), _positives(scores, target.threshold))

    def next_chunk(self) -> _Chunk:
        """Read frames up to ``chunk_size()`` of them that need scoring (near-duplicates ride along)."""
        chunk = _Chunk(self.position, [], [], {})
        size = self.chunk_size()
        while self.position < self.total and len(chunk.fresh) < size:
            frame = next(self._stream, None)
            if frame is None:  # fewer frames than announced
                self.total = self.position
                break
            chunk.window.append(frame)
            source = self._duplicates.source_of(self.position, frame)
            if source is None:
                chunk.fresh.append(self.position)
            else:
                chunk.sources[self.position] = source
            self.position += 1
        return chunk

    def add(self, chunk: _Chunk, outputs: Mapping[str, object]) -> None:
        """Take the extractors' ``outputs`` for the chunk's fresh frames (one entry per
        frame, by extractor key); then decide what the early verdict allows to stop."""
        batch = [chunk.window[p - chunk.start] for p in chunk.fresh]
        for t in self.pending:
            own = t.score(outputs[t.extractor_key], [f.index for f in batch], [f.timestamp for f in batch]) if batch else []
            scored = dict(zip(chunk.fresh, own, strict=True))
            out = self.scores[t.name]
            for p in range(chunk.start, chunk.start + len(chunk.window)):
                if p in scored:
                    out.append(scored[p])
                else:
                    copied, frame = out[chunk.sources[p]], chunk.window[p - chunk.start]
                    out.append(replace(copied, index=frame.index, timestamp=frame.timestamp, reused_from=copied.index))
        if self.on_batch:
            self.on_batch(len(chunk.window))
        if self.early_verdict:
            self.pending = [t for t in self.pending if self._frames_to_decide(t)]
        if self.finished and self.on_batch and self.position < self.total:
            self.on_batch(self.total - self.position)  # frames skipped by the early verdict


def score_pass(videos: Sequence[VideoScoring], extractors: Mapping[str, Extractor]) -> int:
    """One forward pass per extractor over the next chunk of each unfinished video
    (``score_chunks``). Returns the number of frames in the largest pass."""
    return score_chunks([(v, v.next_chunk()) for v in videos if not v.finished], extractors)


def score_chunks(chunks: Sequence[tuple[VideoScoring, _Chunk]], extractors: Mapping[str, Extractor]) -> int:
    """Put the chunks of several videos through each extractor in one forward pass and
    hand each video its share. A video's frames are scored exactly as if it were alone
    (a frame's features do not depend on the other frames of its pass;
    ``tests/test_score_batches.py`` checks that on the real VGG16)."""
    outputs: list[dict[str, object]] = [{} for _ in chunks]
    largest = 0
    for key in sorted(set().union(*(v.needs() for v, _ in chunks))):
        members = [i for i, (v, c) in enumerate(chunks) if key in v.needs() and c.fresh]
        if not members:
            continue
        images = [image for i in members for image in chunks[i][1].images()]
        extracted = extractors[key].extract(images)
        largest = max(largest, len(images))
        offset = 0
        for i in members:
            n = len(chunks[i][1].fresh)
            outputs[i][key] = extracted[offset : offset + n]
            offset += n
    for (video, chunk), out in zip(chunks, outputs, strict=True):
        video.add(chunk, out)
    return largest


def collect_scores_of(
    videos: Sequence[VideoScoring], extractors: Mapping[str, Extractor], videos_per_pass: int = 1
) -> list[dict[str, list[FrameScore]]]:
    """Score several videos together, each forward pass taking the next chunk of up to
    ``videos_per_pass`` unfinished videos (in order: a video that finishes makes room
    for the next). Each video's scores as ``collect_scores`` gives them alone."""
    waiting, active = list(videos), list[VideoScoring]()
    while waiting or active:
        active = [v for v in active if not v.finished]
        while waiting and len(active) < videos_per_pass:
            active.append(waiting.pop(0))
        if active:
            score_pass(active, extractors)
        active = [v for v in active if not v.finished]
    return [v.scores for v in videos]


def collect_scores(
    frames: Iterable[Frame],
    targets: Sequence[Target],
    extractors: Mapping[str, Extractor],
    batch_size: int = 16,
    early_verdict: bool = True,
    on_batch: Callable[[int], None] | None = None,
    duplicate_tolerance: float = 0.0,
    total: int | None = None,
) -> dict[str, list[FrameScore]]:
    """Per-frame scores of ``frames`` (all sampled frames of one video) for every target:
    ``collect_scores_of`` with one video (see ``VideoScoring`` for the arguments).

    With ``early_verdict`` a target's list stops where its verdict was decided. Each
    forward pass takes ``batch_size`` frames that need scoring; the near-duplicates
    among them (see the module docstring) ride along for free.
    """
    video = VideoScoring(frames, targets, batch_size, early_verdict, on_batch, duplicate_tolerance, total)
    return collect_scores_of([video], extractors)[0]


def outcomes_for(
    targets: Sequence[Target | TargetSpec], scores: Mapping[str, Sequence[FrameScore]], total_frames: int
) -> dict[str, TargetOutcome]:
    """Each target's verdict on its frame ``scores`` in a video of ``total_frames`` sampled frames."""
    return {t.name: TargetOutcome(t, list(scores[t.name]), verdict_for(scores[t.name], t.threshold, t.rule, total_frames)) for t in targets}


def score_frames(
    frames: Sequence[Frame], targets: Sequence[Target], extractors: Mapping[str, Extractor], *args: Any, **kwargs: Any
) -> dict[str, TargetOutcome]:
    """Scores and verdicts: ``collect_scores`` (same arguments) then ``outcomes_for``."""
    return outcomes_for(targets, collect_scores(frames, targets, extractors, *args, **kwargs), len(frames))
