"""Backbone features of labelled images, computed once and cached on disk.

A head is trained on VGG16 feature maps, so the expensive forward pass runs
once per (image content, backbone, augmentation copy) and is reused across
epochs, folds and later trainings. Augmented copies come from Keras
preprocessing layers applied to the resized image (at the backbone's input
size) before the backbone.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from workers.detect.backbone import VGG16Backbone, feature_shape, preprocess, resize_for_backbone
from workers.images import read_rgb
from workers.training.dataset import Example

Progress = Callable[[int], None]


def augmenter(seed: int):
    """Mild, label-preserving changes: mirror, small rotation/zoom/shift, contrast."""
    from workers.detect.runtime import keras as keras_runtime

    keras = keras_runtime()

    return keras.Sequential(
        [
            keras.layers.RandomFlip("horizontal", seed=seed),
            keras.layers.RandomRotation(0.04, fill_mode="nearest", seed=seed + 1),
            keras.layers.RandomZoom((-0.15, 0.0), fill_mode="nearest", seed=seed + 2),
            keras.layers.RandomTranslation(0.05, 0.05, fill_mode="nearest", seed=seed + 3),
            keras.layers.RandomContrast(0.2, seed=seed + 4),
        ]
    )


def _cache_folder(features_dir: Path, backbone: VGG16Backbone) -> Path:
    ident = backbone.backbone_identity  # computation: precision, runtime, int8 model, ISA cap
    key = hashlib.sha256(f"{ident.weights_id}|{ident.preprocessing}|{ident.input_size}|{backbone.computation}".encode()).hexdigest()[:16]
    return Path(features_dir) / key


def _save(path: Path, features: np.ndarray) -> None:
    """Write a cache file whole or not at all: processes that train at once share the cache."""
    part = path.with_name(f".{path.name}.{os.getpid()}.part")
    with open(part, "wb") as fh:
        np.save(fh, features)
    os.replace(part, path)


def _file_key(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()[:32]


def dataset_features(
    examples: Sequence[Example],
    backbone: VGG16Backbone,
    features_dir: Path,
    augment_copies: int = 0,
    batch_size: int = 16,
    progress: Progress | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[str]]:
    """Features for every example and ``augment_copies`` augmented views of it.

    Returns ``(features, example_index, view, problems)``: row ``i`` of
    ``features`` is view ``view[i]`` (0 = the original image) of
    ``examples[example_index[i]]``. Unreadable images are reported in
    ``problems`` and left out. Features are cached under ``features_dir``
    (``Settings.features_dir``).
    """
    folder = _cache_folder(features_dir, backbone)
    folder.mkdir(parents=True, exist_ok=True)
    views = 1 + augment_copies
    keys = [_file_key(ex.path) for ex in examples]
    problems: list[str] = []
    cached: dict[tuple[int, int], np.ndarray] = {}
    todo: list[int] = []
    for i, key in enumerate(keys):
        files = [folder / f"{key}-{v}.npy" for v in range(views)]
        if all(f.is_file() for f in files):
            for v, f in enumerate(files):
                cached[(i, v)] = np.load(f)
            if progress:
                progress(1)
        else:
            todo.append(i)
    augs = [augmenter(seed=1000 * v) for v in range(1, views)]
    for start in range(0, len(todo), batch_size):
        chunk = todo[start : start + batch_size]
        images, ok = [], []
        for i in chunk:
            rgb = read_rgb(examples[i].path)
            if rgb is None:
                problems.append(f"{examples[i].path.name}: unreadable image, skipped")
            else:
                images.append(rgb)
                ok.append(i)
        if images:
            resized = resize_for_backbone(images, backbone.backbone_identity.input_size)
            for v in range(views):
                batch = resized if v == 0 else np.asarray(augs[v - 1](resized, training=True), np.float32)
                feats = backbone.features(preprocess(batch, backbone.backbone_identity.preprocessing))
                for i, f in zip(ok, feats, strict=True):
                    _save(folder / f"{keys[i]}-{v}.npy", f)
                    cached[(i, v)] = f
        if progress:
            progress(len(chunk))
    order = sorted(cached)
    if not order:
        return (
            np.zeros((0, *feature_shape(backbone.backbone_identity.input_size)), np.float32),
            np.zeros(0, int),
            np.zeros(0, int),
            problems,
        )
    features = np.stack([cached[k] for k in order])
    return features, np.array([i for i, _ in order]), np.array([v for _, v in order]), problems
