"""The stage functions without Celery (SQLite, in this process): each is
idempotent, a finished video stops the chain, failures keep their reason."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import func, select

from tests.pipeline_support import postgres_url, red_target  # noqa: F401  (fixtures)
from tests.videos import write_video
from workers.pipeline import stages
from workers.pipeline.stages import Next
from workers.settings import Settings
from workers.storage import results
from workers.storage.db import session_scope
from workers.storage.models import Detection, FrameScore, StageTiming, Video, utcnow


@pytest.fixture()
def ctx(tmp_path, red_target):  # noqa: F811
    settings = Settings(
        data_dir=tmp_path / "data", models_dir=red_target, vgg16_weights="random",
        database_url=f"sqlite:///{tmp_path / 'results.db'}", broker_url="",
    )
    return stages.StageContext.from_settings(settings)


def _queue(ctx, source, targets=("red",)) -> int:
    with session_scope(ctx.db_url) as s:
        video = Video(job_id=None, source=str(source), targets=list(targets))
        s.add(video)
        s.flush()
        return video.id


def _count(ctx, model) -> int:
    with session_scope(ctx.db_url) as s:
        return s.scalar(select(func.count()).select_from(model))


def _video(ctx, video_id) -> Video:
    with session_scope(ctx.db_url) as s:
        return s.get(Video, video_id)


def test_each_stage_can_run_twice_without_duplicates(ctx, tmp_path):
    path = write_video(tmp_path / "red.mp4", seconds=3, color=(210, 30, 30))
    vid = _queue(ctx, path)
    for stage in (stages.download, stages.extract_frames, stages.score):
        assert stage(ctx, vid) is Next.CONTINUE and stage(ctx, vid) is Next.CONTINUE
    assert _video(ctx, vid).status == "scoring"
    assert stages.verdict(ctx, vid) is Next.CONTINUE
    done = _video(ctx, vid)
    assert done.status == "done" and done.sampled_frames == 3
    # 1 positive of 3 frames decides it: the early verdict scored 1 frame
    assert (_count(ctx, Detection), _count(ctx, FrameScore)) == (1, 1)
    # the whole chain again (a redelivered message): nothing moves, nothing is added
    for stage in (stages.download, stages.extract_frames, stages.score):
        assert stage(ctx, vid) is Next.STOP
    assert stages.verdict(ctx, vid) is Next.TO_ALERT  # done already: on to the (idempotent) alert stage
    assert stages.alert(ctx, vid) is Next.CONTINUE and stages.alert(ctx, vid) is Next.CONTINUE
    assert (_count(ctx, Detection), _count(ctx, FrameScore)) == (1, 1)
    # the stages' intermediates are gone, the evidence stays
    assert {k.split("/")[0] for k in ctx.store.keys("")} == {"evidence"}
    # the best frame, and each positive frame (1, within evidence_frames) for review
    assert len(list(ctx.store.keys("evidence"))) == 1 + 1


def test_verdict_rerun_before_done_replaces_rows(ctx, tmp_path):
    vid = _queue(ctx, write_video(tmp_path / "blue.mp4", seconds=3, color=(30, 30, 210)))
    for stage in (stages.download, stages.extract_frames, stages.score):
        stage(ctx, vid)
    scores = ctx.store.get(f"scores/{vid}.json")
    stages.verdict(ctx, vid)
    # as if the worker died after its commit but before the chain moved on
    with session_scope(ctx.db_url) as s:
        results.set_status(s.get(Video, vid), "scoring")
    ctx.store.put(f"scores/{vid}.json", scores)
    stages.verdict(ctx, vid)
    assert (_count(ctx, Detection), _count(ctx, FrameScore)) == (1, 3)
    with session_scope(ctx.db_url) as s:
        (det,) = s.scalars(select(Detection)).all()
        assert det.verdict == "negative" and det.evidence_key is None


def test_timings_are_replaced_not_added(ctx, tmp_path):
    vid = _queue(ctx, tmp_path / "x.mp4")
    now = utcnow()
    stages.record_timing(ctx, vid, "frames", "cpu-1@host/1", now, now + timedelta(seconds=1))
    stages.record_timing(ctx, vid, "frames", "cpu-2@host/2", now, now + timedelta(seconds=2))
    with session_scope(ctx.db_url) as s:
        (row,) = s.scalars(select(StageTiming)).all()
        assert row.worker == "cpu-2@host/2"


def test_two_deliveries_timing_one_stage_at_once_leave_one_row(postgres_url):  # noqa: F811
    """A broker redelivery runs a stage while its first delivery still does:
    both record the stage's timing in open transactions; one row remains."""
    import threading

    from sqlalchemy.orm import Session

    from workers.storage.db import get_engine

    engine = get_engine(postgres_url)
    with Session(engine) as s, s.begin():
        video = Video(job_id=None, source="x.mp4")
        s.add(video)
        s.flush()
        vid = video.id
    now = utcnow()
    first = Session(engine)
    first.begin()
    results.record_timing(first, vid, "verdict", "first", now, now)  # not committed yet

    def second() -> None:  # blocks on the unique index until the first commits
        with Session(engine) as s, s.begin():
            results.record_timing(s, vid, "verdict", "second", now, now + timedelta(seconds=1))

    thread = threading.Thread(target=second)
    thread.start()
    thread.join(1.0)
    assert thread.is_alive()  # waiting for the first transaction
    first.commit()
    first.close()
    thread.join(30)
    assert not thread.is_alive()
    with Session(engine) as s:
        assert [t.worker for t in s.scalars(select(StageTiming).where(StageTiming.video_id == vid))] == ["second"]


