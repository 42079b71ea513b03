"""Watches, downloads, reposts and alerts in the pipeline's stage functions, without a
broker (SQLite, this process, local HTTP and webhook servers on 127.0.0.1): URL downloads
with their metadata and their refusals, reposts linked and not rescored, one alert per
(video, target) with a thumbnail, failing channels retried later, cooldown digests, watch
runs, and exports that hostile metadata cannot break."""

from __future__ import annotations

import base64
import csv
import io
import json
import shutil
from datetime import timedelta

import cv2
import numpy as np
import pytest
from sqlalchemy import func, select
from typer.testing import CliRunner

from tests.local_http import MediaServer, Receiver, tiktok_item
from tests.pipeline_support import BLUE, RED, red_target  # noqa: F401  (fixture)
from tests.videos import write_video
from workers.services.export import RESULT_FIELDS
from workers.errors import DownloadError, TransientDownloadError, UnsafeURL
from workers.pipeline import alerting, stages, submit
from workers.pipeline.watches import run_watch
from workers.settings import Settings
from workers.sources import BLOCKED_WARNING
from workers.sources.tiktok_items import ref_from_item
from workers.storage import watches as watch_rows
from workers.storage.db import session_scope
from workers.storage.models import AlertRow, FrameScore, Video, Watch, utcnow

HOSTILE_CAPTION = "=cmd|' /C calc'!A0 \x1b[2J\x00\u202egnp.exe\r\nline2 ../../etc/passwd C:\\Windows " + "A" * 100_000
CHAIN = ("download", "frames", "score", "verdict", "alert")


@pytest.fixture()
def ctx(tmp_path, red_target):  # noqa: F811
    settings = Settings(
        data_dir=tmp_path / "data", models_dir=red_target, vgg16_weights="random",
        database_url=f"sqlite:///{tmp_path / 'results.db'}", broker_url="", allow_hosts=["127.0.0.1"],
        download_timeout=1.0, download_retries=1, download_retry_backoff=0.01,
        alert_log=False, alert_retries=1, alert_retry_backoff=0.01, alert_timeout=2.0,
    )
    return stages.StageContext.from_settings(settings)


@pytest.fixture()
def served(tmp_path):
    """A local server with a red and a blue video (seeds whose verdicts are clear-cut)."""
    root = tmp_path / "served"
    root.mkdir()
    write_video(root / "red.mp4", seconds=3, color=RED, seed=1)
    write_video(root / "blue.mp4", seconds=3, color=BLUE, seed=2)
    with MediaServer(root, slow_seconds=3.0) as server:
        yield server


def changed(ctx, **changes) -> stages.StageContext:
    """The same database, store and models with other settings."""
    return stages.StageContext(ctx.settings.model_copy(update=changes), ctx.store, ctx.models)


def queue(ctx, item, targets=("red",)) -> int:
    with session_scope(ctx.db_url) as s:
        video = submit.new_video(item, list(targets))
        s.add(video)
        s.flush()
        return video.id


def run_chain(ctx, video_id) -> list[str]:
    """The stages in order, as the tasks would run them (a stage may stop or skip the chain)."""
    assert tuple(stages.STAGE) == CHAIN
    ran, i = [], 0
    while i < len(CHAIN):
        step = stages.STAGE[CHAIN[i]].run(ctx, video_id)
        ran.append(CHAIN[i])
        if step is stages.Next.STOP:
            break
        i = CHAIN.index("alert") if step is stages.Next.TO_ALERT else i + 1
    return ran


def video(ctx, video_id) -> Video:
    with session_scope(ctx.db_url) as s:
        v = s.get(Video, video_id)
        v.detections  # noqa: B018 - load while the session is open
        return v


def alert_rows(ctx) -> list[AlertRow]:
    with session_scope(ctx.db_url) as s:
        return list(s.scalars(select(AlertRow).order_by(AlertRow.id)))


def decoded(jpeg_b64: str) -> np.ndarray:
    image = cv2.imdecode(np.frombuffer(base64.b64decode(jpeg_b64), np.uint8), cv2.IMREAD_COLOR)
    assert image is not None, "thumbnail does not decode as an image"
    return image


# --- downloads --------------------------------------------------------------------------


