"""The pipeline when the database goes away, and when a worker dies mid-alert. Real
Postgres (its connections refused: ``ALTER DATABASE ... ALLOW_CONNECTIONS false`` and
every session terminated), real Redis, real worker and beat processes, a local webhook
receiver that drops repeats by idempotency key.

Every video ends ``done`` or ``failed`` with a reason, none stays mid-way, and every
positive reaches the receiver under one key. Budgets are small settings so the tests
stay short: the retry window, the stall timeout and the reaper's interval."""

from __future__ import annotations

import time
from contextlib import contextmanager

import pytest
from sqlalchemy import func, select

from tests.local_http import Receiver
from tests.pipeline_support import (
    PG_ADMIN,
    TERMINAL,
    Cluster,
    make_videos,
    postgres_url,  # noqa: F401  (fixture)
    red_target,  # noqa: F401  (fixture)
    redis_url,  # noqa: F401  (fixture)
)
from workers.storage.models import AlertRow, Detection, Video

pytestmark = pytest.mark.services


@contextmanager
def database_refused(url: str):
    """The database refuses every connection, and its open sessions are cut, until the block ends."""
    import psycopg

    name = url.rsplit("/", 1)[1]
    with psycopg.connect(PG_ADMIN, autocommit=True, connect_timeout=3) as admin:
        admin.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS false')
        admin.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s", (name,))
        try:
            yield
        finally:
            admin.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true')


def _cluster(tmp_path, postgres_url, redis_url, red_target, receiver, **settings) -> Cluster:  # noqa: F811
    defaults = dict(alert_webhook_urls=receiver.url("/hook"), alert_timeout=2, alert_retries=0, watch_poll_interval=1,
                    reaper_interval=2, broker_visibility_timeout=30)
    return Cluster(tmp_path, postgres_url, redis_url, red_target, **{**defaults, **settings})


def _start(cluster: Cluster, count: int) -> list[str]:
    cluster.start_worker("io+cpu", "io,cpu", concurrency=2)
    cluster.start_worker("score", "score")
    cluster.start_beat()
    videos = make_videos(cluster.root / "videos", count, seconds=8)
    return cluster.enqueue(*map(str, videos), "--target", "red")


def _cut_mid_run(cluster: Cluster, job_ids: list[str], seconds: float) -> dict[str, str]:
    """Refuse the database for ``seconds`` as soon as a first video is done; the states at the cut."""
    deadline = time.monotonic() + 180
    while "done" not in (states := cluster.statuses()).values():
        assert time.monotonic() < deadline, cluster.log_text()
        time.sleep(0.1)
    with database_refused(cluster.database_url):
        time.sleep(seconds)
    return states


def _check_everything_finished_and_alerted(cluster: Cluster, receiver: Receiver, job_ids: list[str]) -> None:
    final = cluster.wait(job_ids, timeout=240)
    assert set(final.values()) <= set(TERMINAL), final
    with cluster.session() as s:
        videos = s.scalars(select(Video)).all()
        assert [v.id for v in videos if v.status == "failed" and not v.error] == []  # every failure says why
        per_video = dict(s.execute(select(Detection.video_id, func.count()).group_by(Detection.video_id)).all())
        assert set(per_video.values()) <= {1}  # one verdict per video and target, whatever was redone
        positives = s.scalar(select(func.count()).select_from(Detection).where(Detection.verdict == "positive"))
    assert positives >= 1
    # Every positive reaches the receiver, once by its key (a repeat is dropped there).
    deadline = time.monotonic() + 90
    while True:
        with cluster.session() as s:
            rows = s.scalars(select(AlertRow)).all()
        if len(rows) == positives and all(r.status == "sent" for r in rows) and len(receiver.keys) == positives:
            break
        assert time.monotonic() < deadline, (
            [(r.video_id, r.status, r.error) for r in rows], receiver.keys, cluster.log_text())
        time.sleep(0.5)
    assert len(receiver.requests) == positives + receiver.dropped


