"""VGG16 (ImageNet, no top) as a shared feature extractor, on the Keras 3 API.

No ``tf.*`` call here: the same code runs on the TensorFlow backend (default)
and on JAX. A backbone is identified by its weights' hash and its input
preprocessing; a classifier head records that identity and refuses to score
features from another backbone (see ``ClassifierTarget.check_extractor``).

How the forward pass is computed (precision: float32, bfloat16, int8; runtime:
Keras, or the Keras model exported to ONNX Runtime / OpenVINO) is not part of
the identity: a precision is offered only where the agreement gate
(``tests/test_backbone_agreement.py``) shows the float32 head's verdicts hold.
"""

from __future__ import annotations

import hashlib
import logging
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

from workers.detect.base import Extractor
from workers.detect.views import FrameView, resize
from workers.errors import BackboneUnavailable, BadInputSize

INPUT_SIZE = (224, 224)
# What the classifier kind reads: each frame squashed to 224x224 once, kept lossless (a VGG16 of
# another input size resizes that copy: ``resize_for_backbone``).
VIEW = FrameView(size=INPUT_SIZE, colour="rgb", encoding="lossless")
FEATURE_SHAPE = (7, 7, 512)
KEY = "vgg16"  # the extractor key of the 224x224 backbone; other sizes: "vgg16@160" (``backbone_key``)
INPUT_SIDES = range(64, 449, 32)  # VGG16 halves the input five times: multiples of 32
# Keras' own notop file (weights="imagenet"): its published md5, so that the
# identity is known without downloading or hashing the file.
KERAS_IMAGENET_ID = "keras-imagenet:6d6bbae143d832006294945121d1f1fc"
RANDOM_PREFIX = "random"
log = logging.getLogger(__name__)
PRECISIONS = ("float32", "bfloat16", "int8")
RUNTIMES = ("keras", "onnxruntime", "openvino")
# What each runtime computes here (bfloat16 on OpenVINO: its bf16 inference hint, bench only).
RUNTIME_PRECISIONS = {
    "keras": ("float32", "bfloat16"),
    "onnxruntime": ("float32", "int8"),
    "openvino": ("float32", "bfloat16", "int8"),
}

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
    def from_dict(cls, d: dict) -> BackboneIdentity:
        return cls(
            architecture=d["architecture"],
            weights=d["weights"],
            weights_id=d["weights_id"],
            preprocessing=d["preprocessing"],
            input_size=tuple(d["input_size"]),
        )

    def same_as(self, other: BackboneIdentity) -> bool:
        return (self.architecture, self.weights_id, self.preprocessing, tuple(self.input_size)) == (
            other.architecture,
            other.weights_id,
            other.preprocessing,
            tuple(other.input_size),
        )

    def describe(self) -> str:
        size = "" if tuple(self.input_size) == INPUT_SIZE else f" input={self.input_size[0]}x{self.input_size[1]}"
        return f"{self.architecture} weights={self.weights} ({self.weights_id[:24]}) preprocessing={self.preprocessing}{size}"


def input_size_of(side: int) -> tuple[int, int]:
    """The (w, h) input of a square VGG16 of ``side`` pixels (the --input-size option)."""
    if side not in INPUT_SIDES:
        raise BadInputSize(f"input size {side}: use a multiple of 32 from {INPUT_SIDES[0]} to {INPUT_SIDES[-1]} (default 224)")
    return (side, side)