def test_listed_video_downloaded_under_a_generated_name_with_its_metadata(ctx, served, tmp_path):
    item = tiktok_item(1, served.url("/red.mp4"), id="../../etc/passwd", desc=HOSTILE_CAPTION,
                       author={"uniqueId": "../../home/x\\y\x00"})
    vid = queue(ctx, ref_from_item(item))
    assert run_chain(ctx, vid) == list(CHAIN)
    v = video(ctx, vid)
    assert v.status == "done" and v.detections[0].verdict == "positive"
    assert (v.platform, v.platform_id, v.author) == ("tiktok", "../../etc/passwd", "../../home/x\\y")
    assert v.caption.startswith("=cmd|' /C calc'!A0 \x1b[2J\u202e") and v.source == "https://www.tiktok.com/@../../home/x\\y/video/../../etc/passwd"
    assert v.ref["hashtags"] == ["cats"] and v.ref["counts"]["views"] == 1000
    assert v.posted_at is not None and v.content_hash
    # Nothing from the metadata became a path: only the evidence is left, under the job id
    # (the best frame, and the positive frames kept for review).
    files = sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*") if p.is_file())
    with session_scope(ctx.db_url) as s:
        keys = [f.evidence_key for f in s.scalars(select(FrameScore)) if f.evidence_key]
    kept = [f"data/media/{k}" for k in keys]
    assert kept and [f for f in files if not f.startswith(("served/", "results.db"))] == sorted(
        [f"data/media/{v.detections[0].evidence_key}", *kept])
    assert all(k.startswith(f"data/media/evidence/{v.job_id}/") for k in kept)


def test_url_downloads_fail_with_their_reason_or_are_retried(ctx, served, monkeypatch):
    from workers.pipeline import tasks

    missing = queue(ctx, served.url("/missing.mp4"))
    with pytest.raises(DownloadError, match="404"):
        stages.download(ctx, missing)
    oversize = queue(ctx, served.url("/red.mp4?as=oversize"))  # one row per source: a URL of its own each
    with pytest.raises(DownloadError, match="max_download_mb"):
        stages.download(changed(ctx, max_download_mb=0.0005), oversize)
    overlong = queue(ctx, served.url("/red.mp4?as=overlong"))
    with pytest.raises(DownloadError, match="max_video_seconds"):
        stages.download(changed(ctx, max_video_seconds=1.0), overlong)
    unsafe = queue(ctx, served.url("/red.mp4?as=unsafe"))
    with pytest.raises(UnsafeURL, match="loopback"):
        stages.download(changed(ctx, allow_hosts=[]), unsafe)
    assert list(ctx.store.keys("")) == []  # nothing half-downloaded is left

    # Through the Celery task (run eagerly): a permanent error fails the video at once with its reason;
    # a timeout is retried (the downloader's own retries, then the task's) and then fails.
    monkeypatch.setattr(tasks, "_context", changed(ctx, task_retry_window=0.5, task_retry_backoff=1, task_retry_backoff_max=1))
    assert tasks.STAGE_TASKS["download"].apply(args=(missing,)).failed()
    assert video(ctx, missing).status == "failed" and "404" in video(ctx, missing).error
    slow = queue(ctx, served.url("/slow/clip.mp4"))
    assert tasks.STAGE_TASKS["download"].apply(args=(slow,)).failed()
    assert served.hits.count("/slow/clip.mp4") == 4  # (1 try + 1 download retry) x (1 run + 1 task retry)
    error = video(ctx, slow).error
    assert error.startswith("download: gave up after 1 retries (TransientDownloadError:") and "timed out" in error.lower()
    assert issubclass(TransientDownloadError, tasks.TRANSIENT)


def test_repost_is_linked_and_its_verdicts_reused_not_rescored(ctx, tmp_path):
    original = write_video(tmp_path / "red.mp4", seconds=3, color=RED, seed=5)
    repost = tmp_path / "reposted" / "copy.mp4"
    repost.parent.mkdir()
    shutil.copy(original, repost)
    first = queue(ctx, str(original))
    assert run_chain(ctx, first) == list(CHAIN)
    second = queue(ctx, str(repost))
    assert run_chain(ctx, second) == ["download", "alert"]  # no frames, no scores, no verdict stage
    a, b = video(ctx, first), video(ctx, second)
    assert b.status == "done" and b.duplicate_of == a.id and a.duplicate_of is None
    (da,), (db,) = a.detections, b.detections
    assert (db.verdict, db.positive_timestamps, db.best_score, db.evidence_key) == (
        da.verdict, da.positive_timestamps, da.best_score, da.evidence_key)
    with session_scope(ctx.db_url) as s:
        count = [s.scalar(select(func.count()).select_from(FrameScore).where(FrameScore.detection_id == d.id)) for d in (da, db)]
    assert count[0] == count[1] == da.scored_frames > 0
    assert b.sampled_frames == a.sampled_frames == 3
    assert {k.split("/")[0] for k in ctx.store.keys("")} == {"evidence"}


