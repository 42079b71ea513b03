"""A real classifier target on the real VGG16 weights, trained on a small part of the
seed images (every 12th labelled frame: about 60) so that it takes seconds, not minutes."""

from __future__ import annotations

import csv
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import made_once, run_cache_env

ROOT = Path(__file__).resolve().parents[1]


def seed_env(root: Path, weights: Path) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TT_")}
    env.update(
        TT_DATA_DIR=str(root / "data"), TT_MODELS_DIR=str(root / "models"), TT_VGG16_WEIGHTS=str(weights),
        TT_VGG16_PREPROCESSING="torch", TT_VGG16_PRECISION="float32", TF_CPP_MIN_LOG_LEVEL="3",
        CUDA_VISIBLE_DEVICES="", TT_DATABASE_URL=f"sqlite:///{root / 'train.db'}", **run_cache_env(),
    )
    return env


@pytest.fixture(scope="session")
def small_trump(seed_dir, seed_weights) -> Path:
    """The models folder of target ``trump``, trained once per run (``made_once``)."""
    return made_once("small-trump", lambda root: train_small_trump(seed_dir, seed_weights, root)) / "models"


def train_small_trump(seed_dir: Path, weights: Path, root: Path) -> Path:
    """The models folder of target ``trump`` (a pooled head on seed images); returns it."""
    with open(seed_dir / "mapping_trump.csv", newline="") as fh:
        rows = [r for r in csv.DictReader(fh) if (seed_dir / "images" / r["Image_ID"]).is_file()]
    labels = root / "labels.csv"
    with open(labels, "w", newline="") as fh:
        writer = csv.DictWriter(fh, ["Image_ID", "Class"])
        writer.writeheader()
        writer.writerows(rows[::12])
    proc = subprocess.run(
        [sys.executable, "-m", "workers.cli.main", "target", "train", "trump", "--labels", str(labels),
         "--images", str(seed_dir / "images"), "--folds", "0", "--epochs", "20", "--augment", "0"],
        env=seed_env(root, weights), cwd=ROOT, capture_output=True, text=True, timeout=600,
    )
    assert proc.returncode == 0, proc.stderr
    return root / "models"
