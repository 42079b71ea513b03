"""The tutorial's workflow with real ImageNet weights (needs ../shared).

Train on the seed CSV, then scan the two seed videos: Trump.mp4 must come out
positive with at least 17 of its 18 frames, Biden.mp4 negative with at most 4
of 61 false-positive frames (the tutorial's own result).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from tests.test_classifier_cli import json_rows, run_cli

pytestmark = pytest.mark.seed


@pytest.fixture(scope="module")
def seed_env(seed_dir, seed_weights, seed_features, tmp_path_factory):
    """The seed target trained through the CLI, its backbone features from the run's cache."""
    root = tmp_path_factory.mktemp("seedclf")
    env = {
        **os.environ,
        "TT_DATA_DIR": str(root / "data"),
        "TT_MODELS_DIR": str(root / "models"),
        "TT_VGG16_WEIGHTS": str(seed_weights),
        "TT_VGG16_PREPROCESSING": "torch",
        "TF_CPP_MIN_LOG_LEVEL": "3",
    }
    env.pop("TT_DATABASE_URL", None)
    proc = run_cli(
        env, "target", "train", "trump",
        "--labels", str(seed_dir / "mapping_trump.csv"), "--images", str(seed_dir / "images"),
        check=True,
    )
    return env, root, proc


def test_training_reports_skipped_rows_and_grouped_accuracy(seed_env):
    env, root, proc = seed_env
    assert "frame576.jpg" in proc.stderr and "frame610.jpg" in proc.stderr
    assert "have no label" in proc.stderr
    assert "backbone features (images): 717/717" in proc.stderr and "final fit (head 5/5): 100/100" in proc.stderr
    meta = json.loads((root / "models" / "trump" / "target.json").read_text())
    assert meta["dataset"]["skipped"] == {"bad rows": 0, "missing": 2, "unlabelled": 17, "unreadable": 0}
    metrics = meta["metrics"]
    assert metrics["train_images"] == 717
    assert metrics["accuracy"] >= 0.85, metrics  # grouped 5-fold; the tutorial's head measures ~0.83
    assert meta["backbone"]["preprocessing"] == "torch"
    assert meta["backbone"]["weights_id"].startswith("sha256:")


@pytest.fixture(scope="module")
def every_frame(seed_env, seed_dir) -> dict:
    """Both seed videos scanned with every sampled frame scored (no early verdict, no reuse): per video, its row."""
    env, _, _ = seed_env
    proc = run_cli(
        env, "scan", str(seed_dir / "Trump.mp4"), str(seed_dir / "Biden.mp4"), "-t", "trump", "--json", "--all-frames",
        check=True,
    )
    return {Path(r["video"]).name: r for r in json_rows(proc.stdout)}


def test_seed_videos_match_the_tutorial(every_frame):
    trump, biden = every_frame["Trump.mp4"], every_frame["Biden.mp4"]
    assert trump["frames"] == 18 and trump["positive_frames"] >= 17 and trump["verdict"] == "positive"
    assert biden["frames"] == 61 and biden["positive_frames"] <= 4 and biden["verdict"] == "negative"


def test_early_verdict_gives_the_same_verdicts_with_less_work(seed_env, seed_dir):
    env, _, _ = seed_env
    early = {**env, "TT_COMPLETE_POSITIVE_TIMELINES": "false"}  # the early verdict alone, its timeline not completed
    proc = run_cli(early, "scan", str(seed_dir / "Trump.mp4"), str(seed_dir / "Biden.mp4"), "-t", "trump", "--json", "--force", check=True)
    rows = {Path(r["video"]).name: r for r in json_rows(proc.stdout)}
    assert rows["Trump.mp4"]["verdict"] == "positive" and rows["Biden.mp4"]["verdict"] == "negative"
    assert rows["Trump.mp4"]["scored_frames"] < 18


def test_a_bundle_from_another_backbone_is_refused(seed_env, seed_dir):
    env, _, _ = seed_env
    proc = run_cli({**env, "TT_VGG16_WEIGHTS": "random"}, "scan", str(seed_dir / "Trump.mp4"), "-t", "trump")
    assert proc.returncode == 2
    assert "was trained on vgg16 weights=vgg16_imagenet_notop.weights.h5" in proc.stderr


def test_reusing_near_duplicate_frames_keeps_every_frame_on_its_side(seed_env, seed_dir, every_frame):
    """Default tolerance against scoring every frame (both without early verdict):
    fewer forward passes, the same positive frames and verdicts."""
    env, _, _ = seed_env
    proc = run_cli(
        {**env, "TT_EARLY_VERDICT": "false"}, "scan", str(seed_dir / "Trump.mp4"), str(seed_dir / "Biden.mp4"),
        "-t", "trump", "--json", "--force", check=True,
    )
    runs = {"every": every_frame, "reuse": {Path(r["video"]).name: r for r in json_rows(proc.stdout)}}
    assert runs["reuse"]["Biden.mp4"]["reused_frames"] >= 10  # 61 frames, many near-identical
    for video in ("Trump.mp4", "Biden.mp4"):
        a, b = runs["every"][video], runs["reuse"][video]
        assert a["reused_frames"] == 0 and a["scored_frames"] == b["scored_frames"] == a["frames"]
        assert (a["verdict"], a["positive_frames"]) == (b["verdict"], b["positive_frames"])
