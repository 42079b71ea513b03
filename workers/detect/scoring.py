"""Score frames for several targets at once, sharing the per-frame work.

Each batch of frames goes once through every extractor that a still-undecided
target needs (one VGG16 pass serves all classifier targets, one face pass all
face targets). With ``early_verdict``, a target stops being scored once no
remaining frame can change its verdict, and the video stops once all are
decided. Pure logic: no Celery, no database.

``collect_scores`` (the model work) and ``outcomes_for`` (the verdicts) are
separate steps so that the pipeline can run them as separate stages;
``score_frames`` is both, for the in-process scan.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Callable, Mapping, Sequence

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


def check_targets(targets: Sequence[Target], extractors: Mapping[str, Extractor]) -> None:
    """Raise ``BackboneMismatch`` before any work if a target cannot use its extractor."""
    for t in targets:
        t.check_extractor(extractors[t.extractor_key])


def _positives(scores: list[FrameScore], threshold: float) -> int:
    return sum(s.score >= threshold for s in scores)


def collect_scores(
    frames: Sequence[Frame],
    targets: Sequence[Target],
    extractors: Mapping[str, Extractor],
    batch_size: int = 16,
    early_verdict: bool = True,
    on_batch: Callable[[int], None] | None = None,
) -> dict[str, list[FrameScore]]:
    """Per-frame scores of ``frames`` (all sampled frames of one video) for every target.

    With ``early_verdict`` a target's list stops where its verdict was decided.
    """
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
