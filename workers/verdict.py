"""Verdict rules: from per-frame scores to "is the target in this video?".

The tutorial's rule: the target is in the video when at least 1/3 of the
sampled frames are positive. Faces use "at least 2 positive frames" instead,
because a person can appear briefly. Pure functions, no I/O.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass(frozen=True)
class VerdictRule:
    min_fraction: float = 1 / 3  # of sampled frames
    min_frames: int = 1  # absolute number of positive frames

    def needed(self, total_frames: int) -> int:
        """Positive frames needed for a positive verdict in a video of ``total_frames``."""
        # The small epsilon keeps 1/3 * 18 == 6 from becoming 7 through float error.
        return max(self.min_frames, math.ceil(self.min_fraction * total_frames - 1e-9))

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> VerdictRule:
        return cls(float(data["min_fraction"]), int(data["min_frames"]))


@dataclass(frozen=True)
class FrameScore:
    index: int
    timestamp: float
    score: float
    box: tuple[int, int, int, int] | None = None  # (top, right, bottom, left) for faces
    reused_from: int | None = None  # a near-identical earlier frame whose score this is


@dataclass(frozen=True)
class Verdict:
    positive: bool
    frames: int  # sampled frames in the video
    scored_frames: int  # frames with a score (fewer with early verdict)
    positive_frames: int
    positive_timestamps: list[float] = field(default_factory=list)
    best: FrameScore | None = None
    reused_frames: int = 0  # of the scored frames, those given a near-identical earlier frame's score

    @property
    def label(self) -> str:
        return "positive" if self.positive else "negative"


def verdict_for(scores: Sequence[FrameScore], threshold: float, rule: VerdictRule, total_frames: int | None = None) -> Verdict:
    """Apply ``rule`` to frame ``scores`` (a frame is positive when score >= threshold).

    ``total_frames`` is the number of sampled frames in the video when only a
    prefix was scored (early verdict); by default every frame was scored.
    """
    total = len(scores) if total_frames is None else total_frames
    positives = [s for s in scores if s.score >= threshold]
    # The first of equal scores: a frame scored itself, never one that reused its score.
    best = max(scores, key=lambda s: s.score, default=None)
    return Verdict(
        positive=total > 0 and len(positives) >= rule.needed(total),
        frames=total,
        scored_frames=len(scores),
        positive_frames=len(positives),
        positive_timestamps=[round(s.timestamp, 3) for s in positives],
        best=best,
        reused_frames=sum(s.reused_from is not None for s in scores),
    )


def frames_to_decide(rule: VerdictRule, total_frames: int, scored: int, positive: int) -> int:
    """The fewest further frames after which the verdict can be decided (0: it is):
    the positives still needed if all of them are positive, or, if none is, the frames
    after which too few remain to reach the rule. Scoring more before looking again
    can only waste work: early verdict sizes its chunks by it."""
    needed = rule.needed(total_frames)
    remaining = total_frames - scored
    to_positive = needed - positive
    to_negative = positive + remaining - needed + 1
    return max(0, min(to_positive, to_negative))


def is_decided(rule: VerdictRule, total_frames: int, scored: int, positive: int) -> bool:
    """True when the remaining ``total_frames - scored`` frames cannot change the verdict."""
    return frames_to_decide(rule, total_frames, scored, positive) == 0
