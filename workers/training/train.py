"""Fit a classifier head and measure it honestly (grouped k-fold validation)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

import numpy as np

from workers.detect.backbone import VGG16Backbone
from workers.detect.classifier import DEFAULT_RULE, ClassifierTarget
from workers.training.dataset import LabelledSet, positive_class
from workers.training.heads import DEFAULT_HEAD, DEFAULT_THRESHOLD, ENSEMBLE_SIZE, fit_head
from workers.verdict import VerdictRule


@dataclass(frozen=True)
class TrainingStep:
    """Where training is, for a progress display: ``done`` of ``total`` epochs in
    ``phase`` ("validation" or "final fit"), at ``fold`` (0: the final fit) and
    ensemble ``member`` (1-based), of ``folds`` and ``members``."""

    phase: str
    done: int
    total: int
    fold: int
    folds: int
    member: int
    members: int

    def where(self) -> str:
        """``fold 2/5, head 3/5`` (no fold in the final fit)."""
        fold = f"fold {self.fold}/{self.folds}, " if self.fold else ""
        return f"{fold}head {self.member}/{self.members}"


OnStep = Callable[[TrainingStep], None]


@dataclass(frozen=True)
class TrainOptions:
    head: str = DEFAULT_HEAD
    epochs: int = 20
    batch_size: int = 32
    folds: int = 5  # grouped k-fold validation; 0 or 1 skips validation
    threshold: float | None = None  # None: the head's default (DEFAULT_THRESHOLD)
    rule: VerdictRule = DEFAULT_RULE
    positive_class: str | None = None
    seed: int = 0

    @property
    def frame_threshold(self) -> float:
        return DEFAULT_THRESHOLD[self.head] if self.threshold is None else self.threshold


def binary_metrics(truth: np.ndarray, predicted: np.ndarray) -> dict:
    """Accuracy, precision and recall of boolean predictions (positive = target)."""
    tp = int(np.sum(predicted & truth))
    fp = int(np.sum(predicted & ~truth))
    fn = int(np.sum(~predicted & truth))
    tn = int(np.sum(~predicted & ~truth))
    n = tp + fp + fn + tn
    return {
        "accuracy": round((tp + tn) / n, 4) if n else 0.0,
        "precision": round(tp / (tp + fp), 4) if tp + fp else 0.0,
        "recall": round(tp / (tp + fn), 4) if tp + fn else 0.0,
        "tp": tp,
        "fp": fp,
        "fn": fn,
        "tn": tn,
    }


def validation_folds(opts: TrainOptions) -> int:
    return opts.folds if opts.folds and opts.folds > 1 else 0


def phase_epochs(opts: TrainOptions) -> dict[str, int]:
    """Epochs (of all ensemble members) each phase of ``train_classifier`` runs, in order:
    the ``total`` of its ``TrainingStep``s."""
    per_fit = ENSEMBLE_SIZE[opts.head] * opts.epochs
    phases = {"validation": validation_folds(opts) * per_fit} if validation_folds(opts) else {}
    return {**phases, "final fit": per_fit}


class _Tracker:
    """Turns per-epoch callbacks of one phase into ``TrainingStep``s."""

    def __init__(self, phase: str, folds: int, opts: TrainOptions, on_step: OnStep | None) -> None:
        self.phase, self.folds, self.on_step = phase, folds, on_step
        self.members, self.epochs = ENSEMBLE_SIZE[opts.head], opts.epochs
        self.total = phase_epochs(opts)[phase]
        self.done = 0

    def epoch_callback(self, fold: int):
        if self.on_step is None:
            return None

        def on_epoch(member: int) -> None:
            self.done += 1
            self.on_step(TrainingStep(self.phase, self.done, self.total, fold, self.folds, member + 1, self.members))

        return on_epoch

    def skip_fold(self, fold: int) -> None:
        """A fold not trained (one class only, or none of its rows counted): count its epochs as done."""
        self.done += self.members * self.epochs
        if self.on_step:
            self.on_step(TrainingStep(self.phase, self.done, self.total, fold, self.folds, self.members, self.members))


def _fit(features, labels, n_classes, opts: TrainOptions, on_epoch=None):
    return fit_head(opts.head, features, labels, n_classes, opts.epochs, opts.batch_size, opts.seed, on_epoch)


def grouped_validation(
    features: np.ndarray,
    labels: np.ndarray,
    groups: np.ndarray,
    is_original: np.ndarray,
    n_classes: int,
    pos: int,
    opts: TrainOptions,
    on_step: OnStep | None = None,
    eval_features: Mapping[str, np.ndarray] | None = None,
    eval_rows: np.ndarray | None = None,
) -> dict:
    """K-fold validation where a group (block of near-duplicate images) never
    straddles train and validation. Augmented views train only; validation
    uses the original images. ``on_step``: progress after every epoch.
    ``eval_features``: other computations of the same rows (another precision or
    runtime), whose held-out rows the same fold heads also score; their metrics
    go in ``metrics["eval_features"][name]`` (the agreement gate), counted over the
    held-out rows that ``eval_rows`` (a mask; default all) keeps. With ``eval_rows``, a fold
    none of whose held-out rows is counted is not trained: its heads would add nothing to
    those metrics (the gate's CI form counts the rows of one fold, and trains that fold only)."""
    tracker = _Tracker("validation", opts.folds, opts, on_step)
    unique = np.unique(groups)
    fold_of_group = {g: i % opts.folds for i, g in enumerate(unique)}
    fold = np.array([fold_of_group[g] for g in groups])
    truth, predicted = [], []
    others: dict[str, list[np.ndarray]] = {name: [] for name in eval_features or {}}
    counted = np.ones(len(labels), bool) if eval_rows is None else eval_rows
    other_truth: list[np.ndarray] = []
    for k in range(opts.folds):
        train, val = fold != k, (fold == k) & is_original
        if not val.any() or len(np.unique(labels[train])) < 2 or (eval_rows is not None and not (val & counted).any()):
            tracker.skip_fold(k + 1)
            continue
        head = _fit(features[train], labels[train], n_classes, opts, tracker.epoch_callback(k + 1))
        probs = np.asarray(head.predict_on_batch(features[val]))[:, pos]
        truth.append(labels[val] == pos)
        predicted.append(probs >= opts.frame_threshold)
        rows = val & counted
        other_truth.append(labels[rows] == pos)
        for name, other in (eval_features or {}).items():
            others[name].append(np.asarray(head.predict_on_batch(other[rows]))[:, pos] >= opts.frame_threshold)
    if not truth:
        return {}
    metrics = binary_metrics(np.concatenate(truth), np.concatenate(predicted))
    if others:
        metrics["eval_features"] = {name: binary_metrics(np.concatenate(other_truth), np.concatenate(p)) for name, p in others.items()}
    metrics["folds"] = opts.folds
    metrics["threshold"] = opts.frame_threshold
    metrics["split"] = "grouped k-fold (blocks of consecutive images)"
    return metrics


def train_classifier(
    name: str,
    data: LabelledSet,
    features: np.ndarray,
    example_index: np.ndarray,
    is_original: np.ndarray,
    backbone: VGG16Backbone,
    opts: TrainOptions = TrainOptions(),
    on_step: OnStep | None = None,
    eval_features: Mapping[str, np.ndarray] | None = None,
    eval_rows: np.ndarray | None = None,
) -> ClassifierTarget:
    """Validate with grouped folds, then fit the final head on every example.
    ``on_step`` is told after every epoch where training is (``TrainingStep``);
    ``eval_features``, ``eval_rows``: see ``grouped_validation``."""
    labels = np.array([data.examples[i].label for i in example_index])
    groups = np.array([data.examples[i].group for i in example_index])
    n_classes = len(data.class_names)
    pos = positive_class(data.class_names, name, opts.positive_class)
    metrics: dict = {}
    if validation_folds(opts):
        metrics = grouped_validation(features, labels, groups, is_original, n_classes, pos, opts, on_step, eval_features, eval_rows)
    head = _fit(features, labels, n_classes, opts, _Tracker("final fit", 0, opts, on_step).epoch_callback(0))
    metrics.update(
        {
            "train_images": int(is_original.sum()),
            "train_views": int(len(labels)),
            "class_counts": data.counts(),
            "epochs": opts.epochs,
        }
    )
    return ClassifierTarget(
        name=name,
        head=head,
        backbone=backbone.backbone_identity,
        class_names=data.class_names,
        positive_index=pos,
        threshold=opts.frame_threshold,
        rule=opts.rule,
        head_kind=opts.head,
        metrics=metrics,
    )
