"""The agreement gate: may a faster VGG16 computation (bfloat16, int8, another runtime)
score with heads trained on float32 features?

It may where, for the default head trained on a labelled set at float32: every
sampled frame of the given videos stays on the same side of the threshold, the
verdicts are the same, and the grouped validation accuracy (fold heads trained on
float32 features, held-out images scored from the other computation's) moves by at
most ``ACCURACY_TOLERANCE``. ``tests/test_backbone_agreement.py`` and
``bench/runtimes.py`` run it on the seed set; README, "Speed", quotes the numbers.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from workers.settings import Settings
from workers.services.training import TrainRequest, plan_training

ACCURACY_TOLERANCE = 0.01


@dataclass(frozen=True)
class VideoAgreement:
    video: str
    frames: int
    same_side: int  # frames on the same side of the threshold as in float32
    largest_change: float  # largest |score - float32 score|
    verdict_float32: str
    verdict: str


@dataclass(frozen=True)
class Agreement:
    """One computation (``variant``: ``int8@openvino``, ``bfloat16`` ...) against float32."""

    variant: str
    videos: tuple[VideoAgreement, ...]
    accuracy_float32: float
    accuracy: float

    @property
    def frames(self) -> int:
        return sum(v.frames for v in self.videos)

    @property
    def same_side(self) -> int:
        return sum(v.same_side for v in self.videos)

    @property
    def same_verdicts(self) -> bool:
        return all(v.verdict == v.verdict_float32 for v in self.videos)

    @property
    def holds(self) -> bool:
        return self.same_side == self.frames and self.same_verdicts and abs(self.accuracy - self.accuracy_float32) <= ACCURACY_TOLERANCE

    def line(self) -> str:
        verdicts = ", ".join(f"{v.video} {v.verdict} ({v.verdict_float32} in float32)" for v in self.videos)
        change = max((v.largest_change for v in self.videos), default=0.0)
        return (
            f"{self.variant}: frames on the same side {self.same_side}/{self.frames} (largest score change {change:.3f}); "
            f"verdicts {verdicts}; grouped accuracy {self.accuracy:.4f} vs float32 {self.accuracy_float32:.4f}"
            f" -> {'agrees' if self.holds else 'DOES NOT AGREE'}"
        )


def backbone_agreement(
    settings: Settings, request: TrainRequest, variants: Sequence[tuple[str, str]], videos: Sequence[Path]
) -> list[Agreement]:
    """Train ``request``'s head at float32 (features cached in ``settings.cache_dir``), then
    compare each ``(precision, runtime)`` of ``variants`` with float32 on every sampled frame
    of ``videos`` and on the grouped validation."""
    from workers.detect.classifier import KIND as CLASSIFIER
    from workers.training.features import dataset_features
    from workers.training.train import train_classifier
    from workers.verdict import verdict_for
    from workers.video.sampling import read_sampled

    plan = plan_training(settings, request)
    r, examples = request, plan.data.examples
    feats, index, view, _ = dataset_features(examples, plan.backbone, settings.cache_dir, r.augment, settings.batch_size)
    backbones, originals = {}, {}
    for precision, runtime in variants:
        backbone = CLASSIFIER.make_extractor(settings, {
            "weights": r.backbone_weights, "preprocessing": r.backbone_preprocessing, "precision": precision, "runtime": runtime})
        other, other_index, _, _ = dataset_features(examples, backbone, settings.cache_dir, 0, settings.batch_size)
        assert np.array_equal(other_index, index[view == 0])  # the same images, in the same order
        rows = feats.copy()
        rows[view == 0] = other  # held-out rows are originals; augmented views only train
        backbones[backbone.variant], originals[backbone.variant] = backbone, rows
    target = train_classifier(r.name, plan.data, feats, index, view == 0, plan.backbone, plan.options, eval_features=originals)

    def scores(backbone, frames) -> list:
        return target.score(backbone.extract([f.image for f in frames]), [f.index for f in frames], [f.timestamp for f in frames])

    def verdict(scored) -> str:
        return verdict_for(scored, target.threshold, target.rule).label

    sampled = {Path(v).name: read_sampled(v, settings.frame_rate, settings.max_frame_side).frames for v in videos}
    reference = {name: scores(plan.backbone, frames) for name, frames in sampled.items()}
    found = []
    for variant, backbone in backbones.items():
        per_video = []
        for name, frames in sampled.items():
            scored = scores(backbone, frames)
            ref, got = (np.array([s.score for s in x]) for x in (reference[name], scored))
            per_video.append(VideoAgreement(
                name, len(frames), int(np.sum((ref >= target.threshold) == (got >= target.threshold))),
                float(np.max(np.abs(ref - got), initial=0.0)), verdict(reference[name]), verdict(scored),
            ))
        metrics = target.metrics
        found.append(Agreement(variant, tuple(per_video), metrics["accuracy"], metrics["eval_features"][variant]["accuracy"]))
    return found
