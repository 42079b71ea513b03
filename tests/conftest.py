"""Shared fixtures.

Seed data (``../shared``) is test data that lives beside the checkout, never in
it: tests that need it skip on a user's clone, but fail under ``CI=true``,
where a missing prerequisite must never pass silently.

The budget: CI runs this suite on a 2-core machine and must finish in under 20
minutes (README, "Tests"). A new test that costs more than a minute must share
its expensive setup instead of making its own: trained targets (``red_target``,
``small_trump``, the seed classifier), VGG16 features of labelled images (the run's
feature cache, ``TT_FEATURE_CACHE_DIR``, which every training in the run reads),
converted models (``TT_BACKBONE_CACHE_DIR``) and generated videos come from
session fixtures or these caches, computed once per run. A long form (thousands of
videos, days, the full agreement gate) is a ``bench/`` command whose short form is
the test.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Callable

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


RUN_CACHE_KEY = "tt_run_cache"
_OWN_RUN_CACHE = pytest.StashKey[Path]()  # the controller's: removed when the run ends


def pytest_configure(config) -> None:
    """One folder for this run's shared caches (the same one in every pytest-xdist worker),
    named in the environment so that the CLI and workers that tests start use it too."""
    worker = getattr(config, "workerinput", None)
    if worker is not None:
        run_cache = Path(worker[RUN_CACHE_KEY])
    else:
        run_cache = Path(tempfile.mkdtemp(prefix="tt-test-run-"))
        config.stash[_OWN_RUN_CACHE] = run_cache
    os.environ.setdefault("TT_FEATURE_CACHE_DIR", str(run_cache / "features"))
    os.environ["TT_TEST_RUN_CACHE"] = str(run_cache)


@pytest.hookimpl(optionalhook=True)
def pytest_configure_node(node) -> None:
    """pytest-xdist: each worker gets the controller's run cache."""
    node.workerinput[RUN_CACHE_KEY] = os.environ["TT_TEST_RUN_CACHE"]


def pytest_unconfigure(config) -> None:
    for proc in _background:
        proc.kill()
        proc.wait()
    own = config.stash.get(_OWN_RUN_CACHE, None)
    if own is not None:
        shutil.rmtree(own, ignore_errors=True)


RUN_CACHE_VARIABLES = ("TT_FEATURE_CACHE_DIR", "TT_BACKBONE_CACHE_DIR")


def run_cache_env() -> dict[str, str]:
    """The run's shared caches, for the environment of a CLI or worker process that a test
    starts with ``TT_*`` settings of its own (features and converted models are keyed by
    everything that changes them, so sharing them changes no result)."""
    return {k: os.environ[k] for k in RUN_CACHE_VARIABLES if k in os.environ}


@pytest.fixture(scope="session")
def run_cache() -> Path:
    """This run's folder of shared caches (see ``pytest_configure``)."""
    return Path(os.environ["TT_TEST_RUN_CACHE"])


def made_once(name: str, make: Callable[[Path], object]) -> Path:
    """The run cache's folder ``name``, filled by ``make(folder)`` in the first process of
    the run that asks for it; the others (pytest-xdist workers) wait, then reuse it."""
    from filelock import FileLock

    folder = Path(os.environ["TT_TEST_RUN_CACHE"]) / name
    with FileLock(f"{folder}.lock"):
        if not (folder / ".made").is_file():
            shutil.rmtree(folder, ignore_errors=True)
            folder.mkdir(parents=True)
            make(folder)
            (folder / ".made").touch()
    return folder


def need(condition: bool, why: str) -> None:
    """Skip (or fail under CI=true) when a prerequisite is missing."""
    if condition:
        return
    if IN_CI:
        pytest.fail(f"CI=true and {why}")
    pytest.skip(why)


# Modules that take minutes go first, so that pytest-xdist (``make test``: two workers, one
# module each at a time, in this order) does not leave one of them for the end. The seed
# modules come after two others: by then the seed features, computed in the background
# from the start of the run (``seed_features``), are mostly there.
SLOW_MODULES = ("test_multihost", "test_pipeline_outage", "test_seed_classifier", "test_backbone_agreement",
                "test_score_batches_pipeline", "test_one_core")


def pytest_collection_modifyitems(items) -> None:
    rank = {name: i for i, name in enumerate(SLOW_MODULES)}
    items.sort(key=lambda item: rank.get(item.module.__name__.rsplit(".", 1)[-1], len(rank)))


def pytest_collection_finish(session) -> None:
    if any("seed_features" in getattr(item, "fixturenames", ()) for item in session.items):
        start_seed_features()


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


@pytest.fixture(scope="session")
def seed_features(seed_dir, seed_weights) -> None:
    """The float32 VGG16 features of every seed image and one augmented view of it (what
    the seed classifier's training and the agreement gate read) in the run's feature cache."""
    make_seed_features()


def make_seed_features() -> None:
    """Compute the seed features once per run; a process that asks while another computes them waits."""

    def compute(folder: Path) -> None:
        from workers.services.training import TrainRequest, plan_training
        from workers.settings import Settings
        from workers.training.features import dataset_features

        settings = Settings(_env_file=None, data_dir=folder, vgg16_weights=str(WEIGHTS), vgg16_preprocessing="torch")
        request = TrainRequest("trump", SEED / "images", SEED / "mapping_trump.csv")
        plan = plan_training(settings, request)
        dataset_features(plan.data.examples, plan.backbone, settings.features_dir, request.augment, settings.batch_size)

    made_once("seed-features", compute)


def start_seed_features() -> None:
    """Start computing the seed features in a background process (once per run, at a low
    priority: it takes the CPU that tests waiting on servers and workers leave idle), so
    that the tests which need them find them made, or partly."""
    if not (SEED.is_dir() and WEIGHTS.is_file()):
        return
    try:
        os.close(os.open(Path(os.environ["TT_TEST_RUN_CACHE"]) / "seed-features.started", os.O_CREAT | os.O_EXCL))
    except FileExistsError:
        return  # another pytest-xdist worker started it
    _background.append(subprocess.Popen(
        [sys.executable, "-c", "from tests.conftest import make_seed_features; make_seed_features()"],
        cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, preexec_fn=lambda: os.nice(10),
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"},
    ))


_background: list[subprocess.Popen] = []  # stopped when the run ends, done or not
