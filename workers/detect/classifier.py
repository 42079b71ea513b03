"""Classifier targets: a trained head on shared VGG16 feature maps."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from workers.detect import onnx_head
from workers.detect.backbone import INPUT_SIZE, VIEW, BackboneIdentity, VGG16Backbone, backbone_key, parse_backbone_key
from workers.detect.base import Extractor, Target
from workers.detect.kind import DetectorKind
from workers.errors import BackboneMismatch
from workers.verdict import FrameScore, VerdictRule

HEAD_FILE = "head.keras"
DEFAULT_RULE = VerdictRule(min_fraction=1 / 3, min_frames=1)  # the tutorial's rule


class ClassifierTarget(Target):
    kind = "classifier"
    extractor_key = VGG16Backbone.key  # a target's own: its backbone's input size (``backbone_key``)

    def __init__(
        self,
        name: str,
        head,  # the Keras head, or None with ``load_head``
        backbone: BackboneIdentity,
        class_names: list[str],
        positive_index: int,
        threshold: float = 0.5,
        rule: VerdictRule = DEFAULT_RULE,
        head_kind: str = "pooled",
        metrics: dict | None = None,
        version: str = "",
        predict: Callable[[np.ndarray], np.ndarray] | None = None,
        load_head: Callable[[], object] | None = None,
    ) -> None:
        super().__init__(name, threshold, rule, version)
        self._head, self._load_head = head, load_head
        self._predict = predict  # the head's forward pass without Keras (``onnx_head``), if any
        self.backbone = backbone
        self.extractor_key = backbone_key(tuple(backbone.input_size))
        self.class_names = class_names
        self.positive_index = positive_index
        self.head_kind = head_kind
        self.metrics = metrics or {}

    def check_extractor(self, extractor: Extractor) -> None:
        current = BackboneIdentity.from_dict(extractor.identity)
        if not self.backbone.same_as(current):
            raise BackboneMismatch(
                f"target {self.name!r} was trained on {self.backbone.describe()}, "
                f"but the backbone in use is {current.describe()}: scan with the same "
                "--backbone-weights/--backbone-preprocessing, or retrain the target"
            )

    @property
    def head(self):
        """The Keras head (a bundle's is loaded on first use: scoring may not need it)."""
        if self._head is None:
            self._head = self._load_head()
        return self._head

    def probabilities(self, features: np.ndarray) -> np.ndarray:
        if len(features) == 0:
            return np.zeros(0, np.float32)
        predict = self._predict or self.head.predict_on_batch
        return np.asarray(predict(features), np.float32)[:, self.positive_index]

    def score(self, extracted: np.ndarray, indices: Sequence[int], timestamps: Sequence[float]) -> list[FrameScore]:
        probs = self.probabilities(extracted)
        return [FrameScore(int(i), float(t), float(p)) for i, t, p in zip(indices, timestamps, probs, strict=True)]

    def config(self) -> dict:
        return {
            "backbone": self.backbone.to_dict(),
            "class_names": self.class_names,
            "positive_class": self.class_names[self.positive_index],
            "head": self.head_kind,
            "metrics": self.metrics,
        }

    def save_artifacts(self, folder: Path) -> None:
        self.head.save(folder / HEAD_FILE)
        onnx_head.export(self.head, folder / onnx_head.HEAD_ONNX)

    @classmethod
    def from_bundle(cls, meta: dict, folder: Path) -> ClassifierTarget:
        head_path, onnx_path = folder / HEAD_FILE, folder / onnx_head.HEAD_ONNX
        if not head_path.is_file():
            raise FileNotFoundError(f"missing {HEAD_FILE}")

        def load_head():
            from workers.detect.runtime import keras as keras_runtime

            return keras_runtime().saving.load_model(head_path, compile=False)

        fast = onnx_path.is_file() and onnx_head.can_run()
        class_names = list(meta["class_names"])
        return cls(
            name=meta["name"],
            head=None if fast else load_head(),
            load_head=load_head,
            predict=onnx_head.session(onnx_path) if fast else None,
            backbone=BackboneIdentity.from_dict(meta["backbone"]),
            class_names=class_names,
            positive_index=class_names.index(meta["positive_class"]),
            threshold=float(meta["threshold"]),
            rule=VerdictRule.from_dict(meta["rule"]),
            head_kind=meta.get("head", "pooled"),
            metrics=meta.get("metrics", {}),
        )

    def fingerprint(self) -> bytes:
        parts = [np.asarray(w).tobytes() for w in self.head.get_weights()]
        parts.append(repr((self.backbone.to_dict(), self.class_names, self.positive_index)).encode())
        return b"".join(parts)


@dataclass(frozen=True)
class ClassifierSettings:
    """The classifier kind's settings: which VGG16 weights, preprocessing, precision and runtime
    its backbone runs with (``overrides``: the CLI's --backbone-weights/--backbone-preprocessing),
    its input size (``input_size``: from the extractor key, or training's --input-size), and
    where converted models are cached."""

    weights: str
    preprocessing: str | None
    precision: str
    input_size: tuple[int, int] = INPUT_SIZE
    runtime: str = "auto"
    cache_dir: Path | None = None

    @classmethod
    def from_settings(cls, settings, overrides: Mapping[str, object] = {}) -> ClassifierSettings:
        return cls(
            weights=overrides.get("weights") or settings.vgg16_weights,
            preprocessing=overrides.get("preprocessing") or settings.vgg16_preprocessing,
            precision=overrides.get("precision") or settings.vgg16_precision,
            input_size=tuple(overrides.get("input_size") or INPUT_SIZE),
            runtime=overrides.get("runtime") or settings.vgg16_runtime,
            cache_dir=settings.backbones_dir,
        )


def _size_variant(extractor_key: str) -> dict | None:
    size = parse_backbone_key(extractor_key)
    return None if size is None else {"input_size": size}


KIND = DetectorKind(
    key=ClassifierTarget.kind,
    target=ClassifierTarget,
    settings=ClassifierSettings.from_settings,
    extractor=lambda s: VGG16Backbone(
        s.weights, s.preprocessing, precision=s.precision, input_size=s.input_size, runtime=s.runtime, cache_dir=s.cache_dir
    ),
    view=VIEW,  # the head reads VGG16 features of (resized from) 224x224 frames
    variant=_size_variant,  # vgg16@160: a VGG16 of 160x160 input
    options=frozenset({"weights", "preprocessing"}),  # --backbone-weights, --backbone-preprocessing
    retrained_with_reviews=True,
)