# --- alerts -----------------------------------------------------------------------------


def test_one_alert_per_video_and_target_with_thumbnail(ctx, tmp_path):
    with Receiver() as hook:
        ctx = changed(ctx, alert_webhook_urls=[hook.url("/hook")])
        red = queue(ctx, str(write_video(tmp_path / "red.mp4", seconds=3, color=RED, seed=7)))
        blue = queue(ctx, str(write_video(tmp_path / "blue.mp4", seconds=3, color=BLUE, seed=4)))
        run_chain(ctx, red)
        run_chain(ctx, blue)
        for _ in range(2):  # a redelivered alert task
            assert stages.alert(ctx, red) is stages.Next.CONTINUE and stages.alert(ctx, blue) is stages.Next.CONTINUE
    (request,) = hook.requests
    body = json.loads(request["body"])
    assert body["event"] == "alert" and body["target"] == "red" and body["video_url"] == str(tmp_path / "red.mp4")
    assert 0 < body["confidence"] <= 1 and body["positive_timestamps"] and set(body["positive_timestamps"]) <= {0.0, 1.0, 2.0}
    assert decoded(body["thumbnail"]["base64"]).shape[2] == 3
    (row,) = alert_rows(ctx)
    assert (row.video_id, row.target_name, row.status, row.attempts) == (red, "red", "sent", 1)
    assert row.sent_at is not None and row.detection_id is not None and row.channels[0]["ok"] is True


def test_failing_channel_never_blocks_and_a_later_pass_retries(ctx, tmp_path):
    with Receiver(statuses=[500, 503]) as hook:
        ctx = changed(ctx, alert_webhook_urls=[hook.url("/hook")])
        vid = queue(ctx, str(write_video(tmp_path / "red.mp4", seconds=3, color=RED, seed=9)))
        assert run_chain(ctx, vid) == list(CHAIN)  # the alert stage finished
        (row,) = alert_rows(ctx)
        assert row.status == "failed" and "HTTP 503" in row.error and len(hook.requests) == 2
        assert alerting.alert_followups(ctx)["retried"] == 0  # its wait is not over
        report = alerting.alert_followups(ctx, now=utcnow() + timedelta(minutes=2))
        assert report == {"retried": 1, "delivered": 1, "digests": 0}
        stages.alert(ctx, vid)  # and the stage, run again, sends nothing new
    assert len(hook.requests) == 3
    (row,) = alert_rows(ctx)
    assert (row.status, row.attempts, row.error) == ("sent", 2, None)


def test_misconfigured_channel_fails_the_alert_not_the_stage(ctx, tmp_path):
    ctx = changed(ctx, smtp_host="127.0.0.1", smtp_from="tracker@example.org")
    vid = queue(ctx, str(write_video(tmp_path / "red.mp4", seconds=3, color=RED, seed=10)))
    assert run_chain(ctx, vid) == list(CHAIN)
    (row,) = alert_rows(ctx)
    assert row.status == "failed" and "TT_SMTP_TO" in row.error


def test_cooldown_holds_positives_then_sends_one_digest(ctx, tmp_path):
    with Receiver() as hook:
        ctx = changed(ctx, alert_webhook_urls=[hook.url("/hook")], alert_cooldown_minutes=10)
        ids = [queue(ctx, str(write_video(tmp_path / f"red{i}.mp4", seconds=3, color=RED, seed=20 + i))) for i in range(3)]
        for vid in ids:
            run_chain(ctx, vid)
        assert [r.status for r in alert_rows(ctx)] == ["sent", "held", "held"]
        assert alerting.alert_followups(ctx, now=utcnow() + timedelta(minutes=5))["digests"] == 0
        assert alerting.alert_followups(ctx, now=utcnow() + timedelta(minutes=11))["digests"] == 1
        assert alerting.alert_followups(ctx, now=utcnow() + timedelta(minutes=30))["digests"] == 0
    first, digest = (json.loads(r["body"]) for r in hook.requests)
    assert first["event"] == "alert" and digest["event"] == "digest" and digest["count"] == 2
    assert [a["video_url"] for a in digest["alerts"]] == [str(tmp_path / "red1.mp4"), str(tmp_path / "red2.mp4")]
    assert all(decoded(a["thumbnail"]["base64"]) is not None for a in digest["alerts"])
    assert [r.status for r in alert_rows(ctx)] == ["sent", "sent", "sent"]


