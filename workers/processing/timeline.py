"""Complete timelines: after an early verdict, the rest of a positive video's frames.

The early verdict (``ScoringOptions.early_verdict``) stops scoring a target once its
verdict is decided, so a positive verdict comes with the scores of a prefix of the
sampled frames: its positive frames and timestamps are the first few appearances,
not every one. With ``complete_positive_timelines`` those targets are scored on from
where they stopped (the pipeline: a low-priority follow-up after the alert; ``scan``:
at once), and their outcomes made again from all the scores: still positive (frames
added to a decided positive cannot undo it), now with every appearance.
Pure logic on frames and targets; the pipeline and scan do the storing.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import replace
from itertools import islice

from workers.detect.base import Extractor, Target
from workers.detect.scoring import TargetOutcome
from workers.detect.shared_passes import SharedPasses
from workers.detect.views import FrameView
from workers.processing.options import ScoringOptions
from workers.processing.steps import score
from workers.verdict import FrameScore
from workers.video.sampling import Frame


def incomplete_positives(outcomes: Iterable[TargetOutcome]) -> list[str]:
    """Names of the positive outcomes whose early verdict left frames unscored."""
    return [o.target.name for o in outcomes if o.verdict.positive and o.verdict.scored_frames < o.verdict.frames]


def complete_scores(
    frames_for: Callable[[FrameView], Iterable[Frame]],
    targets: Sequence[Target],
    extractors: Mapping[str, Extractor],
    options: ScoringOptions,
    scores: Mapping[str, Sequence[FrameScore]],
    total: int,
    passes: SharedPasses | None = None,
) -> dict[str, list[FrameScore]]:
    """Each of ``targets``' scores (``scores``: a prefix of the ``total`` sampled frames each)
    followed by those of the frames after it, scored now without the early verdict (near-
    duplicates still reuse scores as ``options`` say). ``frames_for(view)``: all the video's
    frames in that view, from the first (a frame batch's stream, or frames in memory)."""
    rest = replace(options, early_verdict=False, on_frames=None)
    by_start: dict[int, list[Target]] = {}
    for t in targets:
        by_start.setdefault(len(scores[t.name]), []).append(t)
    completed = {t.name: list(scores[t.name]) for t in targets}
    for start, group in sorted(by_start.items()):
        if start >= total:
            continue
        later = score(_after(frames_for, start), group, extractors, rest, total - start, passes)
        for t in group:
            completed[t.name].extend(later[t.name])
    return completed


def _after(frames_for: Callable[[FrameView], Iterable[Frame]], start: int) -> Callable[[FrameView], Iterable[Frame]]:
    """``frames_for`` without the first ``start`` frames (read past, never scored)."""
    return lambda view: islice(frames_for(view), start, None)
