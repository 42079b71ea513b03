"""The pipeline under faults: a score worker SIGKILLed in the middle of a
video, and a broker that is down when videos are enqueued. Real processes,
real Redis (a private redis-server for the broker test), real Postgres."""

from __future__ import annotations

import time

import pytest
from sqlalchemy import func, select

from tests.pipeline_support import (
    Cluster,
    make_videos,
    postgres_url,  # noqa: F401  (fixture)
    private_redis,  # noqa: F401  (fixture)
    red_target,  # noqa: F401  (fixture)
    redis_url,  # noqa: F401  (fixture)
)
from workers.storage.models import Detection, Video

pytestmark = pytest.mark.services


def _rows_per_video(cluster: Cluster, model) -> dict[int, int]:
    with cluster.session() as s:
        return dict(s.execute(select(model.video_id, func.count()).group_by(model.video_id)).all())


def test_killed_score_worker_video_is_done_exactly_once(tmp_path, postgres_url, redis_url, red_target):  # noqa: F811
    # A short visibility timeout so that the test need not wait an hour for the
    # broker to hand the dead worker's task to another one.
    cluster = Cluster(tmp_path, postgres_url, redis_url, red_target, broker_visibility_timeout=8)
    try:
        cluster.start_worker("io+cpu", "io,cpu", concurrency=2)
        cluster.start_worker("score-1", "score")
        videos = make_videos(tmp_path / "videos", 3, seconds=6)
        job_ids = cluster.enqueue(*map(str, videos), "--target", "red")

        # The first video reaches the score worker, which is loading its model: kill it there.
        deadline = time.monotonic() + 120
        while "scoring" not in (states := cluster.statuses()).values():
            assert time.monotonic() < deadline, cluster.log_text()
            time.sleep(0.05)
        (held,) = [j for j, state in states.items() if state == "scoring"]
        cluster.kill_worker("score-1")
        time.sleep(1.0)
        assert cluster.statuses()[held] == "scoring"  # nobody finished it

        cluster.start_worker("score-2", "score")
        final = cluster.wait(job_ids, timeout=150)
        assert set(final.values()) == {"done"}, cluster.log_text()

        assert _rows_per_video(cluster, Detection) == {vid: 1 for vid in _rows_per_video(cluster, Detection)}
        with cluster.session() as s:
            video = s.scalars(select(Video).where(Video.job_id == held)).one()
            assert len(video.detections) == 1  # one verdict row for its one target
            stages = [t.stage for t in video.timings]
            assert sorted(stages) == sorted(set(stages))  # each stage recorded once
            (score_timing,) = [t for t in video.timings if t.stage == "score"]
            assert s.scalar(select(func.count()).select_from(Video)) == 3
        # The new worker (its node name: score-2@host) scored the held video.
        assert score_timing.worker.startswith("score-2@")
        alerts = cluster.logs["io+cpu"].read_text().count(f"job {held})")
        assert alerts <= 1
    finally:
        cluster.stop()


def test_enqueue_with_broker_down_fails_cleanly_and_accepted_videos_survive(
    tmp_path, postgres_url, private_redis, red_target  # noqa: F811
):
    cluster = Cluster(tmp_path, postgres_url, private_redis.url, red_target)
    try:
        videos = make_videos(tmp_path / "videos", 4)
        accepted = cluster.enqueue(*map(str, videos[:2]), "--target", "red")
        assert len(accepted) == 2

        private_redis.kill()
        refused = cluster.cli("enqueue", *map(str, videos[2:]), "--target", "red")
        assert refused.returncode != 0
        lines = refused.stderr.strip().splitlines()
        assert len(lines) == 1 and "cannot reach the broker" in lines[0] and f":{private_redis.port}" in lines[0]
        assert "Traceback" not in refused.stderr and refused.stdout == ""
        assert sorted(cluster.statuses()) == sorted(accepted)  # nothing half-recorded

        private_redis.start()  # same port and append-only file: the queued chains are back
        cluster.start_worker("all", "io,cpu,score")
        final = cluster.wait(accepted, timeout=150)
        assert set(final.values()) == {"done"}, cluster.log_text()
        assert len(final) == 2
    finally:
        cluster.stop()
