"""The VGG16 input size as a training option (``target train --input-size``): recorded
in the bundle, one backbone (and one forward pass per batch) per size, frames resized
from their 224x224 copy so that a full frame and that copy give the same features.

Random-weight VGG16 and generated media: what CI can always run.
"""

from __future__ import annotations

import json
import shutil
import subprocess

import numpy as np
import pytest

from tests.pipeline_support import BLUE, CLI, RED, ROOT, base_env, red160_target, red_target  # noqa: F401  (fixtures)
from tests.videos import write_video
from workers.detect.backbone import (
    INPUT_SIZE,
    BackboneIdentity,
    VGG16Backbone,
    backbone_key,
    input_size_of,
    parse_backbone_key,
    resize_for_backbone,
    resize_frame,
)
from workers.errors import BackboneMismatch, BadInputSize


def test_extractor_keys_name_the_size_and_read_back():
    assert backbone_key(INPUT_SIZE) == "vgg16" and parse_backbone_key("vgg16") == INPUT_SIZE
    assert backbone_key((160, 160)) == "vgg16@160" and parse_backbone_key("vgg16@160") == (160, 160)
    assert parse_backbone_key(backbone_key((192, 128))) == (192, 128)
    assert parse_backbone_key("faces") is None and parse_backbone_key("vgg16@big") is None


@pytest.mark.parametrize("side", [0, 100, 200, 32, 480])
def test_sizes_vgg16_cannot_take_are_refused(side):
    with pytest.raises(BadInputSize, match="multiple of 32"):
        input_size_of(side)


def test_a_bundle_of_a_size_vgg16_cannot_take_fails_clearly():
    from workers.detect.registry import make_extractor
    from workers.settings import Settings

    with pytest.raises(BadInputSize, match="input size 100"):
        make_extractor("vgg16@100", Settings(_env_file=None, vgg16_weights="random"))


def test_registry_builds_a_backbone_of_the_keys_size():
    from workers.detect.registry import make_extractors
    from workers.settings import Settings

    extractors = make_extractors(["vgg16", "vgg16@160"], Settings(_env_file=None, vgg16_weights="random"))
    assert extractors["vgg16"].backbone_identity.input_size == (224, 224)
    assert extractors["vgg16@160"].backbone_identity.input_size == (160, 160)
    assert extractors["vgg16@160"].key == "vgg16@160"


def test_a_full_frame_and_its_224_copy_give_the_same_pixels_at_any_size():
    frame = np.random.default_rng(0).integers(0, 256, (360, 640, 3), dtype=np.uint8)
    for size in ((224, 224), (192, 192), (160, 160)):
        assert np.array_equal(resize_for_backbone([frame], size), resize_for_backbone([resize_frame(frame)], size))


def test_mismatch_names_the_size_when_only_the_size_differs():
    from workers.detect.classifier import ClassifierTarget

    trained = BackboneIdentity("vgg16", "random", "random:seed=0", "caffe", (160, 160))
    target = ClassifierTarget("t", head=None, backbone=trained, class_names=["a", "b"], positive_index=0)
    assert target.extractor_key == "vgg16@160"
    with pytest.raises(BackboneMismatch, match="input=160x160"):
        target.check_extractor(VGG16Backbone("random"))


def test_retraining_keeps_the_input_size():
    from workers.review.training import retrain_command

    meta = {"kind": "classifier", "name": "r", "dataset": {"images": "/i"}, "positive_class": "red", "threshold": 0.4,
            "rule": {}, "backbone": {"input_size": [160, 160]}}
    args = retrain_command(meta)
    assert args[args.index("--input-size") + 1] == "160"


# --- trained targets -------------------------------------------------------------------


@pytest.fixture(scope="module")
def models(tmp_path_factory, red_target, red160_target):  # noqa: F811
    """``red`` (224) and ``red160`` (160), trained through the CLI, in one models folder."""
    folder = tmp_path_factory.mktemp("input-size") / "models"
    shutil.copytree(red_target, folder)
    shutil.copytree(red160_target / "red160", folder / "red160")
    return folder


