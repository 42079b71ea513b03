"""No video stays mid-way: stage bookkeeping errors are retried like the stage's own, and
beat's reaper requeues (then fails, with the reason) videos that stopped moving and gives
positives that never got an alert row one. Stage functions and eager tasks on SQLite; the
same under a real database outage, with worker processes: tests/test_pipeline_outage.py."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select, update
from sqlalchemy.exc import OperationalError

from tests.pipeline_support import BLUE, RED, red_target  # noqa: F401  (fixture)
from tests.videos import write_video
from workers.pipeline import alerting, reaper, stages, submit
from workers.settings import Settings
from workers.storage.db import session_scope
from workers.storage.models import AlertRow, StageTiming, Video, utcnow


@pytest.fixture()
def ctx(tmp_path, red_target):  # noqa: F811
    settings = Settings(
        data_dir=tmp_path / "data", models_dir=red_target, vgg16_weights="random",
        database_url=f"sqlite:///{tmp_path / 'results.db'}", broker_url="",
        stall_timeout=60, stall_requeues=1, task_retry_window=0.5, task_retry_backoff=0.01, task_retry_backoff_max=0.01,
    )
    return stages.StageContext.from_settings(settings)


def _queue(ctx, source, job=True) -> int:
    with session_scope(ctx.db_url) as s:
        video = submit.new_video(str(source), ["red"])
        if not job:
            video.job_id = None
        s.add(video)
        s.flush()
        return video.id


def _age(ctx, video_id, seconds) -> None:
    with session_scope(ctx.db_url) as s:
        s.execute(update(Video).where(Video.id == video_id).values(updated_at=utcnow() - timedelta(seconds=seconds)))


def _video(ctx, video_id) -> Video:
    with session_scope(ctx.db_url) as s:
        return s.get(Video, video_id)


def test_stalled_video_is_requeued_from_its_stage_then_failed_with_the_reason(ctx, tmp_path):
    path = write_video(tmp_path / "red.mp4", seconds=2, color=RED)
    # one row per source (videos.source_key): the others under names of their own
    stuck, fresh, scanned = _queue(ctx, path), _queue(ctx, tmp_path / "fresh.mp4"), _queue(ctx, tmp_path / "scanned.mp4", job=False)
    stages.download(ctx, stuck)
    stages.extract_frames(ctx, stuck)
    stages.score(ctx, stuck)  # "scoring" (its verdict task was lost)
    _age(ctx, stuck, 120)
    _age(ctx, scanned, 120)  # not a pipeline job: left alone
    requeued = []
    report = reaper.reap_stalled(ctx, lambda vid, stage: requeued.append((vid, stage)))
    assert requeued == [(stuck, "score")] and report["requeued"] == 1
    assert _video(ctx, stuck).requeues == 1 and _video(ctx, fresh).status == "queued"
    assert reaper.reap_stalled(ctx, requeued.append)["requeued"] == 0  # the requeue counts as progress
    _age(ctx, stuck, 120)
    report = reaper.reap_stalled(ctx, requeued.append)
    assert report["failed"] == 1 and len(requeued) == 1
    failed = _video(ctx, stuck)
    assert failed.status == "failed" and failed.error.startswith("stalled: no progress for 1") and "scoring" in failed.error
    assert [k for k in ctx.store.keys("") if not k.startswith("evidence")] == []  # its media dropped
    assert _video(ctx, scanned).status == "queued"


def test_a_broker_that_refuses_the_requeue_leaves_the_video_for_the_next_pass(ctx, tmp_path):
    vid = _queue(ctx, write_video(tmp_path / "blue.mp4", seconds=2, color=BLUE))
    _age(ctx, vid, 120)

    def down(*_args):
        raise ConnectionError("broker down")

    assert reaper.reap_stalled(ctx, down)["requeued"] == 0
    assert _video(ctx, vid).status == "queued"


def test_positive_without_an_alert_row_gets_one_and_the_followup_pass_sends_it(ctx, tmp_path):
    vid = _queue(ctx, write_video(tmp_path / "red.mp4", seconds=3, color=RED))
    for stage in (stages.download, stages.extract_frames, stages.score, stages.verdict):
        stage(ctx, vid)  # the alert stage never ran
    assert reaper.backfill_alert_rows(ctx, utcnow()) == 0  # the alert stage still has its time
    _age(ctx, vid, 120)
    assert reaper.reap_stalled(ctx, lambda *a: None)["alert_rows"] == 1
    with session_scope(ctx.db_url) as s:
        (row,) = s.scalars(select(AlertRow)).all()
        assert (row.status, row.attempts, row.error) == ("failed", 0, reaper.NO_ALERT_ROW)
    assert reaper.reap_stalled(ctx, lambda *a: None)["alert_rows"] == 0  # once
    report = alerting.alert_followups(ctx)  # the log channel takes it
    assert (report["retried"], report["delivered"]) == (1, 1)
    assert stages.alert(ctx, vid) is stages.Next.CONTINUE  # the alert stage, late: sends nothing more
    with session_scope(ctx.db_url) as s:
        (row,) = s.scalars(select(AlertRow)).all()
        assert (row.status, row.attempts) == ("sent", 1)


def test_a_database_error_in_the_stage_bookkeeping_is_retried_like_the_stage(ctx, tmp_path, monkeypatch):
    from workers.pipeline import tasks

    vid = _queue(ctx, write_video(tmp_path / "red.mp4", seconds=2, color=RED))
    monkeypatch.setattr(tasks, "_context", ctx)
    real, calls = stages.record_timing, []

    def flaky(*args, **kwargs):
        calls.append(args[2])
        if len(calls) == 1:
            raise OperationalError("INSERT", {}, Exception("server closed the connection unexpectedly"))
        return real(*args, **kwargs)

    monkeypatch.setattr(stages, "record_timing", flaky)
    assert tasks.STAGE_TASKS["download"].apply(args=(vid,)).successful()
    assert calls == ["download", "download"]  # retried, not dropped
    with session_scope(ctx.db_url) as s:
        assert [t.stage for t in s.scalars(select(StageTiming))] == ["download"]
    # Always failing: after the retry window the video fails with the reason instead of staying mid-way.
    monkeypatch.setattr(stages, "record_timing", lambda *a, **k: (_ for _ in ()).throw(
        OperationalError("INSERT", {}, Exception("connection refused"))))
    assert tasks.STAGE_TASKS["frames"].apply(args=(vid,)).failed()
    failed = _video(ctx, vid)
    assert failed.status == "failed" and failed.error.startswith("frames: gave up after") and "connection refused" in failed.error
