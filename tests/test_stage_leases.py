"""A killed worker's video is done again within a minute, and once (issue 29, point 5).

Stage leases (``workers.pipeline.leases``) with a driven clock on SQLite: taken, refused to a
second delivery, renewed, expired, requeued by the reaper, lost by the worker that was slow.
Then real workers, Redis and Postgres with the default lease and reaper settings: a score worker
SIGKILLed mid-video, a new one started, the video done within 60 s of that start with one
verdict row, one alert row and one timing per stage, and the dead worker's message, handed out
again as the broker would an hour later, doing nothing; ``requeue`` and ``enqueue --force``
on videos whose worker is gone.
"""

from __future__ import annotations

import os
import subprocess
import time
from datetime import timedelta

import pytest
from sqlalchemy import func, select, update

from tests.pipeline_support import (
    RED,
    Cluster,
    module_postgres_url,  # noqa: F401  (fixture)
    red_target,  # noqa: F401  (fixture)
    redis_url,  # noqa: F401  (fixture)
)
from tests.videos import write_video
from workers.pipeline import leases, reaper, stages, submit
from workers.pipeline.leases import LeaseKeeper
from workers.services.status import waiting
from workers.settings import Settings
from workers.storage import videos
from workers.storage.db import forget_engines, session_scope
from workers.storage.models import AlertRow, Detection, StageTiming, Video, as_utc, utcnow

# --- leases with a driven clock (SQLite, no workers) ------------------------------------------


@pytest.fixture()
def ctx(tmp_path):
    settings = Settings(
        data_dir=tmp_path / "data",
        models_dir=tmp_path / "models",
        database_url=f"sqlite:///{tmp_path / 'results.db'}",
        broker_url="",
        lease_seconds=30,
        stall_timeout=7200,
        stall_requeues=2,
    )
    yield stages.StageContext.from_settings(settings)
    forget_engines(close=True)


def _add(ctx, source: str, status: str) -> int:
    with session_scope(ctx.db_url) as s:
        video = submit.new_video(source, ["red"])
        video.status = status
        s.add(video)
        s.flush()
        return video.id


def _row(ctx, video_id) -> Video:
    with session_scope(ctx.db_url) as s:
        return s.get(Video, video_id)


def test_a_lease_is_renewed_while_its_worker_lives_and_requeued_once_it_expires(ctx):
    vid = _add(ctx, "/videos/a.mp4", "scoring")
    done = _add(ctx, "/videos/b.mp4", "done")
    t0 = utcnow()
    now = [t0]
    a, b = (LeaseKeeper(ctx.db_url, 30, clock=lambda: now[0], background=False) for _ in range(2))
    updated = _row(ctx, vid).updated_at

    assert a.take(vid, "score-1@h/11") is None and a.held() == {vid: "score-1@h/11"}
    assert a.take(done, "score-1@h/11") is None and done not in a.held()  # a finished video has no lease
    assert _row(ctx, done).lease_until is None
    now[0] = t0 + timedelta(seconds=10)
    busy = b.take(vid, "score-2@h/12")  # a second delivery while the first runs: refused
    assert busy is not None and busy.worker == "score-1@h/11" and busy.until == t0 + timedelta(seconds=30)
    assert waiting(_row(ctx, vid), ctx.settings, now[0]) == f"scoring on worker score-1@h/11, lease until {busy.until:%H:%M:%S} UTC"

    now[0] = t0 + timedelta(seconds=20)
    assert a.renew() == set()  # renewed to t0 + 50
    requeued: list = []
    assert reaper.reap_stalled(ctx, lambda *job: requeued.append(job), now=t0 + timedelta(seconds=45))["requeued"] == 0
    assert _row(ctx, vid).updated_at == updated  # leases never count as progress (a hung stage still stalls)

    # The worker is killed: no more renewals. Its lease expires at t0 + 50.
    gone = t0 + timedelta(seconds=51)
    assert waiting(_row(ctx, vid), ctx.settings, gone).startswith("worker score-1@h/11 gone since")
    assert reaper.reap_stalled(ctx, lambda *job: requeued.append(job), now=gone)["requeued"] == 1
    assert requeued == [(vid, "score")]
    row = _row(ctx, vid)
    assert (row.requeues, row.lease_worker, row.lease_until, row.status) == (1, None, None, "scoring")
    assert waiting(row, ctx.settings, gone).startswith("no stage running: in a queue")
    assert reaper.reap_stalled(ctx, lambda *job: requeued.append(job), now=gone)["requeued"] == 0  # once

    # The new delivery takes it; the old worker, if it was only slow, learns it lost it.
    now[0] = gone
    assert b.take(vid, "score-2@h/12") is None
    assert a.renew() == {vid} and a.held() == {}
    b.release(vid)
    assert _row(ctx, vid).lease_worker is None and as_utc(_row(ctx, vid).updated_at) == gone

    # Requeued as often as stall_requeues allows, then failed with the reason (a video that kills its workers).
    for n in (3, 4):
        now[0] = gone + timedelta(seconds=100 * n)
        killed = LeaseKeeper(ctx.db_url, 30, clock=lambda: now[0], background=False)  # takes the lease, then never renews it
        assert killed.take(vid, f"score-{n}@h/1{n}") is None
        report = reaper.reap_stalled(ctx, lambda *job: requeued.append(job), now=now[0] + timedelta(seconds=31))
    assert report["failed"] == 1 and len(requeued) == 2
    failed = _row(ctx, vid)
    assert failed.status == "failed" and failed.error.startswith("stalled: worker score-4@h/14 gone (its lease expired at")
    assert "while scoring, after 2 requeue(s)" in failed.error


