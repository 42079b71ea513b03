"""Ids and identities a user can rely on (issue 29, points 6 and 10): a job id is found by a
unique prefix (an ambiguous one is refused, naming the candidates); a local file is one video
however its path was typed, by ``scan`` or ``enqueue``; one row per source, even for two
submissions at once (a unique key); a repost copy waiting for its original shows progress to
the reaper; the web app's rescan goes through the pipeline's queues when a broker is set."""

from __future__ import annotations

import json

import pytest
import redis
from sqlalchemy.exc import IntegrityError
from starlette.testclient import TestClient

from tests.pipeline_support import private_redis  # noqa: F401  (fixture)
from tests.web_support import CSRF, seed_results, web_settings
from workers.processing import identity
from workers.storage import results, videos
from workers.storage.db import session_scope
from workers.storage.models import Detection, Video, utcnow

JOBS = ("0d5e6f70-aaaa-4bbb-8ccc-000000000001", "0d5e6f70-aaaa-4bbb-8ccc-000000000002", "9a8b7c6d-0000-4000-8000-000000000003")


@pytest.fixture()
def db_url(tt_env):
    from workers.settings import get_settings

    get_settings.cache_clear()
    return get_settings().resolved_database_url


def test_a_job_is_found_by_a_unique_prefix_and_an_ambiguous_one_names_the_candidates(db_url):
    with session_scope(db_url) as s:
        s.add_all(Video(job_id=job, source=f"/data/{i}.mp4", status="done") for i, job in enumerate(JOBS))
    with session_scope(db_url) as s:
        assert results.find_video(s, JOBS[2]).job_id == JOBS[2]
        assert results.find_video(s, "9a8b").job_id == JOBS[2]
        assert results.find_video(s, JOBS[2][:-1]).job_id == JOBS[2]
        assert results.find_video(s, "1").job_id == JOBS[0]  # a whole number is a video id
        assert results.find_video(s, "ffff0000") is None
        with pytest.raises(results.AmbiguousId) as refused:
            results.find_video(s, "0d5e6f70")
        assert JOBS[0] in str(refused.value) and JOBS[1] in str(refused.value) and JOBS[2] not in str(refused.value)
        short = results.short_job_ids(s, JOBS)
        assert short == {JOBS[0]: JOBS[0], JOBS[1]: JOBS[1], JOBS[2]: JOBS[2][:8]}  # the first two differ only at the end
        assert all(results.find_video(s, prefix).job_id == job for job, prefix in short.items())


def test_scan_and_enqueue_of_a_path_typed_two_ways_find_the_same_row(db_url, tmp_path, monkeypatch):
    (tmp_path / "data").mkdir(exist_ok=True)
    (tmp_path / "data" / "x.mp4").write_bytes(b"not read here")
    monkeypatch.chdir(tmp_path)
    with session_scope(db_url) as s:
        scanned, _ = identity.identify_file(s, "data/x.mp4", "ab" * 32)  # what `scan data/x.mp4` records
        scanned_id = scanned.id
    with session_scope(db_url) as s:
        for typed in ("data/x.mp4", "./data/x.mp4", str(tmp_path / "data" / ".." / "data" / "x.mp4")):
            assert identity.known_job(s, typed).id == scanned_id  # what `enqueue` looks up
        assert s.get(Video, scanned_id).source == str((tmp_path / "data" / "x.mp4").resolve())


def test_two_rows_of_one_source_are_refused_by_the_database(db_url):
    """What keeps two `enqueue` runs of one source at the same instant from making two rows
    (each looked it up before either inserted): the unique ``source_key``."""
    with session_scope(db_url) as s:
        s.add(videos.queued_video(JOBS[0], "https://example.org/v/1", ["t"]))
    with pytest.raises(IntegrityError), session_scope(db_url) as s:
        s.add(videos.queued_video(JOBS[1], "https://example.org/v/1", ["t"]))
    with session_scope(db_url) as s:
        assert s.query(Video).count() == 1


def test_a_repost_waiting_for_its_original_shows_progress(db_url):
    from datetime import timedelta

    with session_scope(db_url) as s:
        video = videos.queued_video(JOBS[0], "https://example.org/v/2", ["t"])
        s.add(video)
        s.flush()
        video_id = video.id
    for _ in range(2):  # the first check and every later one (when nothing else changes)
        with session_scope(db_url) as s:
            s.get(Video, video_id).updated_at = utcnow() - timedelta(hours=1)
        with session_scope(db_url) as s:
            videos.wait_for_original(s.get(Video, video_id))
        with session_scope(db_url) as s:
            assert (utcnow() - s.get(Video, video_id).updated_at.replace(tzinfo=utcnow().tzinfo)).total_seconds() < 60