def feature_shape(input_size: tuple[int, int] = INPUT_SIZE) -> tuple[int, int, int]:
    """VGG16's feature map for an input of ``input_size`` (w, h): 224 -> 7x7x512, 160 -> 5x5x512."""
    return (input_size[1] // 32, input_size[0] // 32, FEATURE_SHAPE[2])


def backbone_key(input_size: tuple[int, int]) -> str:
    """The extractor key of a VGG16 of that input: ``vgg16`` at 224x224, ``vgg16@160`` otherwise
    (one backbone, and one forward pass per batch, per size); ``parse_backbone_key`` reads it."""
    w, h = input_size
    if (w, h) == INPUT_SIZE:
        return KEY
    return f"{KEY}@{w}" if w == h else f"{KEY}@{w}x{h}"


def parse_backbone_key(key: str) -> tuple[int, int] | None:
    """The input size a ``backbone_key`` names, or None when ``key`` is no VGG16 key."""
    name, _, size = key.partition("@")
    if name != KEY:
        return None
    if not size:
        return INPUT_SIZE
    w, _, h = size.partition("x")
    try:
        return (int(w), int(h or w))
    except ValueError:
        return None


@lru_cache(maxsize=8)
def _file_sha256(path: str, size: int, mtime: float) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


def resolve_identity(weights: str, preprocessing: str | None, seed: int = 0, input_size: tuple[int, int] = INPUT_SIZE) -> BackboneIdentity:
    """Identity of the backbone these settings describe (no model is built)."""
    input_size = tuple(input_size_of(side)[0] for side in input_size)  # BadInputSize for a side VGG16 cannot take
    if weights == "imagenet":
        return BackboneIdentity("vgg16", "imagenet", KERAS_IMAGENET_ID, preprocessing or "caffe", input_size)
    if weights == RANDOM_PREFIX:
        return BackboneIdentity("vgg16", "random", f"random:seed={seed}", preprocessing or "caffe", input_size)
    path = Path(weights).expanduser()
    if not path.is_file():
        raise BackboneUnavailable(f"VGG16 weights file not found: {path}; {_HOW_TO}")
    if preprocessing not in ("caffe", "torch"):
        raise BackboneUnavailable(
            f"VGG16 weights file {path.name} needs its preprocessing: --backbone-preprocessing torch|caffe (or TT_VGG16_PREPROCESSING)"
        )
    st = path.stat()
    sha = _file_sha256(str(path.resolve()), st.st_size, st.st_mtime)
    return BackboneIdentity("vgg16", path.name, f"sha256:{sha}", preprocessing, input_size)


def resize_frame(image: np.ndarray, size: tuple[int, int] = INPUT_SIZE) -> np.ndarray:
    """Squash an RGB uint8 frame to ``size`` (w, h), VGG16's input by default (``views.resize``:
    a frame already that size is returned as it is)."""
    return resize(image, size)


def resize_for_backbone(images: Sequence[np.ndarray], size: tuple[int, int] = INPUT_SIZE) -> np.ndarray:
    """Each RGB frame resized to ``size``, as one float32 batch. Another size than 224 is
    resized from the frame's 224x224 copy (the one the pipeline's frame batch stores), so
    that a full frame (scan, training images) and that copy give the same pixels."""
    out = np.empty((len(images), size[1], size[0], 3), dtype=np.float32)
    for i, img in enumerate(images):
        out[i] = resize_frame(resize_frame(img), size)
    return out


# Keras' ImageNet preprocessing constants (keras.applications.imagenet_utils), per channel.
_CAFFE_BGR_MEAN = np.array([103.939, 116.779, 123.68], np.float32)
_TORCH_MEAN = np.array([0.485, 0.456, 0.406], np.float32)
_TORCH_STD = np.array([0.229, 0.224, 0.225], np.float32)


def preprocess(batch: np.ndarray, mode: str) -> np.ndarray:
    """Keras' ImageNet preprocessing (``caffe``: BGR mean-subtracted; ``torch``: RGB normalised),
    in NumPy, into a new float32 array: the same numbers as ``preprocess_input`` (tested), without
    importing TensorFlow, which a process running VGG16 on OpenVINO otherwise never needs (3-4 s)."""
    x = np.array(batch, np.float32)
    if mode == "torch":
        x /= np.float32(255.0)
        x -= _TORCH_MEAN
        x /= _TORCH_STD
        return x
    x = np.ascontiguousarray(x[..., ::-1])  # RGB -> BGR
    x -= _CAFFE_BGR_MEAN
    return x


class VGG16Backbone(Extractor):
    """VGG16 conv blocks; ``extract`` returns (N, 7, 7, 512) float32 feature maps at
    224x224 (``input_size`` (w, h) another multiple of 32: (N, h/32, w/32, 512))."""

    key = KEY

    def __init__(
        self,
        weights: str = "imagenet",
        preprocessing: str | None = None,
        seed: int = 0,
        precision: str = "float32",
        input_size: tuple[int, int] = INPUT_SIZE,
        runtime: str = "auto",
        cache_dir: Path | str | None = None,
    ) -> None:
        super().__init__()
        self.weights = weights
        self.seed = seed
        self.precision = resolve_precision(precision)
        self.runtime = resolve_runtime(runtime, self.precision)
        self.cache_dir = Path(cache_dir) if cache_dir is not None else None
        self._identity = resolve_identity(weights, preprocessing, seed, input_size)
        self.key = backbone_key(self._identity.input_size)
        self.model = None
        self._run: Callable[[np.ndarray], np.ndarray] | None = None
        self._pad_batches = True

    @property
    def variant(self) -> str:
        """How features are computed: ``float32``/``bfloat16`` on Keras, else ``int8@openvino`` ..."""
        return self.precision if self.runtime == "keras" else f"{self.precision}@{self.runtime}"

    @property
    def computation(self) -> str:
        """``variant`` plus what else changes the numbers: the int8 model's calibration and
        quantisation, and a cap on oneDNN's instruction set (other int8/bfloat16 kernels)."""
        parts = [self.variant]
        if self.precision == "int8":
            from workers.detect.onnx_backbone import CALIBRATION_ID, QUANTISATION

            parts += [CALIBRATION_ID, QUANTISATION]
        isa = os.environ.get("ONEDNN_MAX_CPU_ISA")
        if isa and self.variant != "float32":  # Keras float32's features move by ~1e-6 only
            parts.append(f"isa={isa}")
        return "|".join(parts)

    def describe(self) -> str:
        """The identity and how it is computed, for log lines."""
        return f"{self._identity.describe()} precision={self.precision} runtime={self.runtime}"

    @property
    def feature_shape(self) -> tuple[int, int, int]:
        return feature_shape(self._identity.input_size)

    @property
    def identity(self) -> dict:
        return self._identity.to_dict()

    @property
    def backbone_identity(self) -> BackboneIdentity:
        return self._identity

    def _load(self) -> None:
        log.info("VGG16 backbone: %s", self.describe())
        if self.runtime != "keras":
            self._load_exported()
            return
        from workers.detect.runtime import keras as keras_runtime

        keras = keras_runtime()
        self.model = self._keras_model("mixed_bfloat16" if self.precision == "bfloat16" else "float32")
        # JAX compiles once per input shape: pad batches to a few sizes there. TensorFlow
        # relaxes the batch dimension after a few shapes, and padding would only cost
        # (a 9-frame batch: 0.12 s as it is, 0.21 s padded to 16, bfloat16 here).
        self._pad_batches = keras.backend.backend() != "tensorflow"
        self._run = self.model.predict_on_batch

    def _load_exported(self) -> None:
        """The float32 Keras model exported to ONNX (and quantised for int8), cached on disk."""
        from workers.detect import onnx_backbone
        from workers.settings import get_settings

        ident = self._identity
        self._run = onnx_backbone.load(
            onnx_backbone.ModelKey(ident.weights_id, ident.preprocessing, tuple(ident.input_size), self.precision),
            runtime=self.runtime,
            cache_dir=self.cache_dir or get_settings().backbones_dir,
            build_model=lambda: self._keras_model("float32"),
            prepare=lambda images: preprocess(resize_for_backbone(images, ident.input_size), ident.preprocessing),
        )
        self._pad_batches = False

    def _keras_model(self, policy: str):
        """The Keras VGG16 built under dtype ``policy``: layers take the global policy when
        they are built, so it is set for the build and restored after."""
        from workers.detect.runtime import keras as keras_runtime

        keras = keras_runtime()
        previous = keras.mixed_precision.global_policy()
        keras.mixed_precision.set_global_policy(policy)
        try:
            return self._build(keras, (*self._identity.input_size[::-1], 3))
        finally:
            keras.mixed_precision.set_global_policy(previous)

    def _build(self, keras, shape):
        if self.weights == "imagenet":
            try:
                model = keras.applications.VGG16(include_top=False, weights="imagenet", input_shape=shape)
            except Exception as exc:  # no network, proxy, corrupt download ...
                raise BackboneUnavailable(f"cannot get Keras' ImageNet VGG16 weights ({type(exc).__name__}: {exc}); {_HOW_TO}") from None
        else:
            if self.weights == RANDOM_PREFIX:
                keras.utils.set_random_seed(self.seed)
            model = keras.applications.VGG16(include_top=False, weights=None, input_shape=shape)
            if self.weights != RANDOM_PREFIX:
                try:
                    model.load_weights(str(Path(self.weights).expanduser()))
                except Exception as exc:
                    raise BackboneUnavailable(
                        f"cannot load VGG16 weights from {self.weights}: {exc}; expected a Keras 3 .weights.h5 for VGG16(include_top=False)"
                    ) from None
        return model

    def extract(self, images: Sequence[np.ndarray]) -> np.ndarray:
        return self.features(preprocess(resize_for_backbone(images, self._identity.input_size), self._identity.preprocessing))

    def warm(self, batch_size: int) -> None:
        """Trace the forward pass for every power-of-two batch size up to ``batch_size``
        (after these, TensorFlow traces no more; JAX sees only these)."""
        self.load()
        n = 1
        while True:
            self.features(np.zeros((n, *self._identity.input_size[::-1], 3), np.float32))
            if n >= batch_size:
                break
            n *= 2

    def features(self, batch: np.ndarray) -> np.ndarray:
        """Forward pass on a preprocessed batch; on backends that compile per
        shape (JAX), padded to a power of two so that only a handful are compiled."""
        self.load()
        n = len(batch)
        if n == 0:
            return np.zeros((0, *self.feature_shape), np.float32)
        padded = 1 << (n - 1).bit_length() if self._pad_batches else n
        if padded != n:
            batch = np.concatenate([batch, np.zeros((padded - n, *batch.shape[1:]), batch.dtype)])
        out = self._run(np.ascontiguousarray(batch, dtype=np.float32))
        return np.asarray(out, dtype=np.float32)[:n]


# ONEDNN_MAX_CPU_ISA values that keep oneDNN (TensorFlow's, OpenVINO's) from bfloat16 dot products.
_ISA_WITHOUT_BF16 = ("SSE41", "AVX", "AVX2", "AVX2_VNNI", "AVX2_VNNI_2", "AVX512_CORE", "AVX512_CORE_VNNI")


@dataclass(frozen=True)
class Hardware:
    """What the precision choice depends on, read once (``detect``) or given (tests)."""

    cpu_flags: frozenset[str]
    max_cpu_isa: str = ""  # ONEDNN_MAX_CPU_ISA
    gpu: bool = False
    int8_runtime: bool = False  # Keras on TensorFlow, and OpenVINO or ONNX Runtime + tf2onnx installed

    @classmethod
    def detect(cls, cpuinfo: str | None = None, environ: Mapping[str, str] | None = None) -> Hardware:
        environ = os.environ if environ is None else environ
        if cpuinfo is None:
            try:
                cpuinfo = Path("/proc/cpuinfo").read_text()
            except OSError:
                cpuinfo = ""
        flags = frozenset(w for line in cpuinfo.splitlines() if line.startswith("flags") for w in line.split(":", 1)[-1].split())
        gpu = environ.get("CUDA_VISIBLE_DEVICES", "unset") not in ("", "-1") and Path("/dev/nvidia0").exists()
        from workers.detect.onnx_backbone import int8_available

        return cls(flags, environ.get("ONEDNN_MAX_CPU_ISA", ""), gpu, int8_available(environ))

    def fast_bfloat16(self) -> bool:
        """AMX or AVX512-BF16 that oneDNN may use, or a GPU."""
        if self.gpu:
            return True
        cpu = "amx_bf16" in self.cpu_flags or "avx512_bf16" in self.cpu_flags
        return cpu and self.max_cpu_isa.strip().upper() not in _ISA_WITHOUT_BF16


def resolve_precision(precision: str, hardware: Hardware | None = None) -> str:
    """``auto``: bfloat16 where it is fast, else int8 where an int8 runtime is installed, else float32."""
    if precision == "auto":
        hw = hardware or Hardware.detect()
        return "bfloat16" if hw.fast_bfloat16() else "int8" if hw.int8_runtime else "float32"
    if precision not in PRECISIONS:
        raise ValueError(f"unknown precision {precision!r}: use auto, {', '.join(PRECISIONS)}")
    return precision


def resolve_runtime(runtime: str, precision: str) -> str:
    """``auto``: Keras for float32/bfloat16, OpenVINO (else ONNX Runtime) for int8."""
    if runtime == "auto":
        if precision != "int8":
            return "keras"
        from workers.detect.onnx_backbone import installed

        return "openvino" if installed("openvino") or not installed("onnxruntime") else "onnxruntime"
    if runtime not in RUNTIMES:
        raise ValueError(f"unknown VGG16 runtime {runtime!r}: use auto, {', '.join(RUNTIMES)}")
    if precision not in RUNTIME_PRECISIONS[runtime]:  # a setting the user can fix: one line, no traceback
        raise BackboneUnavailable(
            f"VGG16 runtime {runtime} does not compute {precision}: it runs "
            f"{' or '.join(RUNTIME_PRECISIONS[runtime])} (TT_VGG16_PRECISION / TT_VGG16_RUNTIME)"
        )
    return runtime
