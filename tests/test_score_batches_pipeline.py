"""A score worker that shares its forward passes across videos, end to end: real
Celery workers (``tiktok-tracker worker``), the local Redis, a Postgres database
of the test's own. Every video gets exactly the per-frame scores and verdicts of
the in-process, one-video-at-a-time ``Scanner``; a score worker killed with
several videos in flight loses none and scores none twice.

With ../shared: the seed videos among generated ones, a real classifier target
(``trump``) on the real VGG16 weights. Without it: generated videos, the
random-weight ``red`` target.
"""

from __future__ import annotations

import re
import time

import pytest
from sqlalchemy import func, select

from tests.conftest import SEED, WEIGHTS
from tests.pipeline_support import (
    assert_scan_matches_pipeline,
    Cluster,
    make_videos,
    module_postgres_url,  # noqa: F401  (fixture)
    postgres_url,  # noqa: F401  (fixture)
    private_redis,  # noqa: F401  (fixture)
    red_target,  # noqa: F401  (fixture)
    redis_url,  # noqa: F401  (fixture)
)
from tests.score_batches_support import small_trump  # noqa: F401  (fixture)
from tests.videos import write_video
from workers.storage.models import Detection, StageTiming, Video

pytestmark = pytest.mark.services

# Small chunks and passes so that a few short videos need many shared passes.
SHARING = dict(batch_size=4, score_batch_frames=16, score_videos_in_flight=4, score_batch_wait_ms=50)
SEEDS = ["Trump.mp4", "Biden.mp4"]


@pytest.fixture(scope="module")
def setup(request, tmp_path_factory):
    """(models folder, target name, settings for the workers and the scanner, seed videos)."""
    if SEED.is_dir() and WEIGHTS.is_file():
        models = request.getfixturevalue("small_trump")
        weights = dict(vgg16_weights=str(WEIGHTS), vgg16_preprocessing="torch", vgg16_precision="float32")
        return models, "trump", weights, [SEED / name for name in SEEDS]
    return request.getfixturevalue("red_target"), "red", dict(vgg16_weights="random", vgg16_precision="float32"), []


def _frames_done(cluster: Cluster) -> int:
    with cluster.session() as s:
        return s.scalar(select(func.count()).select_from(StageTiming).where(StageTiming.stage == "frames"))


def _wait_for_frames(cluster: Cluster, count: int, timeout: float = 240) -> None:
    """Until every video waits in the score queue (so that the score worker finds it full)."""
    deadline = time.monotonic() + timeout
    while _frames_done(cluster) < count:
        assert time.monotonic() < deadline, cluster.log_text()
        time.sleep(0.2)


@pytest.fixture(scope="module")
def run(setup, tmp_path_factory, module_postgres_url, redis_url):  # noqa: F811
    models, target, weights, seeds = setup
    root = tmp_path_factory.mktemp("score-batches")
    videos = [*make_videos(root / "videos", 6, seconds=9, fps=4), *seeds]
    spoiled = write_video(root / "spoiled.mp4", seconds=9, fps=4, color=(30, 210, 30), seed=77)  # no repost of the others
    # Early verdicts stay early (no follow-up passes): the log then has one pass report per video.
    cluster = Cluster(root, module_postgres_url, redis_url, models, complete_positive_timelines="false", **SHARING, **weights)
    try:
        cluster.start_worker("io+cpu", "io,cpu", concurrency=2)
        job_ids = cluster.enqueue(*map(str, videos), str(spoiled), "--target", target)
        _wait_for_frames(cluster, len(job_ids))
        # One video's frame batch goes bad before the score worker reads it: that video alone fails.
        (root / "data" / "media" / "frames" / f"{job_ids[-1]}.npz").write_bytes(b"not a frame batch")
        cluster.start_worker("score", "score", concurrency=4)  # threads pool: 4 videos in flight
        final = cluster.wait(job_ids, timeout=400)
        jobs = dict(zip(map(str, [*videos, spoiled]), job_ids))
        yield cluster, jobs, final, videos, models, target, weights, root, job_ids[-1]
    finally:
        cluster.stop()


