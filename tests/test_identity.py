"""One identity rule for scan and pipeline (``workers.processing.identity``), on one
database, through the real CLI, Celery workers, Redis and Postgres:

- a video is its source (or platform id); a copy of its bytes is a linked
  repost with a row of its own: scan after pipeline, and pipeline after scan,
  keep both videos' sources and histories;
- enqueueing a source again is the same job (the CLI says so), one video, one alert;
- two copies enqueued at once are scored once (the second waits and is linked) and alert once.
"""

from __future__ import annotations

import json
import shutil
import time

import pytest
from sqlalchemy import select

from tests.local_http import Receiver
from tests.pipeline_support import (
    BLUE,
    RED,
    Cluster,
    module_postgres_url,  # noqa: F401  (fixture)
    red_target,  # noqa: F401  (fixture)
    redis_url,  # noqa: F401  (fixture)
)
from tests.videos import write_video
from workers.storage.models import AlertRow, Video
from workers.video_ref import canonical_source

pytestmark = pytest.mark.services


@pytest.fixture(scope="module")
def stack(tmp_path_factory, module_postgres_url, redis_url, red_target):  # noqa: F811
    root = tmp_path_factory.mktemp("identity")
    with Receiver() as hook:
        cluster = Cluster(
            root, module_postgres_url, redis_url, red_target,
            alert_webhook_urls=hook.url("/hook"), alert_timeout=5, alert_retry_backoff=0.1, repost_wait_seconds=600,
        )
        try:
            cluster.start_worker("io", "io", concurrency=2)
            cluster.start_worker("cpu", "cpu", concurrency=2)
            cluster.start_worker("score", "score")
            yield cluster, hook, root
        finally:
            cluster.stop()


def clip(path, **kwargs):
    path.parent.mkdir(parents=True, exist_ok=True)
    return write_video(path, **kwargs)


def video_named(session, path) -> Video:
    return session.scalars(select(Video).where(Video.source == canonical_source(str(path)))).one()


def wait_alert_stage(cluster, paths, timeout: float = 120) -> None:
    """Until each video's alert stage has run: it runs after the verdict stage marks the video done."""
    deadline = time.monotonic() + timeout
    while True:
        with cluster.session() as s:
            if all("alert" in {t.stage for t in video_named(s, p).timings} for p in paths):
                return
        assert time.monotonic() < deadline, cluster.log_text()
        time.sleep(0.25)


def alert_rows(session, *videos) -> list[str]:
    return sorted(r.status for r in session.scalars(select(AlertRow).where(AlertRow.video_id.in_([v.id for v in videos]))))


def scan(cluster, *paths):
    proc = cluster.cli("scan", *map(str, paths), "--target", "red", "--json", timeout=600)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return [json.loads(line) for line in proc.stdout.splitlines() if line.strip()]


def test_scan_after_pipeline_keeps_the_pipelines_video(stack):
    cluster, _hook, root = stack
    original = clip(root / "a" / "piped.mp4", color=RED, seed=11)
    copy = shutil.copy(original, root / "a" / "local-copy.mp4")
    (job,) = cluster.enqueue(str(original), "--target", "red")
    cluster.wait([job])
    (row,) = scan(cluster, copy)
    with cluster.session() as s:
        piped, scanned = video_named(s, original), video_named(s, copy)
        assert piped.id != scanned.id
        assert (piped.job_id, piped.status) == (job, "done")
        assert {t.stage for t in piped.timings} >= {"download", "frames", "score", "verdict", "alert"}
        assert scanned.duplicate_of == piped.id and scanned.job_id is None and scanned.timings == []
        (mine,), (theirs,) = scanned.detections, piped.detections
        assert (mine.verdict, mine.best_score) == (theirs.verdict, theirs.best_score)
    assert row["cached"] and row["repost_of"] == str(original) and row["verdict"] == "positive"


def test_pipeline_after_scan_keeps_the_scanned_video(stack):
    cluster, hook, root = stack
    scanned_path = clip(root / "b" / "scanned.mp4", color=RED, seed=12)
    copy = shutil.copy(scanned_path, root / "b" / "queued-copy.mp4")
    (row,) = scan(cluster, scanned_path)
    assert (row["cached"], row["verdict"]) == (False, "positive")
    (job,) = cluster.enqueue(str(copy), "--target", "red")
    cluster.wait([job])
    with cluster.session() as s:
        scanned, piped = video_named(s, scanned_path), video_named(s, copy)
        assert scanned.job_id is None and scanned.source == str(scanned_path) and scanned.duplicate_of is None
        assert piped.job_id == job and piped.duplicate_of == scanned.id and piped.status == "done"
        assert "score" not in {t.stage for t in piped.timings}  # the scan's verdicts were reused
        assert piped.detections[0].best_score == scanned.detections[0].best_score


def test_enqueueing_a_source_again_is_one_video_and_one_alert(stack):
    cluster, hook, root = stack
    path = clip(root / "c" / "again.mp4", color=RED, seed=13)
    (job,) = cluster.enqueue(str(path), "--target", "red")
    cluster.wait([job])
    again = cluster.cli("enqueue", str(path), "--target", "red")
    assert again.returncode == 0, again.stderr
    assert again.stdout.split("\t")[0] == job
    assert f"already done as {job}" in " ".join(again.stderr.split())
    forced = cluster.enqueue(str(path), "--target", "red", "--force")
    assert forced != [job]
    cluster.wait(forced)
    with cluster.session() as s:
        (video,) = s.scalars(select(Video).where(Video.source == canonical_source(str(path)))).all()
        assert video.job_id == forced[0] and video.status == "done"
        assert alert_rows(s, video) == ["sent"]


def test_two_copies_enqueued_at_once_are_scored_once_and_alert_once(stack):
    cluster, hook, root = stack
    first = clip(root / "d" / "first.mp4", seconds=6, color=RED, seed=14)
    second = shutil.copy(first, root / "d" / "second.mp4")
    negative = clip(root / "d" / "blue.mp4", color=BLUE, seed=15)
    negative_copy = shutil.copy(negative, root / "d" / "blue-copy.mp4")
    jobs = cluster.enqueue(str(first), str(second), str(negative), str(negative_copy), "--target", "red")
    assert len(set(jobs)) == 4
    cluster.wait(jobs, timeout=300)
    wait_alert_stage(cluster, [first, second, negative, negative_copy])
    with cluster.session() as s:
        for pair, verdict in (((first, second), "positive"), ((negative, negative_copy), "negative")):
            videos = [video_named(s, p) for p in pair]
            assert {v.status for v in videos} == {"done"}, [(v.source, v.error) for v in videos]
            scored = [v for v in videos if "score" in {t.stage for t in v.timings}]
            assert len(scored) == 1, [(v.source, sorted(t.stage for t in v.timings)) for v in videos]
            (original,) = scored
            (linked,) = [v for v in videos if v is not original]
            assert linked.duplicate_of == original.id and linked.duplicate_match == 1.0
            assert [d.verdict for d in original.detections] == [d.verdict for d in linked.detections] == [verdict]
            assert alert_rows(s, *videos) == (["repost", "sent"] if verdict == "positive" else [])