def test_a_rescan_from_the_web_app_goes_through_the_queues_when_a_broker_is_set(tt_env, monkeypatch, private_redis):  # noqa: F811
    # A Redis of its own: no other test's worker may take the message it looks for.
    redis_url = private_redis.url
    settings = web_settings(monkeypatch, None)
    seeded = seed_results(settings)
    target = settings.models_dir / "logo"
    target.mkdir(parents=True)
    (target / "target.json").write_text(json.dumps({"kind": "face", "name": "logo", "version": "v2"}))
    monkeypatch.setenv("TT_BROKER_URL", redis_url)
    from workers.settings import get_settings

    get_settings.cache_clear()
    settings = get_settings()
    client = TestClient(__import__("workers.web.app", fromlist=["create_app"]).create_app(settings), follow_redirects=False)
    token = CSRF.search(client.get("/targets").text).group(1)
    reply = client.post("/targets/logo/rescan", data={"csrf": token})
    assert reply.status_code == 303, reply.text
    with session_scope(settings.resolved_database_url) as s:
        video = s.get(Video, seeded.video_id)
        assert video.status == "queued" and video.job_id and video.targets == ["logo"]
        assert [d.target_version for d in s.query(Detection)] == ["v1"]  # not rescored in the web process
    broker = redis.Redis.from_url(redis_url)
    assert broker.llen("io") >= 1, broker.keys()  # the download task of its new job, waiting for an io worker


def test_status_of_a_rerun_repost_names_its_original_and_only_this_jobs_stages_in_order(db_url):
    from datetime import timedelta

    from workers.pipeline.submit import requeue
    from workers.services.status import video_report
    from workers.settings import get_settings
    from workers.storage.models import StageTiming

    now = utcnow()
    with session_scope(db_url) as s:
        original = Video(job_id=JOBS[0], source="https://example.org/v/original", status="done")
        s.add(original)
        s.flush()
        copy = Video(job_id=JOBS[1], source="/data/copy.mp4", status="done", duplicate_of=original.id, duplicate_match=1.0)
        s.add(copy)
        s.flush()
        for stage, minutes in (("verdict", 3), ("download", 1), ("score", 2)):
            s.add(StageTiming(video_id=copy.id, stage=stage, worker="w", started_at=now - timedelta(minutes=10 - minutes),
                              finished_at=now - timedelta(minutes=9 - minutes)))
        copy_id = copy.id
    settings = get_settings()
    report = video_report(settings, JOBS[1])
    assert report["repost_of"] == {"video_id": 1, "job_id": JOBS[0], "source": "https://example.org/v/original", "match": 1.0}
    assert [t["stage"] for t in report["timings"]] == ["download", "score", "verdict"]
    with session_scope(db_url) as s:
        requeue(s.get(Video, copy_id), ["t"])  # a rerun: a new job, none of the last job's timings
        new_job = s.get(Video, copy_id).job_id
    with session_scope(db_url) as s:  # its first stage runs
        s.add(StageTiming(video_id=copy_id, stage="download", worker="w2", started_at=now, finished_at=now))
    rerun = video_report(settings, new_job)
    assert [(t["stage"], t["worker"]) for t in rerun["timings"]] == [("download", "w2")]
    assert video_report(settings, "1")["repost_of"] is None


def test_exports_carry_the_detection_id_that_review_takes(tt_env, monkeypatch):
    import csv
    import io

    from workers.review.service import review_detection
    from workers.services.export import json_rows, result_rows, write_csv

    settings = web_settings(monkeypatch, None)
    seeded = seed_results(settings)
    (row,) = json_rows(result_rows(settings))
    assert row["detection_id"] == seeded.detection_id
    out = io.StringIO()
    write_csv(result_rows(settings), out)
    (written,) = csv.DictReader(io.StringIO(out.getvalue()))
    assert int(written["detection_id"]) == seeded.detection_id
    review_detection(settings, row["detection_id"], "confirmed", "me")
    assert result_rows(settings)[0]["review"] == "confirmed"
