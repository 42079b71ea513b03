"""Evaluate a target on folders of labelled videos (every frame scored).

Each video goes through the same steps as a scan (``workers.processing``:
sample -> score -> decide, with ``ScoringOptions`` for all frames), without
the database: so a video's per-frame scores and verdict here are the scan's."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from workers import processing
from workers.detect.base import Target
from workers.detect.registry import make_extractors
from workers.detect.scoring import check_targets
from workers.errors import TrackerError
from workers.processing import ScoringOptions
from workers.training.train import binary_metrics
from workers.video.files import expand_paths


@dataclass
class EvalRow:
    video: str
    expected: str
    verdict: str
    frames: int = 0
    positive_frames: int = 0
    error: str | None = None
    scores: list = field(default_factory=list, repr=False)  # the per-frame ``FrameScore``s (not in the JSON report)

    @property
    def correct(self) -> bool:
        return self.verdict == self.expected


@dataclass
class EvalReport:
    rows: list[EvalRow]
    video_metrics: dict
    frame_metrics: dict

    def to_json(self) -> dict:
        return {
            "videos": [{k: v for k, v in asdict(r).items() if k != "scores"} | {"correct": r.correct} for r in self.rows],
            "video_metrics": self.video_metrics,
            "frame_metrics": self.frame_metrics,
        }


def evaluate_target(
    settings,
    target: Target,
    positive_dir: Path,
    negative_dir: Path,
    backbone_weights: str | None = None,
    backbone_preprocessing: str | None = None,
    on_video: Callable[[], None] | None = None,
) -> EvalReport:
    extractors = make_extractors([target.extractor_key], settings, weights=backbone_weights, preprocessing=backbone_preprocessing)
    check_targets([target], extractors)
    options = ScoringOptions.from_settings(settings, all_frames=True)
    rows: list[EvalRow] = []
    flagged = {"positive": [0, 0], "negative": [0, 0]}  # [positive frames, frames]
    for expected, folder in (("positive", positive_dir), ("negative", negative_dir)):
        if not Path(folder).is_dir():
            raise TrackerError(f"video folder not found: {folder}")
        for path in expand_paths([folder]):
            try:
                frames = processing.sample_file(path, settings, [target])
            except TrackerError as exc:
                rows.append(EvalRow(str(path), expected, "failed", error=str(exc)))
            else:
                scores = processing.score(frames.frames_for, [target], extractors, options)
                v = processing.decide([target], scores, len(frames.sampled.frames))[target.name].verdict
                rows.append(EvalRow(str(path), expected, v.label, v.frames, v.positive_frames, scores=scores[target.name]))
                flagged[expected][0] += v.positive_frames
                flagged[expected][1] += v.frames
            if on_video:
                on_video()
    scored = [r for r in rows if r.verdict != "failed"]
    truth = np.array([r.expected == "positive" for r in scored], bool)
    predicted = np.array([r.verdict == "positive" for r in scored], bool)
    frames = {f"positive_rate_in_{k}_videos": (pos / n if n else 0.0) for k, (pos, n) in flagged.items()} | {
        f"frames_in_{k}_videos": n for k, (_, n) in flagged.items()
    }
    return EvalReport(rows, binary_metrics(truth, predicted), frames)
