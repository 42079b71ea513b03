"""Watches and alerts end to end: a local HTTP server on 127.0.0.1 serves small videos
and a TikTok-shaped JSON listing; a watch added with ``tiktok-tracker watch add`` is run
by celery beat on schedule; Celery workers (OS processes) download the videos through
yt-dlp (127.0.0.1 allow-listed), score them with a random-weight VGG16 target and alert
a local webhook receiver and a local SMTP server. Real Redis and Postgres.

The run feeds several tests, in order: the first round of alerts, a second run that
sends nothing new, a repost, a listing that comes back empty (blocked), then checks
on hostile metadata and ``alerts test``.
"""

from __future__ import annotations

import base64
import csv
import io
import json
import re
import shutil
import time
from dataclasses import dataclass
from email import message_from_bytes
from email.policy import default as default_policy

import cv2
import numpy as np
import pytest
from sqlalchemy import func, select

from tests.local_http import MediaServer, Receiver, SmtpServer, tiktok_item
from tests.prometheus_support import Prometheus, prometheus_binary
from tests.pipeline_support import (
    BLUE,
    RED,
    TERMINAL,
    Cluster,
    free_port,
    module_postgres_url,  # noqa: F401  (fixture)
    red_target,  # noqa: F401  (fixture)
    redis_url,  # noqa: F401  (fixture)
)
from tests.videos import write_video
from workers.sources import BLOCKED_WARNING
from workers.storage.models import AlertRow, Video, Watch

pytestmark = pytest.mark.services

HOSTILE_CAPTION = "=HYPERLINK(\"http://x\")\x1b]0;pwned\x07\x00\r\n\u202e../../etc/passwd C:\\Windows\\ " + "A" * 100_000
HOSTILE_ID = "../../../etc/passwd"
LISTING = "/api/recommend/item_list.json"


@dataclass
class Stack:
    cluster: Cluster
    media: MediaServer
    hook: Receiver
    smtp: SmtpServer
    items: list[dict]
    positive_urls: set[str]
    started: float
    prometheus: Prometheus

    def wait_for(self, what: str, check, timeout: float = 150.0):
        """Poll ``check()`` until it returns something true; fail with the worker logs if it never does."""
        deadline = time.monotonic() + timeout
        while True:
            result = check()
            if result:
                return result
            for name, proc in self.cluster.workers.items():
                if proc.poll() is not None:
                    pytest.fail(f"{name} exited {proc.returncode} while waiting for {what}\n{self.cluster.log_text()}")
            if time.monotonic() > deadline:
                pytest.fail(f"timed out waiting for {what}\n{self.cluster.log_text()}")
            time.sleep(0.25)

    def videos(self) -> list[Video]:
        with self.cluster.session() as s:
            rows = list(s.scalars(select(Video).order_by(Video.id)))
            for v in rows:
                v.detections, v.timings  # noqa: B018 - load while the session is open
            return rows

    def alerts(self) -> list[AlertRow]:
        with self.cluster.session() as s:
            return list(s.scalars(select(AlertRow).order_by(AlertRow.id)))

    def watch(self) -> Watch:
        with self.cluster.session() as s:
            return s.scalars(select(Watch)).one()

    def payloads(self) -> list[dict]:
        return [json.loads(r["body"]) for r in self.hook.requests]


def decodes(jpeg: bytes) -> bool:
    image = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR)
    return image is not None and image.ndim == 3 and min(image.shape[:2]) > 0