def test_missing_file_and_unknown_url_fail_with_reason(ctx, tmp_path):
    from workers.errors import TrackerError

    missing = _queue(ctx, tmp_path / "gone.mp4")
    with pytest.raises(TrackerError, match="gone.mp4: no such file"):
        stages.download(ctx, missing)
    url = _queue(ctx, "http://10.0.0.1/video.mp4")  # URLs go through the downloader's safety policy
    with pytest.raises(TrackerError, match="refused URL 'http://10.0.0.1/video.mp4'.*private"):
        stages.download(ctx, url)
    stages.fail(ctx, missing, "gone.mp4: no such file")
    video = _video(ctx, missing)
    assert (video.status, video.error) == ("failed", "gone.mp4: no such file")
    assert stages.download(ctx, missing) is Next.STOP  # failed is final


def test_housekeeping_drops_leftovers_of_finished_and_vanished_videos(ctx, tmp_path):
    done = _queue(ctx, tmp_path / "a.mp4")
    running = _queue(ctx, tmp_path / "b.mp4")
    with session_scope(ctx.db_url) as s:
        results.set_status(s.get(Video, done), "done")
        results.set_status(s.get(Video, running), "scoring")
    for vid in (done, running, 999):
        ctx.store.put(f"frames/{vid}.npz", b"x")
    ctx.store.put("videos/999/source.mp4", b"x")
    report = stages.housekeeping(ctx)
    assert sorted(ctx.store.keys("")) == [f"frames/{running}.npz"]
    assert report["statuses"] == {"done": 1, "scoring": 1}


def test_keep_videos_keeps_the_downloaded_file(ctx, tmp_path):
    ctx = stages.StageContext.from_settings(ctx.settings.model_copy(update={"keep_videos": True}))
    vid = _queue(ctx, write_video(tmp_path / "blue.mp4", seconds=2, color=(30, 30, 210)))
    for stage in (stages.download, stages.extract_frames, stages.score, stages.verdict):
        assert stage(ctx, vid) is Next.CONTINUE
    assert list(ctx.store.keys("")) == [f"videos/{vid}/source.mp4"]


