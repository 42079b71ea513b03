"""One core for a video: ``scan``, the pipeline (real Celery workers) and
``target eval`` give the same per-frame scores and verdicts on the same videos.

Two targets, so that both ways frames reach the models are covered: ``red``
(a classifier on a random-weight VGG16: backbone-sized frames) and
``astronaut`` (a face enrolled from the demo photo: full frames). The videos:
generated ones (red, blue, the demo's face and no-face videos) and, when
``../shared`` exists, the seed videos. Every frame is scored everywhere (scan
``--all-frames``, the pipeline without early verdict or reuse, eval always).
"""

from __future__ import annotations

import json
import shutil
import subprocess

import pytest
from sqlalchemy import select

from tests.pipeline_support import (
    CLI,
    ROOT,
    Cluster,
    base_env,
    assert_scan_matches_pipeline,
    make_videos,
    module_postgres_url,  # noqa: F401  (fixture)
    red160_target,  # noqa: F401  (fixture)
    red_target,  # noqa: F401  (fixture)
    redis_url,  # noqa: F401  (fixture)
)
from workers.storage.db import session_scope
from workers.storage.models import Video
from workers.video_ref import canonical_source

pytestmark = pytest.mark.services

TARGETS = ("red", "astronaut")


@pytest.fixture(scope="module")
def models(tmp_path_factory, red_target, red160_target):  # noqa: F811
    """A models folder with the classifier ``red``, the face target ``astronaut`` and
    ``red160`` (``red`` at VGG16 input size 160)."""
    from workers.demo_media import demo_reference_photo

    root = tmp_path_factory.mktemp("one-core-models")
    folder = root / "models"
    shutil.copytree(red_target, folder)
    shutil.copytree(red160_target / "red160", folder / "red160")
    photo = demo_reference_photo(root / "photo")
    env = {**base_env(root / "data", folder), "TT_DATABASE_URL": f"sqlite:///{root / 'enrol.db'}"}
    proc = subprocess.run([*CLI, "target", "add-face", "astronaut", str(photo)], env=env, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    return folder


@pytest.fixture(scope="module")
def cluster(tmp_path_factory, module_postgres_url, redis_url, models):  # noqa: F811
    root = tmp_path_factory.mktemp("one-core-cluster")
    cluster = Cluster(root, module_postgres_url, redis_url, models, early_verdict="false", duplicate_tolerance="0")
    try:
        cluster.start_worker("io", "io")
        cluster.start_worker("cpu", "cpu")
        cluster.start_worker("score", "score")
        yield cluster
    finally:
        cluster.stop()


def generated_videos(folder):
    """(positive, negative) folders: a red video and the astronaut's; a blue one and the others'."""
    from workers.demo_media import make_demo_videos

    red, blue = make_videos(folder / "made", 2)
    with_face, without_face = make_demo_videos(folder / "demo")
    return [red, with_face], [blue, without_face]


def per_frame(database_url: str, sources) -> dict:
    """(source, target) -> (verdict, [(frame index, timestamp, score, box)]) from a results database."""
    out = {}
    with session_scope(database_url) as s:
        for source in sources:
            video = s.scalars(select(Video).where(Video.source == canonical_source(str(source)))).one()
            assert video.status == "done", (source, video.status, video.error)
            for d in video.detections:
                out[(str(source), d.target_name)] = (
                    d.verdict, [(f.frame_index, f.timestamp, f.score, tuple(f.box) if f.box else None) for f in d.frame_scores]
                )
    return out


def evaluated(tmp_path, models, positive, negative, monkeypatch) -> dict:
    """(source, target) -> (verdict, per-frame scores) from ``target eval``'s code (``evaluate_target``)."""
    from workers.evaluation import evaluate_target
    from workers.settings import get_settings
    from workers.targets.bundle import load_target

    pos, neg = tmp_path / "eval-positive", tmp_path / "eval-negative"
    for folder, videos in ((pos, positive), (neg, negative)):
        folder.mkdir()
        for video in videos:
            (folder / video.name).symlink_to(video)
    monkeypatch.setenv("TT_MODELS_DIR", str(models))
    monkeypatch.setenv("TT_DATA_DIR", str(tmp_path / "eval-data"))
    monkeypatch.setenv("TT_VGG16_WEIGHTS", "random")
    get_settings.cache_clear()
    try:
        settings = get_settings()
        out = {}
        for name in TARGETS:
            report = evaluate_target(settings, load_target(models, name), pos, neg)
            for row in report.rows:
                assert row.verdict != "failed", row
                source = (positive + negative)[[v.name for v in positive + negative].index(row.video.rsplit("/", 1)[-1])]
                out[(str(source), name)] = (
                    row.verdict, [(f.index, f.timestamp, f.score, tuple(f.box) if f.box else None) for f in row.scores]
                )
                assert "scores" not in json.dumps(report.to_json())
        return out
    finally:
        get_settings.cache_clear()


def run_all_three(tmp_path, cluster, models, positive, negative, monkeypatch):
    videos = [*positive, *negative]
    # scan: the CLI, in its own process, into a SQLite database of its own
    scan_db = f"sqlite:///{tmp_path / 'scan.db'}"
    scan = cluster.cli("scan", *map(str, videos), "--all-frames", "--json", *[a for t in TARGETS for a in ("--target", t)],
                       env={"TT_DATABASE_URL": scan_db, "TT_DATA_DIR": str(tmp_path / "scan-data")}, timeout=900)
    assert scan.returncode == 0, scan.stdout + scan.stderr
    scanned = per_frame(scan_db, videos)
    # the pipeline: real workers, Redis and Postgres
    jobs = cluster.enqueue(*map(str, videos), *[a for t in TARGETS for a in ("--target", t)])
    assert len(jobs) == len(videos)
    cluster.wait(jobs, timeout=900)
    piped = per_frame(cluster.database_url, videos)
    # target eval
    evals = evaluated(tmp_path, models, positive, negative, monkeypatch)
    return scanned, piped, evals


def assert_same(scanned, piped, evals, videos):
    expected_keys = {(str(v), t) for v in videos for t in TARGETS}
    assert set(scanned) == set(piped) == set(evals) == expected_keys
    for key in sorted(expected_keys):
        assert scanned[key][1], key  # every frame has a score
        assert piped[key] == scanned[key], key
        assert evals[key] == scanned[key], key


def test_generated_videos_score_the_same_in_scan_pipeline_and_eval(tmp_path, cluster, models, monkeypatch):
    positive, negative = generated_videos(tmp_path)
    scanned, piped, evals = run_all_three(tmp_path, cluster, models, positive, negative, monkeypatch)
    assert_same(scanned, piped, evals, positive + negative)
    # the targets do tell the videos apart: so equal scores are not equal emptiness
    red, with_face = positive
    assert scanned[(str(red), "red")][0] == "positive" and scanned[(str(with_face), "astronaut")][0] == "positive"
    assert {scanned[(str(v), t)][0] for v, t in zip(negative, TARGETS)} == {"negative"}


def test_seed_videos_score_the_same_in_scan_pipeline_and_eval(tmp_path, cluster, models, monkeypatch, seed_dir):
    positive, negative = [seed_dir / "Trump.mp4"], [seed_dir / "Biden.mp4"]
    scanned, piped, evals = run_all_three(tmp_path, cluster, models, positive, negative, monkeypatch)
    assert_same(scanned, piped, evals, positive + negative)


def test_a_target_of_another_input_size_scores_the_same_in_scan_and_pipeline(tmp_path, cluster, models):
    """``red160``'s backbone resizes the frames it is given to 160x160: the frame batch's
    224x224 copies in the pipeline, the same copies in scan (``scoring_frames``)."""
    from workers.settings import Settings

    videos = make_videos(tmp_path / "videos", 2)
    jobs = cluster.enqueue(*map(str, videos), "--target", "red160")
    cluster.wait(jobs, timeout=300)
    settings = Settings(
        _env_file=None, data_dir=tmp_path / "data", models_dir=models, vgg16_weights="random",
        database_url=f"sqlite:///{tmp_path / 'scan.db'}", early_verdict=False, duplicate_tolerance=0,
    )
    scanned = assert_scan_matches_pipeline(cluster, settings, "red160", dict(zip(videos, jobs)))
    assert all(rows[0].scored_frames == rows[0].frames > 0 for rows in scanned.values())