# --- watches ----------------------------------------------------------------------------


class RecordingPublisher(list):
    """Chains 'published' without a broker: the video ids, in order."""

    broker_url = "memory://"

    def check(self, timeout):
        pass

    def __call__(self, job):
        self.append(job.video_id)


@pytest.fixture()
def published():
    return RecordingPublisher()


def add_watch(ctx, source, every=60.0) -> int:
    with session_scope(ctx.db_url) as s:
        return watch_rows.add(s, source, ["red"], every, utcnow()).id


def watch_row(ctx, watch_id) -> Watch:
    with session_scope(ctx.db_url) as s:
        return s.get(Watch, watch_id)


def test_watch_queues_only_new_videos_and_keeps_its_warnings(ctx, served, published):
    items = [tiktok_item(n, served.url("/red.mp4" if n % 2 else "/blue.mp4")) for n in (1, 2)]
    served.json_routes["/list.json"] = {"itemList": items}
    watch_id = add_watch(ctx, f"tiktok-json:{served.url('/list.json')}")
    run = run_watch(ctx.settings, watch_id, published)
    assert (run.listed, len(run.jobs), run.warnings, run.error) == (2, 2, [], None)
    assert published == [j.video_id for j in run.jobs]
    first = video(ctx, run.jobs[0].video_id)
    assert (first.platform, first.platform_id, first.author, first.watch_id) == (
        "tiktok", "7300000000000000001", "user1", watch_id)
    assert run_watch(ctx.settings, watch_id, published) is None  # not due again for a minute
    again = run_watch(ctx.settings, watch_id, published, force=True)
    assert (again.listed, again.jobs) == (2, [])  # known videos are not queued again
    served.json_routes["/list.json"] = {"itemList": items + [tiktok_item(3, served.url("/red.mp4"))]}
    assert len(run_watch(ctx.settings, watch_id, published, force=True).jobs) == 1
    row = watch_row(ctx, watch_id)
    assert (row.last_listed, row.last_enqueued, row.last_warnings, row.last_error) == (3, 1, [], None)

    served.json_routes["/list.json"] = {"itemList": []}  # how TikTok says "blocked"
    assert run_watch(ctx.settings, watch_id, published, force=True).warnings == [BLOCKED_WARNING]
    assert watch_row(ctx, watch_id).last_warnings == [BLOCKED_WARNING]
    del served.json_routes["/list.json"]
    failed = run_watch(ctx.settings, watch_id, published, force=True)
    assert "404" in failed.error and "404" in watch_row(ctx, watch_id).last_error
    assert len(published) == 3


def test_a_watch_run_is_claimed_once(ctx):
    watch_id = add_watch(ctx, "tiktok:trending", every=900)
    now = utcnow()
    with session_scope(ctx.db_url) as s:
        watch = s.get(Watch, watch_id)
        assert watch_rows.claim_run(s, watch, now) and not watch_rows.claim_run(s, watch, now)
        assert watch_rows.due(s, now + timedelta(minutes=14)) == []
        assert watch_rows.due(s, now + timedelta(minutes=15)) == [watch_id]


def test_watch_list_shows_the_last_finished_run_with_its_own_time(ctx):
    from workers.cli.watches import watch_json

    watch_id = add_watch(ctx, "tiktok:trending", every=900)
    first, second = utcnow() - timedelta(minutes=20), utcnow()
    with session_scope(ctx.db_url) as s:
        watch_rows.record_run(s, watch_id, 5, 2, ["old warning"], None, started_at=first)
    with session_scope(ctx.db_url) as s:
        assert watch_rows.claim_run(s, s.get(Watch, watch_id), second, force=True)  # a run starts ...
    with session_scope(ctx.db_url) as s:
        shown = watch_json(s.get(Watch, watch_id))  # ... listed meanwhile: the first run, with its time
    assert (shown["last_listed"], shown["last_enqueued"], shown["last_warnings"]) == (5, 2, ["old warning"])
    assert shown["last_run_at"] == first.isoformat(timespec="seconds")
    with session_scope(ctx.db_url) as s:
        watch_rows.record_run(s, watch_id, 3, 1, [], None, started_at=second)
    with session_scope(ctx.db_url) as s:
        shown = watch_json(s.get(Watch, watch_id))
    assert (shown["last_listed"], shown["last_enqueued"], shown["last_run_at"]) == (3, 1, second.isoformat(timespec="seconds"))


# --- commands and exports ------------------------------------------------------------------


