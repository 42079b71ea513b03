"""Classifier heads on VGG16 feature maps (7x7x512 at 224x224 input; 5x5x512 at 160 ...),
on the Keras 3 API. A head takes the shape of its training features.

- ``pooled`` (default): global average pooling -> per-channel standardisation
  -> Dense 64 (relu) with dropout -> softmax; five of them trained from
  different seeds and averaged. A single small head's scores on unseen videos
  swing with its random seed (on Trump.mp4, 12 to 18 of 18 frames); the
  average of five is stable. Frame threshold 0.4: the verdict rule (1/3 of
  frames) absorbs isolated false positives, so frames favour recall.
- ``seed``: the tutorial's head: Flatten -> Dense 1024/512/256 (sigmoid) with
  dropout -> softmax, on features scaled by their training maximum. Threshold
  0.5 as in the tutorial.

Measured numbers and the command that reproduces them: README, "Classifier
accuracy".
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from workers.detect.runtime import keras as keras_runtime

HEADS = ("pooled", "seed")
DEFAULT_HEAD = "pooled"
DEFAULT_THRESHOLD = {"pooled": 0.4, "seed": 0.5}
ENSEMBLE_SIZE = {"pooled": 5, "seed": 1}


def build_member(kind: str, n_classes: int, features: np.ndarray, seed: int = 0):
    """One compiled, untrained head; ``features`` (training feature maps) set its input scaling."""
    keras = keras_runtime()
    layers = keras.layers
    keras.utils.set_random_seed(seed)
    inputs = keras.Input(shape=np.shape(features)[1:], name="vgg16_features")
    if kind == "seed":
        # The tutorial divided features by their maximum over the training set.
        peak = float(np.max(features)) or 1.0
        x = layers.Flatten()(layers.Rescaling(1.0 / peak)(inputs))
        for units in (1024, 512, 256):
            x = layers.Dense(units, activation="sigmoid")(x)
            x = layers.Dropout(0.5)(x)
        optimizer = keras.optimizers.Adam(1e-4)
    elif kind == "pooled":
        x = layers.GlobalAveragePooling2D()(inputs)
        # Standardise each channel with statistics of the training set (exact,
        # unlike batch normalisation's running averages on small datasets).
        norm = layers.Normalization(axis=-1, name="standardise")
        norm.adapt(np.asarray(features, np.float32).mean(axis=(1, 2)))
        x = layers.Dropout(0.5)(norm(x))
        x = layers.Dense(64, activation="relu")(x)
        x = layers.Dropout(0.5)(x)
        optimizer = keras.optimizers.Adam(1e-3)
    else:
        raise ValueError(f"unknown head {kind!r}; choose one of {', '.join(HEADS)}")
    outputs = layers.Dense(n_classes, activation="softmax", name="classes")(x)
    model = keras.Model(inputs, outputs, name=f"head_{kind}_{seed}")
    model.compile(optimizer=optimizer, loss="sparse_categorical_crossentropy")
    return model


def fit_head(
    kind: str,
    features: np.ndarray,
    labels: np.ndarray,
    n_classes: int,
    epochs: int,
    batch_size: int = 32,
    seed: int = 0,
    on_epoch: Callable[[int], None] | None = None,
):
    """Train the head (all ensemble members) and return one inference model
    mapping feature maps to class probabilities. ``on_epoch(member)`` is called
    after each epoch of each member (progress: ``ENSEMBLE_SIZE[kind] * epochs`` calls)."""
    keras = keras_runtime()
    members = []
    for i in range(ENSEMBLE_SIZE[kind]):
        member = build_member(kind, n_classes, features, seed=seed + i)
        callbacks = [keras.callbacks.LambdaCallback(on_epoch_end=lambda _e, _logs, i=i: on_epoch(i))] if on_epoch else []
        member.fit(features, labels, epochs=epochs, batch_size=batch_size, verbose=0, shuffle=True, callbacks=callbacks)
        members.append(member)
    if len(members) == 1:
        return members[0]
    inputs = keras.Input(shape=np.shape(features)[1:], name="vgg16_features")
    outputs = keras.layers.Average(name="ensemble_mean")([m(inputs) for m in members])
    return keras.Model(inputs, outputs, name=f"head_{kind}_x{len(members)}")
