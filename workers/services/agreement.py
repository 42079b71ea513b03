"""The agreement gate: may a faster VGG16 computation (bfloat16, int8, another runtime)
score with heads trained on float32 features?

It may where, for the default head trained on a labelled set at float32: every
sampled frame of the given videos stays on the same side of the threshold, the
verdicts are the same, and the grouped validation accuracy (fold heads trained on
float32 features, held-out images scored from the other computation's) moves by at
most ``ACCURACY_TOLERANCE``. ``bench/agreement.py`` runs it on the seed set for this
CPU's defaults (before a default precision or runtime changes); CI runs the same
command with the grouped accuracy measured on every fourth group of seed images
(``groups_every=4``: the same head, the same fold heads, every frame still checked;
``tests/test_backbone_agreement.py``); README, "Speed", quotes the numbers.

A computation that needs a process of its own (oneDNN capped at AVX2 is set when it
loads) computes its ``VariantFeatures`` there; the head and the judging stay here.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from workers.detect.backbone import Hardware
from workers.services.training import TrainRequest, plan_training
from workers.settings import Settings

ACCURACY_TOLERANCE = 0.01


def default_variants(hardware: Hardware) -> list[tuple[str, str]]:
    """The ``(precision, runtime)`` computations that ``auto`` picks somewhere and that this
    CPU runs fast enough to check: int8 on OpenVINO (CPUs without fast bfloat16) always,
    bfloat16 on Keras where this CPU has it fast."""
    return [("int8", "openvino"), *([("bfloat16", "keras")] if hardware.fast_bfloat16() else [])]


def has_vnni(hardware: Hardware) -> bool:
    """VNNI (or AMX) int8 kernels sum uint8 x int8 products in int32. Without them the
    products are summed in int16, which 8-bit weights saturate: the gate must then also
    run with oneDNN capped at AVX2 (``ONEDNN_MAX_CPU_ISA``), as on most users' CPUs.
    On a CPU without VNNI its own kernels already are that case."""
    return bool(hardware.cpu_flags & {"avx512_vnni", "avx_vnni", "amx_int8"})


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
    isa: str  # oneDNN's instruction set for this computation: "own" (the CPU's), or the cap ("AVX2")
    videos: tuple[VideoAgreement, ...]
    accuracy_float32: float
    accuracy: float
    images: str  # the held-out images of the grouped accuracy ("all 717", "1 group in 5: 157 of 717")

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
        isa = "" if self.isa == "own" else f" (oneDNN capped at {self.isa})"
        return (
            f"{self.variant}{isa}: frames on the same side {self.same_side}/{self.frames} (largest score change {change:.3f}); "
            f"verdicts {verdicts}; grouped accuracy {self.accuracy:.4f} vs float32 {self.accuracy_float32:.4f}"
            f" ({self.images} images) -> {'agrees' if self.holds else 'DOES NOT AGREE'}"
        )

    def to_dict(self) -> dict:
        """Every field, the derived verdicts and the printed line (``bench/agreement.py --json``)."""
        return {
            **asdict(self),
            "frames": self.frames,
            "same_side": self.same_side,
            "same_verdicts": self.same_verdicts,
            "holds": self.holds,
            "line": self.line(),
        }


@dataclass
class VariantFeatures:
    """One computation's features of the held-out seed images and of the videos' sampled
    frames: all the gate needs from it, so it can be computed in another process."""

    variant: str  # ``int8@openvino``, ``bfloat16`` ...
    isa: str  # "own", or the ONEDNN_MAX_CPU_ISA cap it ran under
    example_index: np.ndarray  # row i: features of examples[example_index[i]] (original view)
    images: np.ndarray
    frames: dict[str, np.ndarray] = field(default_factory=dict)  # video name -> features of its sampled frames


def _held_out(examples: Sequence, groups_every: int) -> list[int]:
    """Indices of the examples whose grouped accuracy is measured: every ``groups_every``-th group."""
    return [i for i, ex in enumerate(examples) if ex.group % max(1, groups_every) == 0]


def _sampled(settings: Settings, videos: Sequence[Path]) -> dict[str, list]:
    from workers.video.sampling import read_sampled

    return {Path(v).name: read_sampled(v, settings.frame_rate, settings.max_frame_side).frames for v in videos}


def variant_features(
    settings: Settings, request: TrainRequest, precision: str, runtime: str, videos: Sequence[Path], groups_every: int = 1
) -> VariantFeatures:
    """Compute ``(precision, runtime)``'s features of the held-out images and the frames of ``videos``."""
    from workers.detect.classifier import KIND as CLASSIFIER
    from workers.training.features import dataset_features

    plan = plan_training(settings, request)
    r, chosen = request, _held_out(plan.data.examples, groups_every)
    backbone = CLASSIFIER.make_extractor(
        settings, {"weights": r.backbone_weights, "preprocessing": r.backbone_preprocessing, "precision": precision, "runtime": runtime}
    )
    images, index, _, _ = dataset_features([plan.data.examples[i] for i in chosen], backbone, settings.features_dir, 0, settings.batch_size)
    frames = {name: backbone.extract([f.image for f in sampled]) for name, sampled in _sampled(settings, videos).items()}
    return VariantFeatures(backbone.variant, os.environ.get("ONEDNN_MAX_CPU_ISA") or "own", np.asarray(chosen)[index], images, frames)


