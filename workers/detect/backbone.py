"""VGG16 (ImageNet, no top) as a shared feature extractor, on the Keras 3 API.

No ``tf.*`` call here: the same code runs on the TensorFlow backend (default)
and on JAX. A backbone is identified by its weights' hash and its input
preprocessing; a classifier head records that identity and refuses to score
features from another backbone (see ``ClassifierTarget.check_extractor``).
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import asdict, dataclass
from functools import lru_cache
from pathlib import Path
from typing import Sequence

import numpy as np

from workers.detect.base import Extractor
from workers.errors import BackboneUnavailable

INPUT_SIZE = (224, 224)
FEATURE_SHAPE = (7, 7, 512)
# Keras' own notop file (weights="imagenet"): its published md5, so that the
# identity is known without downloading or hashing the file.
KERAS_IMAGENET_ID = "keras-imagenet:6d6bbae143d832006294945121d1f1fc"
RANDOM_PREFIX = "random"

_HOW_TO = (
    "set --backbone-weights PATH --backbone-preprocessing torch|caffe "
    "(or TT_VGG16_WEIGHTS / TT_VGG16_PREPROCESSING) to use a local weights file"
)


@dataclass(frozen=True)
class BackboneIdentity:
    """What a head was trained on; two backbones are interchangeable iff equal."""

    architecture: str
    weights: str  # "imagenet", a file name, or "random"
    weights_id: str  # content identity of the weights
    preprocessing: str  # "caffe" | "torch"
    input_size: tuple[int, int] = INPUT_SIZE

    def to_dict(self) -> dict:
        d = asdict(self)
        d["input_size"] = list(self.input_size)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "BackboneIdentity":
        return cls(
            architecture=d["architecture"],
            weights=d["weights"],
            weights_id=d["weights_id"],
            preprocessing=d["preprocessing"],
            input_size=tuple(d["input_size"]),
        )

    def same_as(self, other: "BackboneIdentity") -> bool:
        return (self.architecture, self.weights_id, self.preprocessing, tuple(self.input_size)) == (
            other.architecture,
            other.weights_id,
            other.preprocessing,
            tuple(other.input_size),
        )

    def describe(self) -> str:
        return f"{self.architecture} weights={self.weights} ({self.weights_id[:24]}) preprocessing={self.preprocessing}"


@lru_cache(maxsize=8)
def _file_sha256(path: str, size: int, mtime: float) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


def resolve_identity(weights: str, preprocessing: str | None, seed: int = 0) -> BackboneIdentity:
    """Identity of the backbone these settings describe (no model is built)."""
    if weights == "imagenet":
        return BackboneIdentity("vgg16", "imagenet", KERAS_IMAGENET_ID, preprocessing or "caffe")
    if weights == RANDOM_PREFIX:
        return BackboneIdentity("vgg16", "random", f"random:seed={seed}", preprocessing or "caffe")
    path = Path(weights).expanduser()
    if not path.is_file():
        raise BackboneUnavailable(f"VGG16 weights file not found: {path}; {_HOW_TO}")
    if preprocessing not in ("caffe", "torch"):
        raise BackboneUnavailable(
            f"VGG16 weights file {path.name} needs its preprocessing: "
            "--backbone-preprocessing torch|caffe (or TT_VGG16_PREPROCESSING)"
        )
    st = path.stat()
    sha = _file_sha256(str(path.resolve()), st.st_size, st.st_mtime)
    return BackboneIdentity("vgg16", path.name, f"sha256:{sha}", preprocessing)


def resize_frame(image: np.ndarray, size: tuple[int, int] = INPUT_SIZE) -> np.ndarray:
    """Squash an RGB uint8 frame to ``size`` (w, h), as the tutorial did; frames
    already at that size are returned as they are (so resizing twice is exact)."""
    if (image.shape[1], image.shape[0]) == tuple(size):
        return image
    import cv2  # here, so the backbone imports where only Keras and NumPy are installed (bench/gpu_score.py)

    return cv2.resize(image, tuple(size), interpolation=cv2.INTER_AREA)


def resize_for_backbone(images: Sequence[np.ndarray], size: tuple[int, int] = INPUT_SIZE) -> np.ndarray:
    """Each RGB frame resized to ``size``, as one float32 batch."""
    out = np.empty((len(images), size[1], size[0], 3), dtype=np.float32)
    for i, img in enumerate(images):
        out[i] = resize_frame(img, size)
    return out


def preprocess(batch: np.ndarray, mode: str) -> np.ndarray:
    """Keras' ImageNet preprocessing (``caffe``: BGR mean-subtracted; ``torch``: RGB normalised)."""
    from workers.detect.runtime import keras

    return keras().applications.imagenet_utils.preprocess_input(batch, data_format="channels_last", mode=mode)


