"""VGG16 on ONNX Runtime and OpenVINO (float32, int8) against Keras float32, the
converted-model cache, and how ``auto`` picks a precision from the hardware.

Random weights keep this fast; the verdict-level agreement on real weights is
``tests/test_backbone_agreement.py``.
"""

from __future__ import annotations

import numpy as np
import pytest

from workers.detect import onnx_backbone
from workers.detect.backbone import Hardware, VGG16Backbone, resolve_precision, resolve_runtime
from workers.errors import BackboneUnavailable

pytest.importorskip("tf2onnx")
pytest.importorskip("onnxruntime")


@pytest.fixture(scope="module")
def frames():
    rng = np.random.default_rng(3)
    # Smooth images (like photos) rather than noise: int8 is calibrated on photos.
    base = [onnx_backbone.calibration_images(3)[i] for i in range(3)]
    return base + [rng.integers(0, 255, (200, 260, 3), dtype=np.uint8)]


@pytest.fixture(scope="module")
def runs(tmp_path_factory, frames):
    """Keras float32 features, and every exported runtime's, sharing one cache (one export)."""
    cache = tmp_path_factory.mktemp("backbones")
    out = {"keras": VGG16Backbone("random", precision="float32").extract(frames)}
    for precision, runtime in (("float32", "onnxruntime"), ("float32", "openvino"), ("int8", "onnxruntime"), ("int8", "openvino")):
        if runtime == "openvino" and not onnx_backbone.installed("openvino"):
            continue
        out[f"{precision}@{runtime}"] = VGG16Backbone("random", precision=precision, runtime=runtime, cache_dir=cache).extract(frames)
    return cache, out


def test_float32_runtimes_compute_the_keras_features(runs):
    _, out = runs
    ref = out["keras"]
    for name in ("float32@onnxruntime", "float32@openvino"):
        if name in out:
            assert out[name].shape == ref.shape and out[name].dtype == np.float32
            np.testing.assert_allclose(out[name], ref, rtol=1e-3, atol=1e-4 * np.abs(ref).max())


def test_int8_features_follow_float32(runs):
    _, out = runs
    ref = out["keras"]
    for name in ("int8@onnxruntime", "int8@openvino"):
        if name in out:
            got = out[name]
            assert got.shape == ref.shape == (4, 7, 7, 512) and got.dtype == np.float32
            assert np.corrcoef(got.ravel(), ref.ravel())[0, 1] > 0.99
            assert np.abs(got - ref).max() < 0.1 * np.abs(ref).max()
            assert not np.array_equal(got, ref)  # it is quantised


def test_a_cached_model_is_not_converted_again(runs, frames):
    cache, out = runs
    files = sorted(cache.glob("*.onnx"))
    assert [f.name.split("-")[1] for f in files] == ["float32", "int8"]  # one export, one quantisation
    assert not list(cache.glob(".*"))  # no temporary files left
    before = {f: (f.stat().st_ino, f.stat().st_mtime_ns) for f in files}
    done = dict(onnx_backbone.conversions)
    again = VGG16Backbone("random", precision="int8", runtime="onnxruntime", cache_dir=cache).extract(frames)
    np.testing.assert_array_equal(again, out["int8@onnxruntime"])
    assert onnx_backbone.conversions == done
    assert {f: (f.stat().st_ino, f.stat().st_mtime_ns) for f in files} == before


def test_another_identity_gets_another_cached_model(tmp_path):
    key = onnx_backbone.ModelKey("random:seed=0", "caffe", (224, 224), "int8")
    other = onnx_backbone.ModelKey("random:seed=1", "caffe", (224, 224), "int8")
    smaller = onnx_backbone.ModelKey("random:seed=0", "caffe", (160, 160), "int8")
    paths = {onnx_backbone.model_path(tmp_path, k) for k in (key, other, smaller)}
    assert len(paths) == 3
    # bfloat16 on OpenVINO runs the float32 file with a hint: no file of its own.
    f32 = onnx_backbone.ModelKey("random:seed=0", "caffe", (224, 224), "float32")
    bf16 = onnx_backbone.ModelKey("random:seed=0", "caffe", (224, 224), "bfloat16")
    assert onnx_backbone.model_path(tmp_path, f32) == onnx_backbone.model_path(tmp_path, bf16)


