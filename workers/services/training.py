"""Training a classifier target from labelled images (``tiktok-tracker target train``;
the web app's retrain runs that command): load the dataset, add reviewed frames,
compute backbone features, validate and fit the head, save the bundle.

``plan_training`` does the checks and the cheap loading (so a bad option fails before any
model work); ``run_training`` does the rest, reporting its phases to a ``progress``."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from workers.errors import TrackerError
from workers.settings import Settings
from workers.targets import bundle, published
from workers.verdict import VerdictRule

BACKBONE_PHASE = "backbone features"


class UnknownHead(TrackerError):
    """A head architecture the trainer does not have."""


class Progress(Protocol):
    """Where the phases' progress goes (``workers.cli.common.PhaseProgress`` on a terminal)."""

    def advance(self, phase: str, n: int = 1, detail: str | None = None) -> None: ...

    def update(self, phase: str, done: int, detail: str | None = None) -> None: ...


class NoProgress:
    def advance(self, phase: str, n: int = 1, detail: str | None = None) -> None:
        pass

    def update(self, phase: str, done: int, detail: str | None = None) -> None:
        pass


@dataclass(frozen=True)
class TrainRequest:
    name: str
    images: Path
    labels: Path | None = None
    head: str = "pooled"
    epochs: int = 20
    augment: int = 1
    folds: int = 5
    block: int = 20
    positive_class: str | None = None
    threshold: float | None = None
    min_fraction: float = 1 / 3
    min_frames: int = 1
    with_reviews: bool = False
    backbone_weights: str | None = None
    backbone_preprocessing: str | None = None
    input_size: int = 224  # VGG16's input side (``--input-size``), recorded in the bundle's backbone


@dataclass
class TrainingPlan:
    request: TrainRequest
    data: object  # workers.training.dataset.LabelledSet, reviewed frames included
    backbone: object
    options: object  # workers.training.train.TrainOptions
    reviewed: int = 0  # reviewed frames added as examples
    problems: list[str] = field(default_factory=list)  # images and reviews skipped, one line each

    @property
    def phases(self) -> list[tuple[str, int]]:
        """Each phase and its steps, in order: backbone features, validation folds, final fit."""
        from workers.training.train import phase_epochs

        return [(BACKBONE_PHASE, len(self.data.examples)), *phase_epochs(self.options).items()]


@dataclass
class TrainingResult:
    target: object  # the saved ClassifierTarget (its metrics, its version)
    path: Path
    problems: list[str]  # images that could not be read
    published: str | None = None  # where every worker finds it (an object store), else None


def plan_training(settings: Settings, request: TrainRequest) -> TrainingPlan:
    """Check the name and head, load the labelled images (and the reviewed frames), pick the backbone."""
    from workers.detect.backbone import input_size_of
    from workers.detect.classifier import KIND as CLASSIFIER
    from workers.training.dataset import load_csv, load_folders
    from workers.training.heads import HEADS
    from workers.training.train import TrainOptions

    bundle.check_name(request.name)
    if request.head not in HEADS:
        raise UnknownHead(f"choose one of {', '.join(HEADS)}")
    r = request
    input_size = input_size_of(r.input_size)
    data = load_csv(r.labels, r.images, r.block) if r.labels else load_folders(r.images, r.block)
    problems = list(data.problems)
    reviewed = 0
    if r.with_reviews:
        from workers.review.training import reviewed_examples
        from workers.training.dataset import positive_class as positive_index

        extra, more = reviewed_examples(settings, r.name, data, positive_index(data.class_names, r.name, r.positive_class))
        problems.extend(more)
        data.examples.extend(extra)
        reviewed = len(extra)
    # Training features are computed in float32 whatever the scan precision: a head
    # trained on bfloat16 features is less stable; one trained on float32 scores
    # bfloat16 or int8 features with the same verdicts (README, "Speed").
    backbone = CLASSIFIER.make_extractor(
        settings,
        {
            "weights": r.backbone_weights,
            "preprocessing": r.backbone_preprocessing,
            "precision": "float32",
            "runtime": "keras",
            "input_size": input_size,
        },
    )
    options = TrainOptions(
        head=r.head,
        epochs=r.epochs,
        folds=r.folds,
        threshold=r.threshold,
        rule=VerdictRule(r.min_fraction, r.min_frames),
        positive_class=r.positive_class,
    )
    return TrainingPlan(request, data, backbone, options, reviewed, problems)


def run_training(settings: Settings, plan: TrainingPlan, progress: Progress | None = None) -> TrainingResult:
    """Features, validation, the final fit; then save the target (a new version)."""
    from workers.training.features import dataset_features
    from workers.training.train import train_classifier

    progress = progress or NoProgress()
    r, data = plan.request, plan.data
    feats, index, view, problems = dataset_features(
        data.examples,
        plan.backbone,
        settings.features_dir,
        r.augment,
        settings.batch_size,
        lambda n: progress.advance(BACKBONE_PHASE, n, "images"),
    )
    target = train_classifier(
        r.name,
        data,
        feats,
        index,
        view == 0,
        plan.backbone,
        plan.options,
        on_step=lambda step: progress.update(step.phase, step.done, step.where()),
    )
    skipped = {**data.skipped, "unreadable": len(problems)}
    extra = {
        "dataset": {
            "labels": str(r.labels) if r.labels else None,
            "images": str(r.images),
            "skipped": skipped,
            "reviewed_frames": plan.reviewed,
        }
    }
    if r.with_reviews:
        from workers.review.corrections import history_after

        try:
            extra.update(history_after(bundle.target_meta(settings.models_dir, r.name), f"retrained with {plan.reviewed} reviewed frames"))
        except TrackerError:
            pass  # no earlier version
    path, where = published.save_target(target, settings, extra)
    return TrainingResult(target, path, problems, where)