def test_passes_were_shared_by_several_videos(run):
    cluster, jobs, final, videos, *_, spoiled = run
    assert {final[jobs[str(p)]] for p in videos} == {"done"}, cluster.log_text()
    log = cluster.logs["score"].read_text(errors="replace")
    assert "threads pool: models warmed" in log, log[-4000:]
    shared = [int(m) for m in re.findall(r"shared with up to (\d+) videos", log)]
    assert len(shared) == len(videos), log[-4000:]
    assert max(shared) > 1, log[-4000:]


def test_a_video_whose_frames_went_bad_fails_alone_with_its_reason(run):
    cluster, _jobs, final, *_, spoiled = run
    assert final[spoiled] == "failed"
    with cluster.session() as s:
        video = s.scalars(select(Video).where(Video.job_id == spoiled)).one()
        assert f"frames/{spoiled}.npz" in video.error and "Traceback" not in video.error, video.error


def test_scores_and_verdicts_equal_scoring_each_video_alone(run):
    from workers.settings import Settings

    cluster, jobs, _final, videos, models, target, weights, root, _spoiled = run
    settings = Settings(
        data_dir=root / "scan-data", models_dir=models, database_url=f"sqlite:///{root / 'scan.db'}",
        batch_size=SHARING["batch_size"], complete_positive_timelines=False, **weights,
    )
    scanned = assert_scan_matches_pipeline(cluster, settings, target, {path: jobs[str(path)] for path in videos})
    if target == "trump":
        verdicts = {p.name: scanned[p][0].verdict for p in videos if p.name in SEEDS}
        assert verdicts == {"Trump.mp4": "positive", "Biden.mp4": "negative"}


def test_killed_worker_with_videos_in_flight_loses_none_and_scores_none_twice(setup, tmp_path, postgres_url, private_redis):  # noqa: F811
    # A broker of its own: the module's cluster (and its workers) still runs on ``redis_url``.
    # The visibility timeout: short, so that the dead worker's videos come back soon, but
    # longer than a score task here (4 videos share each pass): Redis hands out again any
    # message unacknowledged for longer, a live worker's too (a second delivery, which
    # the stages skip, but which records its stages' timings once more).
    models, target, weights, _seeds = setup
    cluster = Cluster(tmp_path, postgres_url, private_redis.url, models, broker_visibility_timeout=45, **SHARING, **weights)
    try:
        cluster.start_worker("io+cpu", "io,cpu", concurrency=2)
        videos = make_videos(tmp_path / "videos", 5, seconds=12, fps=2)
        job_ids = cluster.enqueue(*map(str, videos), "--target", target)
        _wait_for_frames(cluster, len(videos))
        cluster.start_worker("score-1", "score", concurrency=4)
        deadline = time.monotonic() + 240
        while True:
            states = cluster.statuses()
            if sum(state == "scoring" for state in states.values()) >= 2:
                break
            assert time.monotonic() < deadline, cluster.log_text()
            time.sleep(0.05)
        cluster.kill_worker("score-1")  # kill -9, several videos in its passes
        held = [j for j, state in states.items() if state == "scoring"]
        time.sleep(1.0)
        assert all(cluster.statuses()[j] == "scoring" for j in held)  # nobody finished them

        cluster.start_worker("score-2", "score", concurrency=4)
        final = cluster.wait(job_ids, timeout=400)
        assert set(final.values()) == {"done"}, cluster.log_text()
        with cluster.session() as s:
            per_video = dict(s.execute(select(Detection.video_id, func.count()).group_by(Detection.video_id)).all())
            assert sorted(per_video.values()) == [1] * len(videos)
            for video in s.scalars(select(Video)):
                stages = [t.stage for t in video.timings]
                assert sorted(stages) == sorted(set(stages)), stages  # each stage recorded once
    finally:
        cluster.stop()
