"""The distributed pipeline end to end: real Celery workers (one OS process
per queue, started with ``tiktok-tracker worker``) on the local Redis, results
in a Postgres database of the test's own, random-weight VGG16, generated videos
(plus the seed videos when ../shared is there).

One run feeds several tests: twelve good videos, a corrupt file and a
non-video (both spoiled after enqueue) are enqueued together; then each test
checks one promise.
"""

from __future__ import annotations

import csv
import io
import json
import time

import pytest
from sqlalchemy import func, select

from tests.conftest import SEED
from tests.pipeline_support import (
    assert_scan_matches_pipeline,
    Cluster,
    make_videos,
    module_postgres_url,  # noqa: F401  (fixture)
    overlapping_workers,
    red_target,  # noqa: F401  (fixture)
    redis_url,  # noqa: F401  (fixture)
)
from tests.videos import truncate, write_video
from workers.storage.models import Detection, FrameScore, StageTiming, Video

pytestmark = pytest.mark.services

GOOD = 12
SEED_VIDEOS = ["Trump.mp4", "Biden.mp4"]


@pytest.fixture(scope="module")
def run(tmp_path_factory, module_postgres_url, redis_url, red_target):  # noqa: F811
    """Start an io, a cpu and a score worker; enqueue everything; wait for the end."""
    root = tmp_path_factory.mktemp("pipeline")
    videos = make_videos(root / "videos", GOOD)
    bad = root / "bad"
    bad.mkdir()
    # enqueue refuses files that do not open as videos (test_enqueue.py): these two are
    # videos when enqueued and are spoiled before any worker reads them, the case only
    # the pipeline can catch.
    corrupt, notes = (write_video(bad / name, seconds=3, seed=99) for name in ("corrupt.mp4", "notes.mp4"))
    seeds = [SEED / name for name in SEED_VIDEOS if (SEED / name).is_file()]
    cluster = Cluster(root, module_postgres_url, redis_url, red_target)
    try:
        sources = [*videos, corrupt, notes, *seeds]
        job_ids = cluster.enqueue(*map(str, sources), "--target", "red")
        assert len(job_ids) == len(sources)
        truncate(write_video(root / "whole.mp4", seconds=3, seed=99), corrupt, keep=0.4)
        notes.write_text("this is a shopping list, not a video\n")
        for queue in ("io", "cpu", "score"):
            cluster.start_worker(queue, queue)
        jobs = dict(zip(map(str, sources), job_ids))
        final = cluster.wait(job_ids, timeout=240)
        yield cluster, jobs, final, videos, seeds, (corrupt, notes)
    finally:
        cluster.stop()


def test_every_video_is_done_with_frame_scores_and_a_verdict(run):
    cluster, jobs, final, videos, seeds, _bad = run
    good = [str(p) for p in [*videos, *seeds]]
    assert len(good) >= 10
    assert {final[jobs[p]] for p in good} == {"done"}, cluster.log_text()
    with cluster.session() as s:
        for path in good:
            video = s.scalars(select(Video).where(Video.job_id == jobs[path])).one()
            assert video.error is None and video.sampled_frames and video.content_hash
            (det,) = video.detections
            assert det.target_name == "red" and det.verdict in ("positive", "negative")
            n_scores = s.scalar(select(func.count()).select_from(FrameScore).where(FrameScore.detection_id == det.id))
            assert n_scores == det.scored_frames > 0
            assert det.frames == video.sampled_frames
            assert {t.stage for t in video.timings} == {"download", "frames", "score", "verdict", "alert"}
            if path in map(str, videos):
                colour = "positive" if "/red" in path else "negative"
                assert det.verdict == colour, (path, det.verdict)
                assert (det.evidence_key is not None) == (colour == "positive")


def test_workers_ran_at_the_same_time(run):
    cluster, *_ = run
    with cluster.session() as s:
        timings = list(s.scalars(select(StageTiming)))
    workers = {t.worker for t in timings}
    assert len(workers) >= 3  # one per queue, each its own OS process
    assert overlapping_workers(timings), "no two workers were ever busy at once"