@pytest.fixture()
def cli_env(ctx, monkeypatch):
    from workers.cli import common
    from workers.settings import get_settings

    monkeypatch.setattr(common.console, "_width", 200)  # wide tables: cells are not wrapped

    for name, value in (("DATA_DIR", ctx.settings.data_dir), ("MODELS_DIR", ctx.settings.models_dir),
                        ("DATABASE_URL", ctx.db_url), ("BROKER_URL", ""), ("ALLOW_HOSTS", "127.0.0.1")):
        monkeypatch.setenv(f"TT_{name}", str(value))
    get_settings.cache_clear()
    yield CliRunner()
    get_settings.cache_clear()


def invoke(runner, *args, ok: bool = True):
    """Run the command in this process; ``ok``: it must succeed (else its exception is returned in ``result``)."""
    from workers.cli.main import app

    result = runner.invoke(app, list(args), catch_exceptions=not ok)
    assert not ok or result.exit_code == 0, result.output
    return result


def test_results_exports_survive_hostile_metadata(ctx, served, cli_env):
    hostile = tiktok_item(1, served.url("/red.mp4"), id="../../x", desc=HOSTILE_CAPTION,
                          author={"uniqueId": "[bold]a/b\\c\x07"})
    for ref in (ref_from_item(hostile), ref_from_item(tiktok_item(2, served.url("/blue.mp4")))):
        run_chain(ctx, queue(ctx, ref))

    as_json = json.loads(invoke(cli_env, "results", "--format", "json").stdout)
    assert [r["verdict"] for r in as_json] == ["negative", "positive"]
    bad = as_json[1]
    assert bad["url"].startswith("https://www.tiktok.com/@") and bad["platform_id"] == "../../x"
    assert len(bad["caption"]) <= 5000 and bad["caption"].startswith("=cmd|")
    assert not any(ch in json.dumps(as_json, ensure_ascii=False) for ch in "\x00\x07\x1b\u202e\r")
    assert bad["thumbnail"].startswith(str(ctx.settings.data_dir.resolve() / "media" / "evidence"))
    assert bad["confidence"] > 0.3 and bad["positive_timestamps"] and bad["posted_at"]

    rows = list(csv.DictReader(io.StringIO(invoke(cli_env, "results", "--format", "csv").stdout)))
    assert len(rows) == 2 and all(None not in r and len(r) == len(RESULT_FIELDS) for r in rows)
    assert rows[1]["caption"].startswith("'=cmd|") and rows[1]["author"] == "[bold]a/b\\c"

    table = invoke(cli_env, "results", "--positive", "--target", "red", "--wide").stdout  # author, caption: --wide
    assert "[bold]a/b\\c" in table and "=cmd|" in table and "\x1b" not in table and "\x07" not in table
    lines = table.splitlines()  # a well-formed box: no line break or wide escape got into a cell
    assert lines[0][0] == "┏" and lines[-1][0] == "└" and len({len(line) for line in lines}) == 1
    assert all(line[0] in "┏┃┡│└" and line[-1] in "┓┃┩│┘" for line in lines)

    since = json.loads(invoke(cli_env, "results", "--since", "1h", "--format", "json").stdout)
    assert len(since) == 2
    assert json.loads(invoke(cli_env, "results", "--since", "2999-01-01", "--format", "json").stdout) == []
    wrong = invoke(cli_env, "results", "--since", "soon", ok=False)
    assert "not a date or a duration" in str(wrong.exception)


def test_watch_commands(ctx, served, cli_env, published):
    served.json_routes["/list.json"] = {"itemList": []}
    added = invoke(cli_env, "watch", "add", f"tiktok-json:{served.url('/list.json')}", "--every", "15m", "--target", "red")
    assert added.exit_code == 0 and "every 15m for red" in added.stdout
    ran = invoke(cli_env, "watch", "run", "1")
    assert ran.exit_code == 0 and "listed 0, queued 0" in ran.stdout and BLOCKED_WARNING in ran.stderr
    listed = [json.loads(line) for line in invoke(cli_env, "watch", "list", "--json").stdout.splitlines()]
    assert [(w["id"], w["every"], w["targets"], w["last_warnings"]) for w in listed] == [(1, "15m", ["red"], [BLOCKED_WARNING])]
    assert BLOCKED_WARNING in invoke(cli_env, "watch", "list").stdout
    assert invoke(cli_env, "watch", "remove", "1").exit_code == 0
    assert invoke(cli_env, "watch", "list", "--json").stdout == ""
