"""A saved classifier scores through its ONNX head: the same probabilities as the
Keras head, and a scan on an exported VGG16 runtime imports no TensorFlow."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from tests.test_classifier_cli import cli_env, colour_folders, json_rows, run_cli
from tests.videos import write_video
from workers.detect.backbone import BackboneIdentity, preprocess
from workers.detect.classifier import ClassifierTarget
from workers.detect.onnx_head import HEAD_ONNX
from workers.errors import BadTarget
from workers.targets.bundle import load_target, save_target
from workers.training.heads import fit_head

RED = (210, 30, 30)


def feature_maps(n: int, seed: int = 0) -> np.ndarray:
    """Stand-ins for VGG16 feature maps: non-negative (after ReLU), sparse, of that scale."""
    rng = np.random.default_rng(seed)
    return (rng.gamma(0.5, 2.0, (n, 7, 7, 512)) * (rng.random((n, 7, 7, 512)) < 0.3)).astype(np.float32)


@pytest.mark.parametrize("kind", ["pooled", "seed"])
def test_the_onnx_head_scores_as_the_keras_head(tmp_path, kind):
    features, labels = feature_maps(24), np.array([0, 1] * 12)
    features[labels == 1, :, :, :64] += 2.0  # something to learn
    head = fit_head(kind, features, labels, 2, epochs=3)
    identity = BackboneIdentity("vgg16", "random", "random:seed=0", "caffe", (224, 224))
    save_target(ClassifierTarget("t", head, identity, ["other", "t"], 1, head_kind=kind), tmp_path)
    assert (tmp_path / "t" / HEAD_ONNX).is_file()

    loaded = load_target(tmp_path, "t")
    assert loaded._head is None  # scoring did not need Keras' copy
    unseen = feature_maps(40, seed=1)
    onnx = loaded.probabilities(unseen)
    keras = np.asarray(head.predict_on_batch(unseen), np.float32)[:, 1]
    assert onnx.shape == (40,) and np.abs(onnx - keras).max() < 1e-5
    assert 0.0 < onnx.std()  # not a saturated, constant output
    assert loaded.fingerprint() == ClassifierTarget("t", head, identity, ["other", "t"], 1).fingerprint()


def test_a_bundle_without_an_onnx_head_is_scored_by_keras(tmp_path):
    features, labels = feature_maps(12), np.array([0, 1] * 6)
    head = fit_head("pooled", features, labels, 2, epochs=1)
    identity = BackboneIdentity("vgg16", "random", "random:seed=0", "caffe", (224, 224))
    save_target(ClassifierTarget("t", head, identity, ["other", "t"], 1), tmp_path)
    (tmp_path / "t" / HEAD_ONNX).unlink()  # a bundle written before head.onnx existed
    loaded = load_target(tmp_path, "t")
    assert loaded._predict is None
    assert np.allclose(loaded.probabilities(features), np.asarray(head.predict_on_batch(features))[:, 1], atol=1e-6)


def test_a_damaged_onnx_head_is_a_damaged_bundle(tmp_path):
    features, labels = feature_maps(12), np.array([0, 1] * 6)
    identity = BackboneIdentity("vgg16", "random", "random:seed=0", "caffe", (224, 224))
    save_target(ClassifierTarget("t", fit_head("pooled", features, labels, 2, epochs=1), identity, ["other", "t"], 1), tmp_path)
    (tmp_path / "t" / HEAD_ONNX).write_bytes(b"not a model")
    with pytest.raises(BadTarget, match=r"damaged bundle \(head.onnx is not a readable ONNX model"):
        load_target(tmp_path, "t")


def test_preprocessing_is_keras_preprocess_input_exactly():
    from workers.detect.runtime import keras

    batch = np.random.default_rng(0).integers(0, 256, (3, 32, 32, 3)).astype(np.uint8)
    for mode in ("caffe", "torch"):
        expected = keras().applications.imagenet_utils.preprocess_input(batch.astype(np.float32), mode=mode)
        got = preprocess(batch, mode)
        assert got.dtype == np.float32 and np.array_equal(got, expected)
    assert preprocess(batch, "torch") is not batch and batch.dtype == np.uint8  # the input is left alone


SCAN_AND_REPORT_IMPORTS = """
import json, sys
from workers.cli.main import main
sys.argv = ["tiktok-tracker", *sys.argv[1:]]
try:
    main()
except SystemExit as exit:
    code = exit.code
print(json.dumps({"code": code, "tensorflow": any(m.split(".")[0] == "tensorflow" for m in sys.modules)}))
"""


def test_a_scan_on_an_exported_vgg16_imports_no_tensorflow(tmp_path):
    env = {**cli_env(tmp_path), "TT_VGG16_PRECISION": "float32", "TT_VGG16_RUNTIME": "openvino"}
    images = colour_folders(tmp_path / "images", 6)
    run_cli(env, "target", "train", "red", "--images", str(images), "--positive-class", "red",
            "--epochs", "5", "--folds", "2", "--block", "2", "--augment", "0", check=True)
    video = tmp_path / "red.mp4"
    write_video(video, seconds=3, color=RED)
    # The first scan may export VGG16 to ONNX (TensorFlow, once; cached for every later process).
    run_cli(env, "scan", str(video), "-t", "red", "--json", check=True)
    proc = subprocess.run([sys.executable, "-c", SCAN_AND_REPORT_IMPORTS, "scan", str(video), "-t", "red", "--json", "--force"],
                          env=env, capture_output=True, text=True, timeout=300)
    lines = proc.stdout.strip().splitlines()
    report = json.loads(lines[-1])
    assert report["code"] in (0, None), proc.stderr
    assert json_rows("\n".join(lines[:-1]))[0]["verdict"] == "positive"
    assert report["tensorflow"] is False