def test_a_dead_pool_process_lease_is_taken_over_at_once_by_its_worker(ctx):
    """Celery hands a killed pool process's task out again at once: its sibling takes the lease over."""
    vid = _add(ctx, "/videos/c.mp4", "scoring")
    keeper = LeaseKeeper(ctx.db_url, 30, background=False)
    alive = f"score-1@h/{os.getppid()}"
    assert keeper.take(vid, alive) is None
    assert keeper.take(vid, f"score-1@h/{os.getpid()}").worker == alive  # a live sibling: refused
    keeper.release(vid)
    dead = subprocess.Popen(["true"])
    dead.wait()
    assert keeper.take(vid, f"score-1@h/{dead.pid}") is None
    assert keeper.take(vid, f"score-2@other/{os.getpid()}").worker == f"score-1@h/{dead.pid}"  # another node: waits for expiry
    assert keeper.take(vid, f"score-1@h/{os.getpid()}") is None
    assert _row(ctx, vid).lease_worker == f"score-1@h/{os.getpid()}"

    # The same worker restarted on this host under its stable node name: its predecessor's leases end at once.
    other = _add(ctx, "/videos/d.mp4", "extracting")
    assert keeper.take(other, f"cpu@h/{dead.pid}") is None
    assert leases.expire_dead_processes(ctx.db_url, "io@h") == []  # another node's: left to expire
    assert leases.expire_dead_processes(ctx.db_url, "cpu@h") == [f"cpu@h/{dead.pid}"]
    requeued: list = []
    assert reaper.reap_stalled(ctx, lambda *job: requeued.append(job))["requeued"] == 1 and requeued == [(other, "frames")]


def test_stuck_means_lease_expired_or_stalled(ctx):
    now = utcnow()
    leased, waiting_in_queue, stalled, finished = (
        _add(ctx, f"/videos/{name}.mp4", status)
        for name, status in (("l", "scoring"), ("w", "extracting"), ("s", "downloading"), ("f", "done"))
    )
    with session_scope(ctx.db_url) as s:
        s.execute(update(Video).where(Video.id == leased).values(lease_worker="x/1", lease_until=now - timedelta(seconds=1)))
        s.execute(update(Video).where(Video.id == finished).values(lease_worker="x/1", lease_until=now - timedelta(seconds=1)))
        s.execute(update(Video).where(Video.id == stalled).values(updated_at=now - timedelta(hours=3)))
    with session_scope(ctx.db_url) as s:
        found = set(s.scalars(select(Video.id).where(videos.stuck(now, ctx.settings.stall_timeout))))
        assert found == {leased, stalled}
        assert {v.id for v in s.scalars(select(Video)) if videos.is_stuck(v, now, ctx.settings.stall_timeout)} == found
    assert "stall_timeout" in waiting(_row(ctx, waiting_in_queue), ctx.settings, now)


