"""What a reporter files, with real Celery workers (``tiktok-tracker worker``), the local
Redis and a Postgres database of the module's own (issue 29): a positive video's timeline
is completed after its early verdict and alert, ``enqueue --all-frames`` scores every frame
at once, a person's review survives ``enqueue --force``, and a truncated file reads
``partial`` in every output.

Videos of 12 s are sampled to 12 frames; the ``red`` target needs 4 positive frames, so the
early verdict decides a red video after 4 and its alert (the log channel, in the io
worker's log) lists 4 moments. The follow-up then scores the other 8 into the same
detection row (the alert still points at it), and drops the video's media.
"""

from __future__ import annotations

import json
import re
import time

import pytest
from sqlalchemy import select

from tests.pipeline_support import (
    BLUE,
    RED,
    Cluster,
    module_postgres_url,  # noqa: F401  (fixture)
    postgres_url,  # noqa: F401  (fixture)
    red_target,  # noqa: F401  (fixture)
    redis_url,  # noqa: F401  (fixture)
)
from tests.videos import truncated_copy, write_video
from workers.storage.models import AlertRow, Detection, Video

pytestmark = pytest.mark.services

FRAMES = 12  # sampled (1 a second)


def _detection(cluster: Cluster, job: str) -> Detection:
    with cluster.session() as s:
        det = s.scalars(select(Detection).join(Video).where(Video.job_id == job)).one()
        det.frame_scores  # noqa: B018  (loaded while the session is open)
        return det


def _wait_complete(cluster: Cluster, job: str, timeout: float = 120) -> Detection:
    deadline = time.monotonic() + timeout
    while not (det := _detection(cluster, job)).timeline_complete:
        assert time.monotonic() < deadline, f"timeline not completed: {det.scored_frames}/{det.frames}\n{cluster.log_text()}"
        time.sleep(0.25)
    return det


def _alerted_moments(cluster: Cluster, name: str) -> str:
    """What the log channel's alert for the video file ``name`` says (``at 0:00, 0:01 ...``)."""
    deadline = time.monotonic() + 30
    while True:
        lines = [line for line in cluster.logs["io+cpu"].read_text().splitlines() if "ALERT target=red" in line and name in line]
        if lines:
            return re.search(r" at (.*?) url=", lines[0]).group(1)
        assert time.monotonic() < deadline, cluster.log_text()
        time.sleep(0.25)


@pytest.fixture(scope="module")
def run(tmp_path_factory, red_target, module_postgres_url, redis_url):  # noqa: F811
    root = tmp_path_factory.mktemp("timeline")
    red = write_video(root / "red.mp4", seconds=FRAMES, fps=4, color=RED, seed=1)
    blue = write_video(root / "blue.mp4", seconds=FRAMES, fps=4, color=BLUE, seed=2)
    every = write_video(root / "every.mp4", seconds=FRAMES, fps=4, color=RED, seed=3)
    cut = truncated_copy(write_video(root / "whole.mp4", seconds=FRAMES, fps=4, color=RED, seed=4), root / "cut.mp4", keep=1 / 3)
    # Three different videos, whatever their frames' likeness: none takes another's verdicts.
    cluster = Cluster(root, module_postgres_url, redis_url, red_target, repost_matching="false", vgg16_precision="float32")
    try:
        cluster.start_worker("io+cpu", "io,cpu", concurrency=2)
        cluster.start_worker("score", "score")
        early_jobs = cluster.enqueue(str(red), str(blue), "--target", "red")
        all_frames_job = cluster.enqueue(str(every), "--target", "red", "--all-frames")
        cut_job = cluster.enqueue(str(cut), "--target", "red")
        jobs = dict(zip(("red", "blue", "every", "cut"), [*early_jobs, *all_frames_job, *cut_job], strict=True))
        final = cluster.wait(list(jobs.values()), timeout=240)
        assert set(final.values()) == {"done"}, cluster.log_text()
        yield cluster, jobs
    finally:
        cluster.stop()


