"""VGG16 on ONNX Runtime or OpenVINO: export, int8 quantisation, on-disk cache, inference.

Most CPUs have neither AMX nor AVX512-BF16, and VGG16 in float32 runs at their
float32 limit; static int8 (QDQ, per-channel weights) runs about 4x faster on
OpenVINO or ONNX Runtime with the float32 head's verdicts kept (the agreement
gate, ``tests/test_backbone_agreement.py``). The Keras model is exported with
tf2onnx once per backbone identity and tool versions, quantised with
calibration frames that are not from any test video (scikit-image's bundled
photos), and cached; later loads read the cached file.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import logging
import os
import tempfile
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

import numpy as np

from workers.errors import BackboneUnavailable

log = logging.getLogger(__name__)

INPUT_NAME = "input"
OPSET = 17
CALIBRATION_IMAGES = 64
# Change when the calibration photos, crops or count change: it is part of the cache key.
CALIBRATION_ID = f"skimage-photos-v1-{CALIBRATION_IMAGES}"
# int8 weights in 7 bits: CPUs without VNNI (AVX2 only) multiply uint8 x int8 pairs into int16,
# which saturates with 8-bit weights: measured under ONEDNN_MAX_CPU_ISA=AVX2, OpenVINO int8
# moved seed scores by up to 0.37 and 4 of 79 frames across the threshold. Part of the cache key.
QUANTISATION = "qdq-per-channel-s7-weights-u8-activations-minmax"
_PHOTOS = ("astronaut", "coffee", "chelsea", "rocket", "camera", "hubble_deep_field", "immunohistochemistry", "coins")
_TOOLS = ("tensorflow", "keras", "tf2onnx", "onnx", "onnxruntime")
# How often this process exported or quantised a model (tests: a cached model is not redone).
conversions = {"export": 0, "quantise": 0}


@dataclass(frozen=True)
class ModelKey:
    """What a converted model depends on besides tool versions: the backbone identity and precision."""

    weights_id: str
    preprocessing: str
    input_size: tuple[int, int]
    precision: str  # float32 | bfloat16 | int8


def installed(package: str) -> bool:
    return importlib.util.find_spec(package) is not None


def keras_backend(environ: Mapping[str, str] | None = None) -> str:
    """The Keras backend without importing Keras: ``KERAS_BACKEND``, else keras.json, else tensorflow."""
    environ = os.environ if environ is None else environ
    if environ.get("KERAS_BACKEND"):
        return environ["KERAS_BACKEND"]
    home = Path(environ.get("KERAS_HOME") or Path.home() / ".keras")
    try:
        return json.loads((home / "keras.json").read_text()).get("backend", "tensorflow")
    except (OSError, ValueError):
        return "tensorflow"


def int8_available(environ: Mapping[str, str] | None = None) -> bool:
    """int8 needs the export (TensorFlow backend, tf2onnx) and ORT's quantisation tools."""
    return keras_backend(environ) == "tensorflow" and all(installed(p) for p in ("tensorflow", "tf2onnx", "onnx", "onnxruntime"))


def _require(*packages: str, why: str) -> None:
    missing = [p for p in packages if not installed(p)]
    if missing:
        raise BackboneUnavailable(f"{why} needs {', '.join(missing)}: pip install {' '.join(missing)} (or TT_VGG16_PRECISION=float32)")


def _versions() -> str:
    found = []
    for name in _TOOLS:
        try:
            found.append(f"{name}={metadata.version(name)}")
        except metadata.PackageNotFoundError:
            found.append(f"{name}=none")
    return ",".join(found)


def model_path(cache_dir: Path, key: ModelKey) -> Path:
    """Where the ONNX file for ``key`` lives (bfloat16 runs the float32 file with a bf16 hint)."""
    stored = "int8" if key.precision == "int8" else "float32"
    parts = [key.weights_id, key.preprocessing, f"{key.input_size[0]}x{key.input_size[1]}", stored, _versions()]
    if stored == "int8":
        parts += [CALIBRATION_ID, QUANTISATION]
    digest = hashlib.sha256("|".join(parts).encode()).hexdigest()[:20]
    return Path(cache_dir) / f"vgg16-{stored}-{digest}.onnx"


def _atomic(target: Path, write: Callable[[Path], None]) -> Path:
    """``write`` into a temporary file next to ``target``, then rename: racing workers each
    write a whole file and one wins; a reader never sees half a model."""
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.stem}-", suffix=".onnx", dir=target.parent)
    os.close(fd)
    try:
        write(Path(tmp))
        os.chmod(tmp, 0o644)  # mkstemp's 0600 would hide it from workers running as other users
        os.replace(tmp, target)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return target


def export_float32(build_model: Callable[[], object], input_size: tuple[int, int], out: Path) -> None:
    """The Keras model's forward pass as ONNX (NHWC input named ``input``, dynamic batch)."""
    from workers.detect.runtime import keras as keras_runtime

    keras = keras_runtime()
    if keras.backend.backend() != "tensorflow":
        raise BackboneUnavailable(
            f"the ONNX/int8 VGG16 runtimes export the model with tf2onnx, which needs the TensorFlow "
            f"Keras backend (this is {keras.backend.backend()}): set KERAS_BACKEND=tensorflow or TT_VGG16_RUNTIME=keras"
        )
    _require("tf2onnx", "onnx", why="exporting VGG16 to ONNX")
    import tensorflow as tf
    import tf2onnx

    model = build_model()
    spec = (tf.TensorSpec((None, input_size[1], input_size[0], 3), tf.float32, name=INPUT_NAME),)

    @tf.function(input_signature=spec)
    def forward(x):
        return model(x, training=False)

    tf2onnx.convert.from_function(forward, input_signature=spec, opset=OPSET, output_path=str(out))
    conversions["export"] += 1