def test_migration_0010_downgrades_and_upgrades(tmp_path):
    from alembic import command
    from sqlalchemy import inspect

    from workers.storage.db import _alembic_config, get_engine

    url = f"sqlite:///{tmp_path / 'm.db'}"
    engine = get_engine(url)
    columns = lambda: {c["name"] for c in inspect(engine).get_columns("videos")}  # noqa: E731
    assert {"lease_worker", "lease_until"} <= columns()
    with engine.begin() as conn:
        command.downgrade(_alembic_config(conn), "0009")
    assert not {"lease_worker", "lease_until"} & columns()
    with engine.begin() as conn:
        command.upgrade(_alembic_config(conn), "0010")
    assert {"lease_worker", "lease_until"} <= columns()
    forget_engines(close=True)


# --- real workers, default lease and reaper settings ---------------------------------------------


@pytest.fixture(scope="module")
def cluster(tmp_path_factory, module_postgres_url, redis_url, red_target):  # noqa: F811
    root = tmp_path_factory.mktemp("leases")
    # Scoring slow enough to be killed in (30 frames, each scored: about 6 s here): nothing about leases or the reaper is changed.
    slow = {"frame_rate": 10, "early_verdict": "false", "duplicate_tolerance": 0, "complete_positive_timelines": "false"}
    cluster = Cluster(root, module_postgres_url, redis_url, red_target, **slow)
    cluster.start_worker("io+cpu", "io,cpu", concurrency=2)
    yield cluster
    cluster.stop()


def _counts(cluster: Cluster, video_id: int) -> tuple[dict, int, dict]:
    with cluster.session() as s:
        detections = dict(
            s.execute(
                select(Detection.target_version, func.count()).where(Detection.video_id == video_id).group_by(Detection.target_version)
            ).all()
        )
        alerts = s.scalar(select(func.count()).select_from(AlertRow).where(AlertRow.video_id == video_id))
        timings = dict(
            s.execute(select(StageTiming.stage, func.count()).where(StageTiming.video_id == video_id).group_by(StageTiming.stage)).all()
        )
    return detections, alerts, timings


def _alerted(cluster: Cluster, job: str, timeout: float = 30) -> None:
    """Wait for the alert stage (it runs after the video is done) to have recorded its timing."""
    deadline = time.monotonic() + timeout
    while "alert" not in _counts(cluster, _video_of(cluster, job).id)[2]:
        assert time.monotonic() < deadline, cluster.log_text()
        time.sleep(0.1)


def _video_of(cluster: Cluster, job: str) -> Video:
    with cluster.session() as s:
        return s.scalars(select(Video).where(Video.job_id == job)).one()


def _redeliver_unacked(redis_url: str) -> int:  # noqa: F811
    """What the broker does with a dead worker's task after ``broker_visibility_timeout`` (an hour),
    now: every unacknowledged message back to its queue. Returns how many there were."""
    import redis
    from kombu import Connection

    held = redis.Redis.from_url(redis_url).hlen("unacked")
    with Connection(redis_url, transport_options={"visibility_timeout": 0}) as conn:
        conn.default_channel.qos.restore_visible(num=100)
    return held