def test_a_positive_gets_its_early_alert_then_its_complete_timeline(run):
    cluster, jobs = run
    early = _alerted_moments(cluster, "red.mp4").split(", ")
    assert 0 < len(early) < FRAMES  # the alert went out on the early verdict's frames
    det = _wait_complete(cluster, jobs["red"])
    assert det.verdict == "positive" and det.frames == det.scored_frames == FRAMES
    scores = det.frame_scores
    assert [f.frame_index for f in scores] == sorted({f.frame_index for f in scores}) and len(scores) == FRAMES
    positive = [round(f.timestamp, 3) for f in scores if f.score >= det.threshold]
    assert det.positive_timestamps == positive and det.positive_frames == len(positive) > len(early)
    best = max(scores, key=lambda f: f.score)
    assert (det.best_timestamp, det.best_score) == (best.timestamp, best.score) and det.evidence_key
    strip = sorted((f for f in scores if f.score >= det.threshold), key=lambda f: (-f.score, f.frame_index))[:6]
    assert {f.frame_index for f in scores if f.evidence_key} == {f.frame_index for f in strip}  # the evidence strip, of all frames
    with cluster.session() as s:
        (alert,) = s.scalars(select(AlertRow).join(Video).where(Video.job_id == jobs["red"])).all()
        assert alert.detection_id == det.id  # completed in place: the row the alert (and any review) holds
    rows = {r["job_id"]: r for r in json.loads(cluster.cli("results", "--format", "json").stdout)}
    assert rows[jobs["red"]]["timeline_complete"] is True and rows[jobs["red"]]["scored_frames"] == FRAMES
    # Its media were kept for the follow-up and dropped after it; its evidence is the new strip's, nothing more.
    media = cluster.root / "data" / "media"
    kept = {str(p.relative_to(media)) for p in (media / "evidence" / jobs["red"]).rglob("*.jpg")}
    assert kept == {det.evidence_key, *(f.evidence_key for f in scores if f.evidence_key)}
    assert not [p for p in media.rglob("*") if jobs["red"] in p.name and not p.is_relative_to(media / "evidence")]


def test_a_repeated_follow_up_changes_nothing(run, red_target):  # noqa: F811
    from workers.pipeline import stages
    from workers.settings import Settings

    cluster, jobs = run
    before = _wait_complete(cluster, jobs["red"])
    settings = Settings(
        _env_file=None,
        data_dir=cluster.root / "data",
        models_dir=red_target,
        vgg16_weights="random",
        database_url=cluster.database_url,
        broker_url="",
    )
    with cluster.session() as s:
        video_id = s.scalars(select(Video.id).where(Video.job_id == jobs["red"])).one()
    assert stages.complete_timeline(stages.StageContext.from_settings(settings), video_id) is stages.Next.STOP
    after = _detection(cluster, jobs["red"])
    assert (after.id, [f.id for f in after.frame_scores]) == (before.id, [f.id for f in before.frame_scores])


def test_a_negative_keeps_its_early_verdict(run):
    cluster, jobs = run
    det = _detection(cluster, jobs["blue"])
    assert det.verdict == "negative" and det.scored_frames < det.frames and not det.timeline_complete


def test_enqueue_all_frames_scores_every_frame_in_the_first_pass(run):
    cluster, jobs = run
    moments = _alerted_moments(cluster, "every.mp4")  # made from the first pass
    det = _detection(cluster, jobs["every"])
    assert det.timeline_complete and det.reused_frames == 0
    assert (
        moments.endswith(f"(+{det.positive_frames - 10} more)")
        if det.positive_frames > 10
        else len(moments.split(", ")) == det.positive_frames
    )
    with cluster.session() as s:
        assert s.scalars(select(Video.all_frames).where(Video.job_id == jobs["every"])).one() is True


def test_a_review_survives_a_forced_rerun(run):
    cluster, jobs = run
    det = _wait_complete(cluster, jobs["red"])
    reviewed = cluster.cli("review", str(det.id), "confirmed", "--by", "desk")
    assert reviewed.returncode == 0, reviewed.stderr
    (rerun,) = cluster.enqueue(str(cluster.root / "red.mp4"), "--target", "red", "--force")
    assert cluster.wait([rerun], timeout=120)[rerun] == "done", cluster.log_text()
    rows = [r for r in json.loads(cluster.cli("results", "--format", "json").stdout) if r["job_id"] == rerun]
    assert [(r["detection_id"], r["review"], r["review_disagrees"]) for r in rows] == [(det.id, "confirmed", False)]
    _wait_complete(cluster, rerun)  # its own follow-up, before the module's workers stop


def test_a_truncated_file_reads_partial_in_every_output(run):
    cluster, jobs = run
    (row,) = [r for r in json.loads(cluster.cli("results", "--format", "json").stdout) if r["job_id"] == jobs["cut"]]
    assert row["partial"] is True and row["verdict"].endswith("(partial)") and 0 < row["decoded_frames"] < row["promised_frames"]
    note = f"partial: {row['decoded_frames']} of {row['promised_frames']} frames decoded"
    assert row["partial_note"] == note
    csv_text = cluster.cli("results", "--format", "csv").stdout
    assert next(line for line in csv_text.splitlines() if jobs["cut"] in line).count("(partial)") == 1 and note in csv_text
    status = cluster.cli("status", jobs["cut"]).stdout
    assert "(partial)" in status and note in " ".join(status.split())