def test_corrupt_file_and_non_video_fail_with_their_reason(run):
    cluster, jobs, final, _videos, _seeds, (corrupt, notes) = run
    with cluster.session() as s:
        for path in (corrupt, notes):
            video = s.scalars(select(Video).where(Video.job_id == jobs[str(path)])).one()
            assert video.status == "failed"
            assert video.error.startswith(str(path)), video.error  # named as submitted, not as stored
            assert "not a readable video" in video.error or "no decodable frames" in video.error
            assert video.detections == []
    proc = cluster.cli("status", jobs[str(notes)], "--json")
    assert proc.returncode == 0 and json.loads(proc.stdout)["status"] == "failed"


def test_media_store_keeps_only_evidence(run):
    cluster, *_ = run
    media = cluster.root / "data" / "media"
    deadline = time.monotonic() + 120  # positives' media wait for their timeline follow-up (after the alert)
    while set(left := sorted(p.relative_to(media).parts[0] for p in media.rglob("*") if p.is_file())) - {"evidence"}:
        assert time.monotonic() < deadline, left
        time.sleep(0.5)
    assert left, "positive verdicts should have evidence thumbnails"
    with cluster.session() as s:
        keys = s.scalars(select(Detection.evidence_key).where(Detection.evidence_key.is_not(None))).all()
    assert keys and all((media / k).is_file() and (media / k).read_bytes()[:2] == b"\xff\xd8" for k in keys)


def test_results_and_status_commands(run):
    cluster, jobs, _final, videos, seeds, _bad = run
    as_json = json.loads(cluster.cli("results", "--format", "json").stdout)
    assert len(as_json) == len(videos) + len(seeds)
    positives = json.loads(cluster.cli("results", "--positive", "--target", "red", "--format", "json").stdout)
    assert {r["source"] for r in positives} >= {str(p) for p in videos if p.name.startswith("red")}
    assert all(r["verdict"] == "positive" for r in positives)
    rows = list(csv.DictReader(io.StringIO(cluster.cli("results", "--format", "csv").stdout)))
    assert len(rows) == len(as_json) and rows[0].keys() >= {"job_id", "source", "target", "verdict"}
    table = cluster.cli("results")
    assert table.returncode == 0 and "red" in table.stdout
    overview = json.loads(cluster.cli("status", "--json").stdout)
    assert overview["counts"] == {"done": len(videos) + len(seeds), "failed": 2}
    one = json.loads(cluster.cli("status", jobs[str(videos[0])], "--json").stdout)
    assert [t["stage"] for t in one["timings"]] == ["download", "frames", "score", "verdict", "alert"]
    missing = cluster.cli("status", "no-such-job")
    assert missing.returncode == 2 and missing.stderr.strip().startswith("error: no job")


def test_in_process_scan_gives_identical_scores_and_verdicts(run, tmp_path, red_target):  # noqa: F811
    """The same videos through ``Scanner`` (one process, SQLite) and through the workers."""
    from workers.settings import Settings

    cluster, jobs, _final, videos, seeds, _bad = run
    settings = Settings(
        data_dir=tmp_path / "data", models_dir=red_target, vgg16_weights="random",
        database_url=f"sqlite:///{tmp_path / 'scan.db'}",
    )
    chosen = [videos[0], videos[1], *seeds[:1]]
    assert_scan_matches_pipeline(cluster, settings, "red", {path: jobs[str(path)] for path in chosen})


def test_worker_logs_use_short_task_names(run):
    cluster, jobs, *_ = run
    score_log = cluster.logs["score"].read_text(errors="replace")
    assert "models warm" in score_log and "???" not in score_log  # start-up lines outside any task
    io_log = cluster.logs["io"].read_text(errors="replace")
    assert any(f"download[{job}]" in io_log for job in jobs.values())