def backbone_agreement(
    settings: Settings,
    request: TrainRequest,
    variants: Sequence[tuple[str, str]],
    videos: Sequence[Path],
    groups_every: int = 1,
    computed: Sequence[VariantFeatures] = (),
) -> list[Agreement]:
    """Train ``request``'s head at float32 on every image (features cached in
    ``settings.features_dir``), then compare each ``(precision, runtime)`` of ``variants``,
    and each of ``computed`` (from other processes), with float32: on every sampled frame
    of ``videos``, scored by that head, and on the grouped validation, whose fold heads
    score the held-out images of every ``groups_every``-th group (all of them by default;
    the same groups on every run) from float32 features and from the other computation's."""
    from workers.training.features import dataset_features
    from workers.training.train import train_classifier
    from workers.verdict import verdict_for

    plan = plan_training(settings, request)
    r, examples = request, plan.data.examples
    feats, index, view, _ = dataset_features(examples, plan.backbone, settings.features_dir, r.augment, settings.batch_size)
    found = [*(variant_features(settings, request, p, rt, videos, groups_every) for p, rt in variants), *computed]
    chosen = np.zeros(len(examples), bool)
    chosen[_held_out(examples, groups_every)] = True
    held_out = (view == 0) & chosen[index]
    images = f"all {len(examples)}" if groups_every <= 1 else f"1 group in {groups_every}: {int(held_out.sum())} of {len(examples)}"
    eval_features = {"float32": feats}
    for vf in found:
        assert np.array_equal(vf.example_index, index[held_out])  # the same images, in the same order
        rows = feats.copy()
        rows[held_out] = vf.images  # held-out rows are originals; augmented views only train
        eval_features[f"{vf.variant}|{vf.isa}"] = rows
    target = train_classifier(
        r.name, plan.data, feats, index, view == 0, plan.backbone, plan.options, eval_features=eval_features, eval_rows=held_out
    )

    def scores(extracted, frames) -> list:
        return target.score(extracted, [f.index for f in frames], [f.timestamp for f in frames])

    def verdict(scored) -> str:
        return verdict_for(scored, target.threshold, target.rule).label

    sampled = _sampled(settings, videos)
    reference = {name: scores(plan.backbone.extract([f.image for f in frames]), frames) for name, frames in sampled.items()}
    accuracy = {name: m["accuracy"] for name, m in target.metrics["eval_features"].items()}
    agreements = []
    for vf in found:
        per_video = []
        for name, frames in sampled.items():
            scored = scores(vf.frames[name], frames)
            ref, got = (np.array([s.score for s in x]) for x in (reference[name], scored))
            per_video.append(
                VideoAgreement(
                    name,
                    len(frames),
                    int(np.sum((ref >= target.threshold) == (got >= target.threshold))),
                    float(np.max(np.abs(ref - got), initial=0.0)),
                    verdict(reference[name]),
                    verdict(scored),
                )
            )
        agreements.append(Agreement(vf.variant, vf.isa, tuple(per_video), accuracy["float32"], accuracy[f"{vf.variant}|{vf.isa}"], images))
    return agreements