def test_int8_keeps_the_float_identity_and_says_how_it_runs(tmp_path):
    f32 = VGG16Backbone("random", precision="float32")
    int8 = VGG16Backbone("random", precision="int8", runtime="openvino", cache_dir=tmp_path)
    assert int8.identity == f32.identity  # a precision, like bfloat16 (the agreement gate allows it)
    assert "precision=int8 runtime=openvino" in int8.describe()
    assert (f32.variant, int8.variant) == ("float32", "int8@openvino")


def test_calibration_images_are_fixed_photos():
    a, b = onnx_backbone.calibration_images(), onnx_backbone.calibration_images()
    assert len(a) == onnx_backbone.CALIBRATION_IMAGES == 64
    assert all(x.dtype == np.uint8 and x.ndim == 3 and x.shape[2] == 3 for x in a)
    assert all(np.array_equal(x, y) for x, y in zip(a, b))
    assert len({x.tobytes()[:4096] for x in a}) == len(a)


AMX = frozenset({"avx2", "avx512f", "avx512_bf16", "amx_bf16", "amx_tile"})
BF16 = frozenset({"avx2", "avx512f", "avx512_vnni", "avx512_bf16"})
AVX2 = frozenset({"avx", "avx2", "fma"})


@pytest.mark.parametrize(
    "flags, isa, gpu, int8, expected",
    [
        (AMX, "", False, True, "bfloat16"),
        (BF16, "", False, True, "bfloat16"),
        (BF16, "AVX512_CORE_BF16", False, True, "bfloat16"),
        (AMX, "avx512_core_amx", False, True, "bfloat16"),
        (BF16, "AVX2", False, True, "int8"),  # oneDNN limited below bfloat16
        (AMX, "AVX512_CORE_VNNI", False, True, "int8"),
        (BF16, "SSE41", False, False, "float32"),
        (AVX2, "", False, True, "int8"),
        (AVX2, "", False, False, "float32"),
        (AVX2, "AVX2", True, True, "bfloat16"),  # a GPU
    ],
)
def test_auto_precision_follows_the_hardware(flags, isa, gpu, int8, expected):
    assert resolve_precision("auto", Hardware(flags, isa, gpu, int8)) == expected


def test_hardware_is_read_from_cpuinfo_and_the_environment():
    cpuinfo = "processor\t: 0\nflags\t\t: fpu avx2 avx512f avx512_bf16\n\nprocessor\t: 1\nflags\t\t: fpu avx2\n"
    hw = Hardware.detect(cpuinfo, {"ONEDNN_MAX_CPU_ISA": "AVX2", "CUDA_VISIBLE_DEVICES": "-1", "KERAS_BACKEND": "jax"})
    assert "avx512_bf16" in hw.cpu_flags and hw.max_cpu_isa == "AVX2" and not hw.gpu
    assert not hw.int8_runtime  # the export needs the TensorFlow backend
    assert not hw.fast_bfloat16()
    assert Hardware.detect(cpuinfo, {"KERAS_BACKEND": "tensorflow", "CUDA_VISIBLE_DEVICES": "-1"}).fast_bfloat16()


def test_runtimes_and_precisions_that_do_not_go_together_are_refused():
    assert resolve_runtime("auto", "float32") == resolve_runtime("auto", "bfloat16") == "keras"
    assert resolve_runtime("auto", "int8") in ("openvino", "onnxruntime")
    for runtime, precision in (("onnxruntime", "bfloat16"), ("keras", "int8")):
        with pytest.raises(BackboneUnavailable, match=f"runtime {runtime} does not compute {precision}"):
            VGG16Backbone("random", precision=precision, runtime=runtime)
    with pytest.raises(ValueError, match="unknown VGG16 runtime 'tflite'"):
        resolve_runtime("tflite", "float32")
    with pytest.raises(ValueError, match="unknown precision 'int4'"):
        resolve_precision("int4")


def test_export_needs_the_tensorflow_backend(tmp_path, monkeypatch):
    class NotTensorFlow:
        class backend:
            @staticmethod
            def backend():
                return "jax"

    monkeypatch.setattr("workers.detect.runtime.keras", lambda: NotTensorFlow)
    with pytest.raises(BackboneUnavailable, match="needs the TensorFlow Keras backend .*TT_VGG16_RUNTIME=keras"):
        onnx_backbone.export_float32(lambda: None, (224, 224), tmp_path / "x.onnx")


def test_a_missing_package_is_named(monkeypatch):
    monkeypatch.setattr(onnx_backbone, "installed", lambda package: package != "openvino")
    with pytest.raises(BackboneUnavailable, match="needs openvino: pip install openvino"):
        onnx_backbone.session(__file__, "openvino", "int8")