class VGG16Backbone(Extractor):
    """VGG16 conv blocks; ``extract`` returns (N, 7, 7, 512) float32 feature maps."""

    key = "vgg16"

    def __init__(
        self, weights: str = "imagenet", preprocessing: str | None = None, seed: int = 0, precision: str = "float32"
    ) -> None:
        super().__init__()
        self.weights = weights
        self.seed = seed
        self.precision = resolve_precision(precision)
        self._identity = resolve_identity(weights, preprocessing, seed)
        self.model = None
        self._pad_batches = True

    @property
    def identity(self) -> dict:
        return self._identity.to_dict()

    @property
    def backbone_identity(self) -> BackboneIdentity:
        return self._identity

    def _load(self) -> None:
        from workers.detect.runtime import keras as keras_runtime

        keras = keras_runtime()

        shape = (*INPUT_SIZE[::-1], 3)
        previous = keras.mixed_precision.global_policy()
        # Layers take the global dtype policy when they are built; restore it after.
        keras.mixed_precision.set_global_policy("mixed_bfloat16" if self.precision == "bfloat16" else "float32")
        try:
            self.model = self._build(keras, shape)
        finally:
            keras.mixed_precision.set_global_policy(previous)
        # JAX compiles once per input shape: pad batches to a few sizes there. TensorFlow
        # relaxes the batch dimension after a few shapes, and padding would only cost
        # (a 9-frame batch: 0.12 s as it is, 0.21 s padded to 16, bfloat16 here).
        self._pad_batches = keras.backend.backend() != "tensorflow"

    def _build(self, keras, shape):
        if self.weights == "imagenet":
            try:
                model = keras.applications.VGG16(include_top=False, weights="imagenet", input_shape=shape)
            except Exception as exc:  # no network, proxy, corrupt download ...
                raise BackboneUnavailable(
                    f"cannot get Keras' ImageNet VGG16 weights ({type(exc).__name__}: {exc}); {_HOW_TO}"
                ) from None
        else:
            if self.weights == RANDOM_PREFIX:
                keras.utils.set_random_seed(self.seed)
            model = keras.applications.VGG16(include_top=False, weights=None, input_shape=shape)
            if self.weights != RANDOM_PREFIX:
                try:
                    model.load_weights(str(Path(self.weights).expanduser()))
                except Exception as exc:
                    raise BackboneUnavailable(
                        f"cannot load VGG16 weights from {self.weights}: {exc}; "
                        "expected a Keras 3 .weights.h5 for VGG16(include_top=False)"
                    ) from None
        return model

    def extract(self, images: Sequence[np.ndarray]) -> np.ndarray:
        return self.features(preprocess(resize_for_backbone(images), self._identity.preprocessing))

    def warm(self, batch_size: int) -> None:
        """Trace the forward pass for every power-of-two batch size up to ``batch_size``
        (after these, TensorFlow traces no more; JAX sees only these)."""
        self.load()
        n = 1
        while True:
            self.features(np.zeros((n, *INPUT_SIZE[::-1], 3), np.float32))
            if n >= batch_size:
                break
            n *= 2

    def features(self, batch: np.ndarray) -> np.ndarray:
        """Forward pass on a preprocessed batch; on backends that compile per
        shape (JAX), padded to a power of two so that only a handful are compiled."""
        self.load()
        n = len(batch)
        if n == 0:
            return np.zeros((0, *FEATURE_SHAPE), np.float32)
        padded = 1 << (n - 1).bit_length() if self._pad_batches else n
        if padded != n:
            batch = np.concatenate([batch, np.zeros((padded - n, *batch.shape[1:]), batch.dtype)])
        out = self.model.predict_on_batch(batch)
        return np.asarray(out, dtype=np.float32)[:n]


def hardware_bfloat16() -> bool:
    """True where bfloat16 matrix work is fast: x86 CPUs with AMX or AVX512-BF16, or a visible GPU."""
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        flags = ""
    if "amx_bf16" in flags or "avx512_bf16" in flags:
        return True
    return bool(os.environ.get("CUDA_VISIBLE_DEVICES", "unset") not in ("", "-1") and Path("/dev/nvidia0").exists())


def resolve_precision(precision: str) -> str:
    if precision == "auto":
        return "bfloat16" if hardware_bfloat16() else "float32"
    if precision not in ("float32", "bfloat16"):
        raise ValueError(f"unknown precision {precision!r}: use auto, float32 or bfloat16")
    return precision