@pytest.fixture(scope="module")
def stack(tmp_path_factory, module_postgres_url, redis_url, red_target):  # noqa: F811
    prometheus_binary()  # before anything starts: missing, the module skips (fails under CI=true)
    root = tmp_path_factory.mktemp("watch")
    served = root / "served"
    served.mkdir()
    # Seeds whose verdicts are clear-cut with the random-weight target.
    for name, colour, seed in (("red0", RED, 1), ("blue1", BLUE, 2), ("red2", RED, 3), ("red3", RED, 5)):
        write_video(served / f"{name}.mp4", seconds=3, color=colour, seed=seed)
    shutil.copy(served / "red0.mp4", served / "repost.mp4")  # the same file, posted again
    metrics_port = free_port()
    with (
        MediaServer(served) as media,
        Receiver() as hook,
        SmtpServer() as smtp,
        Prometheus(root / "prometheus", f"127.0.0.1:{metrics_port}") as prometheus,
    ):
        items = [
            tiktok_item(1, media.url("/red0.mp4")),
            tiktok_item(2, media.url("/blue1.mp4")),
            tiktok_item(3, media.url("/red2.mp4")),
            tiktok_item(4, media.url("/red3.mp4"), id=HOSTILE_ID, desc=HOSTILE_CAPTION,
                        author={"uniqueId": "../../evil\\name\x00\x1b[2J"}),
        ]
        media.json_routes[LISTING] = {"itemList": items, "hasMore": False}
        cluster = Cluster(
            root, module_postgres_url, redis_url, red_target,
            allow_hosts="127.0.0.1", watch_poll_interval=1, download_timeout=5, download_retries=1,
            alert_webhook_urls=hook.url("/hook"), alert_timeout=5, alert_retry_backoff=0.1,
            smtp_host="127.0.0.1", smtp_port=smtp.port, smtp_security="none",
            smtp_from="tracker@newsroom.example", smtp_to="desk@newsroom.example",
            health_inspect_timeout=0.5,
        )
        try:
            added = cluster.cli("watch", "add", f"tiktok-json:{media.url(LISTING)}", "--every", "2s", "--target", "red")
            assert added.returncode == 0, added.stderr
            started = time.monotonic()
            cluster.start_worker("io+cpu", "io,cpu", concurrency=2)
            cluster.start_worker("score", "score")
            cluster.start_beat()
            cluster.start_metrics(metrics_port)  # scraped by a real Prometheus from the start
            positives = {f"https://www.tiktok.com/@user{n}/video/73000000000000000{n:02d}" for n in (1, 3)}
            positives.add(f"https://www.tiktok.com/@../../evil\\name\x1b[2J/video/{HOSTILE_ID}")
            yield Stack(cluster, media, hook, smtp, items, positives, started, prometheus)
        finally:
            cluster.stop()


def test_watch_scrapes_on_schedule_and_alerts_once_per_positive_video(stack):
    def first_round_done():
        videos = stack.videos()
        done = len(videos) == 4 and all(v.status in TERMINAL for v in videos)
        return done and len(stack.hook.requests) >= 3 and len(stack.smtp.messages) >= 3 and videos

    videos = stack.wait_for("the first round: 4 videos done, 3 alerts", first_round_done)
    print(f"first round took {time.monotonic() - stack.started:.1f}s")
    assert [v.status for v in videos] == ["done"] * 4, stack.cluster.log_text()
    verdicts = {v.source: v.detections[0].verdict for v in videos}
    assert {u for u, verdict in verdicts.items() if verdict == "positive"} == stack.positive_urls
    # Metadata from the listing is on the videos.
    first = next(v for v in videos if v.platform_id == "7300000000000000001")
    assert (first.platform, first.author, first.caption) == ("tiktok", "user1", "video 1 #cats #fyp")
    assert first.posted_at is not None and first.ref["counts"]["views"] == 1000 and first.watch_id == 1

    time.sleep(1.0)  # nothing more may arrive
    payloads = stack.payloads()
    assert len(payloads) == 3 and {p["video_url"] for p in payloads} == {
        u.replace("\x1b", "") for u in stack.positive_urls}  # the URL is sanitised in alerts
    for p in payloads:
        assert p["event"] == "alert" and p["target"] == "red" and 0 < p["confidence"] <= 1
        assert p["positive_timestamps"] and p["author"]
        assert decodes(base64.b64decode(p["thumbnail"]["base64"]))
    hostile = next(p for p in payloads if p["platform_id"] == HOSTILE_ID)
    assert len(hostile["caption"]) <= 1000 and not re.search(r"[\x00-\x1f\x7f\u202e]", json.dumps(hostile, ensure_ascii=False))
    assert [a.status for a in stack.alerts()] == ["sent"] * 3

    assert len(stack.smtp.messages) == 3
    for raw in stack.smtp.messages:
        mail = message_from_bytes(raw, policy=default_policy)
        assert "red found in a video" in mail["Subject"]
        (attachment,) = [part for part in mail.iter_attachments()]
        assert attachment.get_content_type() == "image/jpeg" and decodes(attachment.get_content())