def test_scan_files_overlaps_files_and_keeps_each_result_in_its_place(tmp_path, red_target):  # noqa: F811
    """``Scanner.scan_files`` (next file decoded while this one is scored) gives, in order,
    what ``scan_file`` gives one file at a time; a bad file in the middle fails alone."""
    from tests.pipeline_support import BLUE, RED
    from workers.scan import Scanner

    red = write_video(tmp_path / "red.mp4", seconds=3, color=RED)
    bad = tmp_path / "bad.mp4"
    bad.write_text("not a video")
    blue = write_video(tmp_path / "blue.mp4", seconds=3, color=BLUE)
    settings = Settings(data_dir=tmp_path / "data", models_dir=red_target, vgg16_weights="random",
                        database_url=f"sqlite:///{tmp_path / 'scan.db'}")
    scanner = Scanner.for_names(settings, ["red"])
    together = [(p, [r.to_json() for r in rows]) for p, rows in scanner.scan_files([red, bad, blue], force=True)]
    assert [p for p, _ in together] == [red, bad, blue]
    assert [rows[0]["verdict"] for _, rows in together] == ["positive", "failed", "negative"]
    assert "not a readable video" in together[1][1][0]["error"]
    alone = [[r.to_json() for r in scanner.scan_file(p, force=True)] for p in (red, bad, blue)]
    assert [rows for _, rows in together] == alone
    assert list(scanner.scan_files([])) == []


def test_a_reset_database_never_meets_an_earlier_jobs_media(ctx, tmp_path):
    """Media are named by job id: video 1 of a new database (same data dir) is not video 1
    of the old one, whose scores were left in the store (a worker died before its clean-up)."""
    from workers.pipeline import submit
    from workers.media.keys import scores_key

    def queue_job(context, path) -> int:
        with session_scope(context.db_url) as s:
            video = submit.new_video(str(path), ["red"])
            s.add(video)
            s.flush()
            return video.id

    red = write_video(tmp_path / "red.mp4", seconds=3, color=(210, 30, 30))
    blue = write_video(tmp_path / "blue.mp4", seconds=3, color=(30, 30, 210))
    old = queue_job(ctx, red)
    for stage in (stages.download, stages.extract_frames, stages.score):
        stage(ctx, old)
    old_job = _video(ctx, old).job_id
    assert ctx.store.exists(scores_key(old_job)) and not ctx.store.exists(scores_key(old))

    fresh = stages.StageContext.from_settings(
        ctx.settings.model_copy(update={"database_url": f"sqlite:///{tmp_path / 'reset.db'}"}))
    new = queue_job(fresh, blue)
    assert new == old  # the same database id ...
    for stage in (stages.download, stages.extract_frames, stages.score, stages.verdict):
        assert stage(fresh, new) is Next.CONTINUE
    with session_scope(fresh.db_url) as s:
        (det,) = s.scalars(select(Detection)).all()
        assert det.verdict == "negative"  # ... its own scores (blue), not the red video's left behind
    stages.housekeeping(fresh)  # the earlier database's job is unknown here: its leftovers go
    assert [k for k in fresh.store.keys("") if not k.startswith("evidence/")] == []


def test_truncated_video_records_decoded_against_promised_frames_and_a_partial_verdict(ctx, tmp_path, caplog):
    from tests.videos import truncated_copy
    from workers.scan import Scanner

    whole = write_video(tmp_path / "red.mp4", seconds=6, fps=10, color=(210, 30, 30))
    cut = truncated_copy(whole, tmp_path / "cut.mp4", keep=1 / 3)
    vid = _queue(ctx, cut)
    with caplog.at_level("WARNING"):
        for stage in (stages.download, stages.extract_frames, stages.score, stages.verdict):
            assert stage(ctx, vid) is Next.CONTINUE
    video = _video(ctx, vid)
    assert video.promised_frames == 60 and 0 < video.decoded_frames < 30 and video.partial
    assert video.sampled_frames < 6 and "could be decoded (truncated or corrupt file)" in caplog.text
    with session_scope(ctx.db_url) as s:
        (det,) = s.scalars(select(Detection)).all()
        assert det.partial is True
    # The whole file: nothing partial. The in-process scan says the same.
    vid = _queue(ctx, whole)
    for stage in (stages.download, stages.extract_frames, stages.score, stages.verdict):
        stage(ctx, vid)
    assert _video(ctx, vid).partial is False
    scanner = Scanner.for_names(ctx.settings.model_copy(update={"database_url": f"sqlite:///{tmp_path / 'scan.db'}"}), ["red"])
    assert [r.partial for r in scanner.scan_file(cut)] == [True]
    assert [r.to_json()["partial"] for r in scanner.scan_file(whole)] == [False]