def calibration_images(count: int = CALIBRATION_IMAGES) -> list[np.ndarray]:
    """``count`` RGB uint8 views of scikit-image's bundled photos (deterministic crops and
    mirrors): no frame of a seed or test video is among them."""
    from skimage import data

    rng = np.random.default_rng(0)
    photos = []
    for name in _PHOTOS:
        img = np.asarray(getattr(data, name)())
        if img.ndim == 2:
            img = np.stack([img] * 3, axis=-1)
        photos.append(np.ascontiguousarray(img[..., :3]).astype(np.uint8))
    views = []
    for i in range(count):
        img = photos[i % len(photos)]
        h, w = img.shape[:2]
        side = rng.uniform(0.5, 1.0)
        ch, cw = max(32, int(h * side)), max(32, int(w * side * rng.uniform(0.8, 1.2)))
        cw = min(cw, w)
        y, x = rng.integers(0, h - ch + 1), rng.integers(0, w - cw + 1)
        view = img[y : y + ch, x : x + cw]
        views.append(np.ascontiguousarray(view[:, ::-1] if (i // len(photos)) % 2 else view))
    return views


def quantise_int8(float_model: Path, prepare: Callable[[Sequence[np.ndarray]], np.ndarray], out: Path) -> None:
    """Static int8 (QDQ; per-channel weights in 7 bits, uint8 activations, MinMax), calibrated
    on ``calibration_images`` through the backbone's own resize and preprocessing."""
    _require("onnxruntime", "onnx", why="int8 quantisation of VGG16")
    from onnxruntime.quantization import CalibrationDataReader, CalibrationMethod, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    batch = prepare(calibration_images())

    class Frames(CalibrationDataReader):
        def __init__(self) -> None:
            self.rows = iter(batch)

        def get_next(self):
            row = next(self.rows, None)
            return None if row is None else {INPUT_NAME: row[None].astype(np.float32)}

    with tempfile.TemporaryDirectory(dir=out.parent) as tmp:
        pre = Path(tmp) / "pre.onnx"
        quant_pre_process(str(float_model), str(pre))
        quantize_static(
            str(pre),
            str(out),
            Frames(),
            quant_format=QuantFormat.QDQ,
            per_channel=True,
            activation_type=QuantType.QUInt8,
            weight_type=QuantType.QInt8,
            calibrate_method=CalibrationMethod.MinMax,
            reduce_range=True,  # QUANTISATION: no int16 saturation on AVX2 without VNNI
        )
    conversions["quantise"] += 1


def prepare_model(
    key: ModelKey, cache_dir: Path, build_model: Callable[[], object], prepare: Callable[[Sequence[np.ndarray]], np.ndarray]
) -> Path:
    """The cached ONNX file for ``key``, exported (and quantised) the first time."""
    float_path = model_path(cache_dir, ModelKey(key.weights_id, key.preprocessing, key.input_size, "float32"))
    target = model_path(cache_dir, key)
    if target.is_file():
        return target
    log.warning("preparing %s VGG16 (once, ~20 s) in %s", "int8" if key.precision == "int8" else "ONNX", cache_dir)
    if not float_path.is_file():
        _atomic(float_path, lambda tmp: export_float32(build_model, key.input_size, tmp))
    if key.precision == "int8":
        _atomic(target, lambda tmp: quantise_int8(float_path, prepare, tmp))
    return target


def cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def ort_session(path: Path, threads: int) -> Callable[[np.ndarray], np.ndarray]:
    """An ONNX Runtime CPU session of the one-input, one-output model at ``path``, as a function."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    sess = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    name, output = sess.get_inputs()[0].name, sess.get_outputs()[0].name
    return lambda batch: sess.run([output], {name: np.asarray(batch, np.float32)})[0]


def session(path: Path, runtime: str, precision: str) -> Callable[[np.ndarray], np.ndarray]:
    """A function from a preprocessed NHWC float32 batch to its feature maps."""
    if runtime == "onnxruntime":
        _require("onnxruntime", why="TT_VGG16_RUNTIME=onnxruntime")
        return ort_session(path, cores())
    _require("openvino", why="TT_VGG16_RUNTIME=openvino")
    import openvino as ov

    hint = "bf16" if precision == "bfloat16" else "f32"  # int8 QDQ runs int8 kernels under the f32 hint
    try:
        compiled = ov.Core().compile_model(str(path), "CPU", {"INFERENCE_NUM_THREADS": cores(), "INFERENCE_PRECISION_HINT": hint})
    except RuntimeError as exc:  # bf16 where oneDNN may not use AVX512-BF16/AMX (ONEDNN_MAX_CPU_ISA=AVX2 ...)
        lines = [line for line in str(exc).splitlines() if line.strip() and not line.startswith("Exception from")]
        raise BackboneUnavailable(
            f"OpenVINO cannot compile VGG16 for {precision} on this CPU ({lines[-1] if lines else 'no reason given'}); "
            "use TT_VGG16_PRECISION=int8 or float32"
        ) from None
    request, lock = compiled.create_infer_request(), threading.Lock()  # one request: one pass at a time

    def run(batch: np.ndarray) -> np.ndarray:
        with lock:
            return request.infer({0: batch})[0].copy()

    return run


def load(
    key: ModelKey,
    *,
    runtime: str,
    cache_dir: Path,
    build_model: Callable[[], object],
    prepare: Callable[[Sequence[np.ndarray]], np.ndarray],
) -> Callable[[np.ndarray], np.ndarray]:
    """The forward pass of the backbone ``key`` on ``runtime`` (onnxruntime | openvino)."""
    return session(prepare_model(key, Path(cache_dir), build_model, prepare), runtime, key.precision)