def test_database_refused_for_60_s_mid_run_every_video_finishes_and_every_positive_is_alerted(
    tmp_path, postgres_url, redis_url, red_target  # noqa: F811
):
    with Receiver() as receiver:
        # Retries span 120 s: the outage is outlasted; the reaper would act only after 600 s, and leases
        # (not renewable while the database is gone) outlast it too. A lease shorter than an outage
        # gets its video requeued once after it: work redone, never a second verdict or alert.
        cluster = _cluster(tmp_path, postgres_url, redis_url, red_target, receiver, task_retry_window=120,
                           task_retry_backoff=0.5, task_retry_backoff_max=3, stall_timeout=600, lease_seconds=120)
        try:
            job_ids = _start(cluster, 8)
            at_cut = _cut_mid_run(cluster, job_ids, 60)
            assert set(at_cut.values()) - set(TERMINAL), at_cut  # some videos were mid-way when it went
            _check_everything_finished_and_alerted(cluster, receiver, job_ids)
            assert set(cluster.statuses().values()) == {"done"}  # retried through the outage, nothing lost
            logs = "".join(path.read_text(errors="replace") for path in cluster.logs.values())
            assert "; retry " in logs and "could not record the failure" not in logs and ": requeued from " not in logs
        finally:
            cluster.stop()


def test_database_refused_longer_than_the_retry_budget_the_reaper_finishes_the_job(
    tmp_path, postgres_url, redis_url, red_target  # noqa: F811
):
    with Receiver() as receiver:
        # Retries give up after about 6 s, inside a 20 s outage; stalled videos are requeued 15 s on.
        cluster = _cluster(tmp_path, postgres_url, redis_url, red_target, receiver, task_retry_window=6,
                           task_retry_backoff=0.5, task_retry_backoff_max=1, stall_timeout=15, stall_requeues=3)
        try:
            job_ids = _start(cluster, 6)
            at_cut = _cut_mid_run(cluster, job_ids, 20)
            assert set(at_cut.values()) - set(TERMINAL), at_cut
            _check_everything_finished_and_alerted(cluster, receiver, job_ids)
            logs = "".join(path.read_text(errors="replace") for path in cluster.logs.values())
            assert "could not record the failure" in logs  # the budget ran out inside the outage
            assert ": requeued from " in logs  # and the reaper took over
        finally:
            cluster.stop()


def test_worker_killed_between_the_post_and_its_record_the_receiver_drops_the_repeat(
    tmp_path, postgres_url, redis_url, red_target  # noqa: F811
):
    with Receiver(hold=1) as receiver:
        cluster = _cluster(tmp_path, postgres_url, redis_url, red_target, receiver, broker_visibility_timeout=4)
        try:
            cluster.start_worker("first", "io,cpu,score")
            (job,) = cluster.enqueue(str(make_videos(tmp_path / "videos", 1, seconds=4)[0]), "--target", "red")
            assert receiver.arrived.wait(180), cluster.log_text()  # the POST is in; its answer is held back
            cluster.kill_worker("first")  # kill -9 before it can record the delivery
            receiver.release()
            with cluster.session() as s:
                (row,) = s.scalars(select(AlertRow)).all()
                assert row.status == "pending" and cluster.statuses()[job] == "done"
            cluster.start_worker("second", "io,cpu,score")
            cluster.start_beat()
            deadline = time.monotonic() + 120
            while True:
                with cluster.session() as s:
                    (row,) = s.scalars(select(AlertRow)).all()
                if row.status == "sent":
                    break
                assert time.monotonic() < deadline, cluster.log_text()
                time.sleep(0.5)
            time.sleep(3)  # a few more follow-up passes and the redelivered alert task: nothing more goes out
            keys = [r["headers"]["Idempotency-Key"] for r in receiver.requests]
            assert len(keys) == 2 and len(set(keys)) == 1, keys  # sent again once, under the same key
            assert receiver.keys == keys[:1] and receiver.dropped == 1
        finally:
            cluster.stop()
