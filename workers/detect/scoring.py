"""Score frames for several targets at once, sharing the per-frame work.

Each batch of frames goes once through every extractor that a still-undecided
target needs (one VGG16 pass serves all classifier targets, one face pass all
face targets). With ``early_verdict``, a target stops being scored once no
remaining frame can change its verdict, and the video stops once all are
decided. Pure logic: no Celery, no database.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Mapping, Sequence

from workers.detect.base import Extractor, Target
from workers.verdict import FrameScore, Verdict, is_decided, verdict_for
from workers.video.sampling import Frame


@dataclass
class TargetOutcome:
    target: Target
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


def score_frames(
    frames: Sequence[Frame],
    targets: Sequence[Target],
    extractors: Mapping[str, Extractor],
    batch_size: int = 16,
    early_verdict: bool = True,
    on_batch: Callable[[int], None] | None = None,
) -> dict[str, TargetOutcome]:
    """Score ``frames`` (all sampled frames of one video) for every target."""
    total = len(frames)
    scores: dict[str, list[FrameScore]] = {t.name: [] for t in targets}
    pending = list(targets)
    done_frames = 0
    for start in range(0, total, batch_size):
        if not pending:
            break
        batch = frames[start : start + batch_size]
        images = [f.image for f in batch]
        indices = [f.index for f in batch]
        stamps = [f.timestamp for f in batch]
        outputs = {key: extractors[key].extract(images) for key in needed_extractors(pending)}
        for t in pending:
            scores[t.name].extend(t.score(outputs[t.extractor_key], indices, stamps))
        done_frames += len(batch)
        if on_batch:
            on_batch(len(batch))
        if early_verdict:
            pending = [
                t
                for t in pending
                if not is_decided(t.rule, total, len(scores[t.name]), _positives(scores[t.name], t.threshold))
            ]
    if on_batch and done_frames < total:
        on_batch(total - done_frames)  # frames skipped by the early verdict
    return {
        t.name: TargetOutcome(t, scores[t.name], verdict_for(scores[t.name], t.threshold, t.rule, total))
        for t in targets
    }