def test_later_runs_of_the_watch_send_nothing_new(stack):
    before = stack.watch().last_run_at
    runs = set()

    def two_more_runs():
        runs.add(stack.watch().last_run_at)
        return len(runs - {before}) >= 2

    stack.wait_for("two more runs of the watch", two_more_runs, timeout=30)
    time.sleep(1.0)
    watch = stack.watch()
    assert (watch.last_listed, watch.last_enqueued, watch.last_warnings, watch.last_error) == (4, 0, [], None)
    assert len(stack.videos()) == 4 and len(stack.hook.requests) == 3 and len(stack.smtp.messages) == 3
    with stack.cluster.session() as s:
        assert s.scalar(select(func.count()).select_from(AlertRow)) == 3


def test_repost_is_linked_not_rescored_and_not_alerted_again(stack):
    repost_item = tiktok_item(9, stack.media.url("/repost.mp4"), author={"uniqueId": "reposter"})
    stack.media.json_routes[LISTING] = {"itemList": [*stack.items, repost_item]}

    def repost_done():
        videos = stack.videos()
        repost = next((v for v in videos if v.platform_id == "7300000000000000009"), None)
        # the alert stage records its timing just after it sent the webhook: wait for both
        alerted = repost is not None and any(t.stage == "alert" for t in repost.timings)
        return alerted and repost.status in TERMINAL and (videos, repost)

    videos, repost = stack.wait_for("the repost's alert stage", repost_done, timeout=90)
    original = next(v for v in videos if v.platform_id == "7300000000000000001")
    assert repost.status == "done" and repost.duplicate_of == original.id
    assert {t.stage for t in repost.timings} == {"download", "alert"}  # not rescored
    (det,), (orig,) = repost.detections, original.detections
    assert (det.verdict, det.best_score, det.positive_timestamps) == (orig.verdict, orig.best_score, orig.positive_timestamps)
    # One alert per repost cluster (repost_alerts = "cluster"): the repost is counted, not alerted again.
    with stack.cluster.session() as s:
        row = s.scalars(select(AlertRow).where(AlertRow.video_id == repost.id)).one()
        assert row.status == "repost" and row.sent_at is None
    time.sleep(2.5)  # another run of the watch: still nothing new
    assert len(stack.hook.requests) == 3 and len(stack.videos()) == 5


def test_empty_listing_is_a_warning_on_the_watch_never_silent(stack):
    stack.media.json_routes[LISTING] = {"itemList": [], "hasMore": False, "statusCode": 0}
    watch = stack.wait_for("the blocked warning", lambda: (w := stack.watch()).last_warnings and w, timeout=30)
    assert watch.last_warnings == [BLOCKED_WARNING] and watch.last_listed == 0
    listed = stack.cluster.cli("watch", "list", "--json")
    assert json.loads(listed.stdout)["last_warnings"] == [BLOCKED_WARNING]
    table = stack.cluster.cli("watch", "list", env={"COLUMNS": "250"})
    assert table.returncode == 0 and BLOCKED_WARNING in table.stdout


def test_hostile_metadata_stays_out_of_paths_and_exports_stay_valid(stack):
    media = stack.cluster.root / "data" / "media"
    deadline = time.monotonic() + 120  # positives' frames and scores wait for their timeline follow-up (after the alert)
    while True:
        files = sorted(p.relative_to(media).as_posix() for p in media.rglob("*") if p.is_file())
        if all(f.startswith("evidence/") for f in files) or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert files and all(re.fullmatch(r"evidence/[0-9a-f-]{36}/red-[A-Za-z0-9_.-]+(/[0-9]+)?\.jpg", f) for f in files), files
    cache = stack.cluster.root / "data" / "cache"  # converted backbones (int8 where auto picks it), named by content hash
    data_files = [p for p in (stack.cluster.root / "data").rglob("*")
                  if p.is_file() and not p.name.startswith("celerybeat-schedule") and cache not in p.parents]  # beat's own file
    assert all(media in p.parents for p in data_files), data_files
    assert not [p for p in stack.cluster.root.rglob("*") if "passwd" in p.name or "evil" in str(p)]

    as_json = json.loads(stack.cluster.cli("results", "--format", "json").stdout)
    assert len(as_json) == 5
    hostile = next(r for r in as_json if r["platform_id"] == HOSTILE_ID)
    assert hostile["verdict"] == "positive" and hostile["thumbnail"].startswith(str(media.resolve()))
    assert len(hostile["caption"]) <= 5000 and not re.search(r"[\x00-\x1f\x7f\u202e]", hostile["caption"] + hostile["author"])
    rows = list(csv.DictReader(io.StringIO(stack.cluster.cli("results", "--format", "csv").stdout)))
    assert len(rows) == 5 and all(None not in r for r in rows)
    assert next(r for r in rows if r["platform_id"] == HOSTILE_ID)["caption"].startswith("'=HYPERLINK")
    table = stack.cluster.cli("results", "--positive", "--target", "red", env={"COLUMNS": "200"})
    assert table.returncode == 0 and not re.search(r"[\x00-\x08\x0b-\x1f\x7f]", table.stdout)
    lines = table.stdout.splitlines()
    assert len({len(line) for line in lines}) == 1 and lines[0][0] == "┏" and lines[-1][0] == "└"


