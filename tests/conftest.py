"""Shared fixtures.

Seed data (``../shared``) is test data that lives beside the checkout, never in
it: tests that need it skip on a user's clone, but fail under ``CI=true``,
where a missing prerequisite must never pass silently.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("TT_SHARED_DIR", ROOT.parent / "shared"))
SEED = SHARED / "data" / "seed"
WEIGHTS = SHARED / "weights" / "vgg16_imagenet_notop.weights.h5"
IN_CI = os.environ.get("CI", "").lower() in {"1", "true", "yes"}
# One cache of converted VGG16 models for the whole run (and the next): where `auto` picks int8
# (CPUs without fast bfloat16), each test's own data folder would export and quantise again.
os.environ.setdefault("TT_BACKBONE_CACHE_DIR", str(ROOT / ".pytest_cache" / "d" / "backbones"))


def need(condition: bool, why: str) -> None:
    """Skip (or fail under CI=true) when a prerequisite is missing."""
    if condition:
        return
    if IN_CI:
        pytest.fail(f"CI=true and {why}")
    pytest.skip(why)


@pytest.fixture(scope="session")
def seed_dir() -> Path:
    need(SEED.is_dir(), f"seed data not found at {SEED}")
    return SEED


@pytest.fixture(scope="session")
def seed_weights() -> Path:
    need(WEIGHTS.is_file(), f"VGG16 weights not found at {WEIGHTS}")
    return WEIGHTS


@pytest.fixture()
def tt_env(tmp_path, monkeypatch):
    """Isolated settings: data and models under tmp_path, random VGG16 weights."""
    from workers.settings import get_settings

    monkeypatch.setenv("TT_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("TT_MODELS_DIR", str(tmp_path / "models"))
    monkeypatch.setenv("TT_VGG16_WEIGHTS", "random")
    monkeypatch.delenv("TT_DATABASE_URL", raising=False)
    monkeypatch.delenv("TT_VGG16_PREPROCESSING", raising=False)
    get_settings.cache_clear()
    yield tmp_path
    get_settings.cache_clear()