@pytest.fixture(scope="module")
def videos(tmp_path_factory):
    folder = tmp_path_factory.mktemp("input-size-videos")
    return [write_video(folder / "red.mp4", seconds=3, color=RED), write_video(folder / "blue.mp4", seconds=3, color=BLUE, seed=1)]


def test_the_bundle_records_the_input_size(models):
    from workers.targets.bundle import load_target

    assert json.loads((models / "red160" / "target.json").read_text())["backbone"]["input_size"] == [160, 160]
    assert json.loads((models / "red" / "target.json").read_text())["backbone"]["input_size"] == [224, 224]
    assert load_target(models, "red160").extractor_key == "vgg16@160"


def test_train_refuses_a_size_vgg16_cannot_take(red_target, tmp_path):  # noqa: F811
    env = base_env(tmp_path / "data", tmp_path / "models")
    proc = subprocess.run([*CLI, "target", "train", "x", "--images", str(red_target.parent / "images"), "--input-size", "100"],
                          env=env, cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and "multiple of 32" in proc.stderr and "Traceback" not in proc.stderr


def scan(models, tmp_path, names, videos, monkeypatch):
    """Every frame of ``videos`` scanned for ``names`` in one ``Scanner``: per-frame scores by
    (video, target), verdicts, and the frames of each VGG16 forward pass by extractor key."""
    from workers.scan import Scanner
    from workers.settings import Settings

    passes: list[tuple[str, int]] = []
    extract = VGG16Backbone.extract

    def counted(self, images):
        passes.append((self.key, len(images)))
        return extract(self, images)

    monkeypatch.setattr(VGG16Backbone, "extract", counted)
    folder = tmp_path / "-".join(names)
    settings = Settings(_env_file=None, data_dir=folder, models_dir=models, vgg16_weights="random",
                        database_url=f"sqlite:///{folder}.db")
    scanner = Scanner.for_names(settings, names, all_frames=True)
    rows = {(r.video, r.target): r for _, found in scanner.scan_files(videos) for r in found}
    from sqlalchemy import select

    from workers.storage.db import session_scope
    from workers.storage.models import Detection

    with session_scope(settings.resolved_database_url) as s:
        scores = {(d.video.source, d.target_name): [(f.frame_index, f.score) for f in d.frame_scores]
                  for d in s.scalars(select(Detection))}
    return scores, {k: r.verdict for k, r in rows.items()}, sorted(passes)


def test_targets_of_two_sizes_each_get_their_own_pass_and_their_scores_alone(models, videos, tmp_path, monkeypatch):
    alone_224, verdicts_224, passes_224 = scan(models, tmp_path, ["red"], videos, monkeypatch)
    alone_160, verdicts_160, passes_160 = scan(models, tmp_path, ["red160"], videos, monkeypatch)
    together, verdicts, passes = scan(models, tmp_path, ["red", "red160"], videos, monkeypatch)
    assert {k for k, _ in passes_160} == {"vgg16@160"} and {k for k, _ in passes_224} == {"vgg16"}
    assert passes == sorted(passes_224 + passes_160)  # one pass per batch per size, no more
    assert together == {**alone_224, **alone_160}
    assert verdicts == {**verdicts_224, **verdicts_160}
    red, blue = map(str, videos)
    assert verdicts[(red, "red")] == verdicts[(red, "red160")] == "positive" and verdicts[(blue, "red")] == "negative"
    # On random weights the 160 head, fit on plain noisy squares, is less sure of the videos'
    # frames (they have a moving white square) than the 224 one: its blue frames score lower
    # than its red ones, not always under its threshold.
    mean = {k: np.mean([score for _, score in v]) for k, v in together.items()}
    assert mean[(blue, "red160")] < mean[(red, "red160")]
    assert len(together[(red, "red160")]) == 3  # one frame a second, every one scored
    assert together[(red, "red160")] != together[(red, "red")]  # another backbone, another head
