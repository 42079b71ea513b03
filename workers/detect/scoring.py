"""Score frames for several targets at once, sharing the per-frame work.

Each batch of frames goes once through every extractor that a still-undecided
target needs (one VGG16 pass serves all classifier targets, one face pass all
face targets). With ``early_verdict``, a target stops being scored once no
remaining frame can change its verdict, and the video stops once all are
decided. With a ``duplicate_tolerance``, a frame nearly identical to the last
frame that went through the models (mean absolute difference of their 32x32
grey thumbnails at most the tolerance, on the 0-255 scale) takes that frame's
scores instead (``FrameScore.reused_from``). Pure logic: no Celery, no database.

``collect_scores`` (the model work) and ``outcomes_for`` (the verdicts) are
separate steps so that the pipeline can run them as separate stages;
``score_frames`` is both.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from typing import Callable, Iterable, Mapping, Sequence

import cv2
import numpy as np

from workers.detect.backbone import resize_frame
from workers.detect.base import Extractor, Target
from workers.verdict import FrameScore, Verdict, VerdictRule, is_decided, verdict_for
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
    def of(cls, target: Target) -> "TargetSpec":
        return cls(target.name, target.kind, target.version, target.threshold, target.rule)

    def to_dict(self) -> dict:
        return asdict(self)  # the rule too, as VerdictRule.to_dict does

    @classmethod
    def from_dict(cls, data: dict) -> "TargetSpec":
        return cls(data["name"], data["kind"], data["version"], float(data["threshold"]), VerdictRule.from_dict(data["rule"]))


@dataclass
class TargetOutcome:
    target: Target | TargetSpec  # anything with name, kind, version, threshold, rule
    scores: list[FrameScore]
    verdict: Verdict


def needed_extractors(targets: Sequence[Target]) -> set[str]:
    return {t.extractor_key for t in targets}


BACKBONE_ONLY_KINDS = frozenset({"classifier"})  # kinds whose targets read only VGG16 features


def backbone_frames_suffice(targets: Iterable[Target | TargetSpec | str]) -> bool:
    """True when every target (or target kind, as saved in its bundle: no model needed)
    reads only VGG16 features, i.e. backbone-sized frames suffice: the one place this is
    decided (the pipeline's frame stage stores them alone, its score stage and scan read them)."""
    kinds = {t if isinstance(t, str) else t.kind for t in targets}
    return bool(kinds) and kinds <= BACKBONE_ONLY_KINDS


def check_targets(targets: Sequence[Target], extractors: Mapping[str, Extractor]) -> None:
    """Raise ``BackboneMismatch`` before any work if a target cannot use its extractor."""
    for t in targets:
        t.check_extractor(extractors[t.extractor_key])


def _positives(scores: list[FrameScore], threshold: float) -> int:
    return sum(s.score >= threshold for s in scores)


def frame_signature(image: np.ndarray) -> np.ndarray:
    """32x32 grey thumbnail of the frame's backbone-sized copy: the same for a
    full frame and for the 224x224 copy the pipeline stores (``resize_frame`` is exact)."""
    grey = cv2.cvtColor(resize_frame(image), cv2.COLOR_RGB2GRAY)
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
    """Per-frame scores of ``frames`` (all sampled frames of one video) for every target.

    ``frames`` may be an iterator (a frame batch read chunk by chunk): it is read one
    batch at a time, never held whole; then ``total`` says how many frames it has
    (the early verdict needs it). With ``early_verdict`` a target's list stops where
    its verdict was decided. Each forward pass takes ``batch_size`` frames that need
    scoring; the near-duplicates among them (see the module docstring) ride along for free.
    """
    if total is None:
        frames = frames if isinstance(frames, Sequence) else list(frames)
        total = len(frames)
    stream = iter(frames)
    scores: dict[str, list[FrameScore]] = {t.name: [] for t in targets}
    pending = list(targets)
    duplicates = _Duplicates(duplicate_tolerance)
    position = 0
    while position < total and pending:
        start, window, fresh, sources = position, [], [], {}
        while position < total and len(fresh) < batch_size:
            frame = next(stream, None)
            if frame is None:  # fewer frames than announced
                total = position
                break
            window.append(frame)
            source = duplicates.source_of(position, frame)
            if source is None:
                fresh.append(position)
            else:
                sources[position] = source
            position += 1
        batch = [window[p - start] for p in fresh]
        outputs = (
            {key: extractors[key].extract([f.image for f in batch]) for key in needed_extractors(pending)}
            if batch
            else {}
        )
        for t in pending:
            own = t.score(outputs[t.extractor_key], [f.index for f in batch], [f.timestamp for f in batch]) if batch else []
            scored = dict(zip(fresh, own))
            out = scores[t.name]
            for p in range(start, position):
                if p in scored:
                    out.append(scored[p])
                else:
                    copied, frame = out[sources[p]], window[p - start]
                    out.append(replace(copied, index=frame.index, timestamp=frame.timestamp, reused_from=copied.index))
        if on_batch:
            on_batch(position - start)
        if early_verdict:
            pending = [
                t
                for t in pending
                if not is_decided(t.rule, total, len(scores[t.name]), _positives(scores[t.name], t.threshold))
            ]
    if on_batch and position < total:
        on_batch(total - position)  # frames skipped by the early verdict
    return scores


def outcomes_for(
    targets: Sequence[Target | TargetSpec], scores: Mapping[str, Sequence[FrameScore]], total_frames: int
) -> dict[str, TargetOutcome]:
    """Each target's verdict on its frame ``scores`` in a video of ``total_frames`` sampled frames."""
    return {
        t.name: TargetOutcome(t, list(scores[t.name]), verdict_for(scores[t.name], t.threshold, t.rule, total_frames))
        for t in targets
    }


def score_frames(
    frames: Sequence[Frame], targets: Sequence[Target], extractors: Mapping[str, Extractor], *args, **kwargs
) -> dict[str, TargetOutcome]:
    """Scores and verdicts: ``collect_scores`` (same arguments) then ``outcomes_for``."""
    return outcomes_for(targets, collect_scores(frames, targets, extractors, *args, **kwargs), len(frames))