def test_a_killed_score_workers_video_is_done_once_within_a_minute_of_a_new_worker(cluster, redis_url, tmp_path):  # noqa: F811
    import redis

    cluster.start_worker("score-1", "score", concurrency=1)
    (job,) = cluster.enqueue(str(write_video(tmp_path / "red-long.mp4", seconds=3, color=RED)), "--target", "red")
    deadline = time.monotonic() + 180
    while True:  # the score stage holds the video: kill its worker there
        video = _video_of(cluster, job)
        if video.status == "scoring" and video.lease_worker and video.lease_worker.startswith("score"):
            break
        assert video.status not in ("done", "failed") and time.monotonic() < deadline, cluster.log_text()
        time.sleep(0.05)
    cluster.kill_worker("score-1")
    shown = cluster.cli("status", job)
    assert shown.returncode == 0 and f"scoring on worker {video.lease_worker}, lease until" in shown.stdout, shown.stdout
    assert _video_of(cluster, job).status == "scoring"

    started = time.monotonic()
    cluster.start_worker("score-2", "score", concurrency=1)
    cluster.wait([job], timeout=90)
    took = time.monotonic() - started  # about 40 s here: the 30 s lease, then the score stage again
    _alerted(cluster, job)
    assert _video_of(cluster, job).status == "done", cluster.log_text()
    assert took < 60, f"done {took:.0f} s after the new worker started\n{cluster.log_text()}"
    assert "gone (its lease expired" in cluster.logs["score-2"].read_text()  # requeued by the start-up pass

    (version_count,) = _counts(cluster, _video_of(cluster, job).id)[0].values()
    detections, alerts, timings = _counts(cluster, _video_of(cluster, job).id)
    assert version_count == 1 and alerts == 1
    assert timings == {"download": 1, "frames": 1, "score": 1, "verdict": 1, "alert": 1}
    with cluster.session() as s:
        (score,) = s.scalars(select(StageTiming).join(Video).where(Video.job_id == job, StageTiming.stage == "score")).all()
    assert score.worker.startswith("score") and score.worker != video.lease_worker  # the new worker did it

    # The dead worker's message, handed out again as the broker does after its visibility timeout.
    assert _redeliver_unacked(redis_url) >= 1
    client = redis.Redis.from_url(redis_url)
    deadline = time.monotonic() + 30
    while client.hlen("unacked") or client.llen("score"):
        assert time.monotonic() < deadline, cluster.log_text()
        time.sleep(0.2)
    assert _counts(cluster, _video_of(cluster, job).id) == (detections, alerts, timings)
    assert _video_of(cluster, job).status == "done"


def _stuck_row(cluster: Cluster, source: str, status: str) -> tuple[str, int]:
    """A pipeline video whose worker died in ``status`` (its lease expired 5 s ago)."""
    with cluster.session() as s:
        video = submit.new_video(source, ["red"])
        video.status, video.lease_worker, video.lease_until = status, "score-9@gone/99", utcnow() - timedelta(seconds=5)
        s.add(video)
        s.flush()
        return video.job_id, video.id


def test_requeue_and_enqueue_force_rerun_videos_whose_worker_is_gone(cluster, tmp_path):
    if "score-2" not in cluster.workers or cluster.workers["score-2"].poll() is not None:
        cluster.start_worker("score-2", "score", concurrency=1)
    source = str(write_video(tmp_path / "red-a.mp4", seconds=2, color=RED).resolve())
    job, vid = _stuck_row(cluster, source, "downloading")
    shown = cluster.cli("status", job)
    assert "worker score-9@gone/99 gone since" in shown.stdout and "requeued at the reaper's next pass" in shown.stdout, shown.stdout

    neither = cluster.cli("requeue")
    assert neither.returncode == 2
    requeued = cluster.cli("requeue", "--stuck")
    assert requeued.returncode == 0, requeued.stderr
    (line,) = requeued.stdout.splitlines()
    assert line.startswith(f"{job}\tvideo {vid}\tdownloading: requeued from download\twas on worker score-9@gone/99")
    assert cluster.cli("requeue", "--stuck").stdout == ""  # its lease was dropped: not stuck any more
    cluster.wait([job], timeout=120)
    _alerted(cluster, job)
    detections, alerts, timings = _counts(cluster, vid)
    assert sum(detections.values()) == 1 and alerts == 1 and set(timings.values()) == {1}
    again = cluster.cli("requeue", job)
    assert again.returncode != 0 and "is done, not mid-way" in again.stderr

    # enqueue: "already queued" while the lease runs; --force reruns it once the worker is gone.
    other = str(write_video(tmp_path / "red-b.mp4", seconds=2, color=RED).resolve())
    old_job, other_id = _stuck_row(cluster, other, "scoring")
    plain = cluster.cli("enqueue", other, "--target", "red")
    assert plain.returncode == 0 and f"already queued as {old_job} (scoring)" in plain.stderr
    (new_job,) = cluster.enqueue(other, "--target", "red", "--force")
    assert new_job != old_job
    cluster.wait([new_job], timeout=120)
    _alerted(cluster, new_job)
    assert _counts(cluster, other_id)[1] == 1
    assert _video_of(cluster, new_job).id == other_id and _video_of(cluster, new_job).status == "done"