def test_alerts_test_command_reports_every_channel(stack):
    hooks, mails = len(stack.hook.requests), len(stack.smtp.messages)
    proc = stack.cluster.cli("alerts", "test", "--json")
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    assert [r["channel"].split()[0] for r in report] == ["log", "webhook", "email"] and all(r["ok"] for r in report)
    assert stack.payloads()[hooks]["target"] == "test-target" and len(stack.smtp.messages) == mails + 1
    table = stack.cluster.cli("alerts", "test")
    assert table.returncode == 0 and "webhook" in table.stdout and "email" in table.stdout
    broken = stack.cluster.cli("alerts", "test", env={"TT_ALERT_WEBHOOK_URLS": "http://127.0.0.1:9/nobody",
                                                      "TT_ALERT_RETRIES": "0"})
    assert broken.returncode == 1 and "failed" in broken.stdout


def test_a_real_prometheus_scrapes_what_the_workers_did_and_fires_the_watch_alert(stack):
    """After the run above (5 videos done, 3 alerts through 3 channels each, a listing blocked
    run after run), Prometheus holds the exporter's numbers and fires TTWatchFailing."""
    prom = stack.prometheus

    def seen():
        blocked = (prom.value('tt_watch_failed_runs{watch="1"}') or 0) >= 3
        return blocked and prom.value('tt_videos{status="done"}') == 5 and prom.query('ALERTS{alertname="TTWatchFailing",alertstate="firing"}')

    stack.wait_for("Prometheus to scrape the run and fire TTWatchFailing", seen, timeout=60)
    assert prom.value('tt_up{part="database"}') == prom.value('tt_up{part="broker"}') == 1
    assert prom.value("tt_backlog_videos") == 0
    assert prom.value('sum(tt_videos_finished_total{status="done"})') == 5
    assert prom.value('tt_stage_runs_total{stage="alert",outcome="ok"}') == 5
    assert prom.value('tt_stage_duration_seconds_count{stage="score"}') == 4  # the repost was not rescored
    assert 0 < prom.value('histogram_quantile(0.95, sum by (le) (tt_stage_duration_seconds_bucket{stage="score"}))') < 600
    assert prom.value('tt_frames_scored_total{target="red"}') >= 4
    sent = prom.query('tt_alert_deliveries_total{outcome="sent"}')
    assert sorted(dict(k)["channel"].split()[0] for k in sent) == ["email", "log", "webhook"] and set(sent.values()) == {3.0}
    assert not prom.query('tt_alert_deliveries_total{outcome="failed"}')
    assert prom.value('sum(tt_watch_runs_total{outcome="blocked"})') >= 3 and prom.value('tt_watch_last_listed{watch="1"}') == 0
    assert {dict(k)["queue"]: v for k, v in prom.query("tt_queue_consumers").items()} == {"io": 1, "cpu": 1, "score": 1}
    assert prom.query('ALERTS{alertname=~"TTNoProgress|TTQueueWithoutWorker|TTPartDown|TTAlertDeliveryFailing"}') == {}

    health = stack.cluster.cli("health", "--json")
    assert health.returncode == 1, health.stdout + health.stderr
    failing = {c["check"]: c["detail"] for c in json.loads(health.stdout) if not c["ok"]}
    assert list(failing) == ["watches"] and "runs in a row" in failing["watches"], failing
