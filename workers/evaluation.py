"""Evaluate a target on folders of labelled videos (every frame scored)."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from workers.detect.base import Target
from workers.detect.registry import make_extractors
from workers.detect.scoring import check_targets, score_frames
from workers.errors import TrackerError
from workers.video.files import expand_paths
from workers.training.train import binary_metrics
from workers.video.sampling import read_sampled


@dataclass
class EvalRow:
    video: str
    expected: str
    verdict: str
    frames: int = 0
    positive_frames: int = 0
    error: str | None = None

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
            "videos": [asdict(r) | {"correct": r.correct} for r in self.rows],
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
    rows: list[EvalRow] = []
    flagged = {"positive": [0, 0], "negative": [0, 0]}  # [positive frames, frames]
    for expected, folder in (("positive", positive_dir), ("negative", negative_dir)):
        if not Path(folder).is_dir():
            raise TrackerError(f"video folder not found: {folder}")
        for path in expand_paths([folder]):
            try:
                sampled = read_sampled(path, settings.frame_rate, settings.max_frame_side)
            except TrackerError as exc:
                rows.append(EvalRow(str(path), expected, "failed", error=str(exc)))
            else:
                v = score_frames(sampled.frames, [target], extractors, settings.batch_size, early_verdict=False)[target.name].verdict
                rows.append(EvalRow(str(path), expected, v.label, v.frames, v.positive_frames))
                flagged[expected][0] += v.positive_frames
                flagged[expected][1] += v.frames
            if on_video:
                on_video()
    scored = [r for r in rows if r.verdict != "failed"]
    truth = np.array([r.expected == "positive" for r in scored], bool)
    predicted = np.array([r.verdict == "positive" for r in scored], bool)
    frames = {
        f"positive_rate_in_{k}_videos": (pos / n if n else 0.0) for k, (pos, n) in flagged.items()
    } | {f"frames_in_{k}_videos": n for k, (_, n) in flagged.items()}
    return EvalReport(rows, binary_metrics(truth, predicted), frames)
