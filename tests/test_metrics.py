"""Metrics and health without a pipeline running: the workers' counters in a real Redis, the
exposition Prometheus reads, the health checks on chosen states, the exporter's authentication
over real HTTP, and the alerting rules through ``promtool``. (A real Prometheus scraping real
workers: ``tests/test_watch_pipeline.py``.)"""

from __future__ import annotations

import base64
import shutil
import subprocess
import threading
import urllib.error
import urllib.request
from datetime import timedelta

import pytest
from prometheus_client import generate_latest
from prometheus_client.registry import CollectorRegistry

from tests.conftest import ROOT, need
from tests.pipeline_support import free_port, redis_url  # noqa: F401  (fixture)
from workers.errors import TrackerError
from workers.pipeline.counters import STAGE_SECONDS, Counters, bucket_of, field_name, parse_field
from workers.services.health import LAST_STAGE, Snapshot, WatchState, checks
from workers.services.metrics import check_bind, counter_metrics, snapshot_metrics
from workers.settings import Settings
from workers.storage.models import utcnow

PROMETHEUS = ROOT / "infra" / "prometheus"


def test_counter_fields_keep_any_label_value():
    hostile = 'tiktok:hashtag:"quoted"\\back\nline'
    name = field_name("tt_x_total", {"source": hostile, "a": "1"})
    assert parse_field(name) == ("tt_x_total", {"a": "1", "source": hostile})
    assert parse_field("tt_x_total") == ("tt_x_total", {}) and parse_field("not a field!") is None
    assert [bucket_of(s) for s in (0, 0.05, 0.051, 7, 1e6)] == ["0.05", "0.05", "0.1", "10.0", "+Inf"]


class Exposition:
    def __init__(self, metrics) -> None:
        self.metrics = list(metrics)

    def collect(self):
        return self.metrics


def exposed(metrics) -> str:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(Exposition(metrics))
    return generate_latest(registry).decode()


def test_counters_in_a_real_redis_are_exposed_as_counters_and_cumulative_histograms(redis_url):  # noqa: F811
    counters = Counters(redis_url)
    counters.add("tt_stage_runs_total", {"stage": "score", "outcome": "ok"}, 2)
    for seconds in (0.03, 0.4, 0.4, 12.0, 9999.0):
        counters.observe(STAGE_SECONDS, {"stage": "score"}, seconds)
    counters.add("tt_unknown_total")  # another version's field: not exported
    text = exposed(counter_metrics(counters.read()))
    assert 'tt_stage_runs_total{outcome="ok",stage="score"} 2.0' in text
    buckets = {line.split('le="')[1].split('"')[0]: float(line.rsplit(" ", 1)[1])
               for line in text.splitlines() if line.startswith("tt_stage_duration_seconds_bucket")}
    assert (buckets["0.05"], buckets["0.5"], buckets["10.0"], buckets["30.0"], buckets["600.0"], buckets["+Inf"]) == (1, 3, 3, 4, 4, 5)
    assert 'tt_stage_duration_seconds_count{stage="score"} 5.0' in text and "tt_unknown" not in text
    Counters(None).add("tt_stage_runs_total")  # no Redis: nothing, no error
    Counters("redis://127.0.0.1:9/0").add("tt_stage_runs_total")  # Redis gone: logged, no error


def snapshot(**changes) -> Snapshot:
    now = utcnow()
    base = dict(
        at=now,
        statuses={"queued": 0, "done": 10},
        finished_last_hour={"done": 10, "failed": 0},
        last_finished_at=now - timedelta(minutes=1),
        alerts={"sent": 3},
        queues={"io": 0, "cpu": 0, "score": 0},
        consumers={"io": 1, "cpu": 2, "score": 1},
    )
    return Snapshot(**{**base, **changes})


def failing(snap: Snapshot, settings: Settings) -> dict[str, str]:
    return {c.name: c.detail for c in checks(snap, settings) if not c.ok}


def test_health_checks_say_what_fails():
    settings = Settings(_env_file=None, broker_url="redis://127.0.0.1:6379/0")
    now = utcnow()
    assert failing(snapshot(), settings) == {}
    stalled = snapshot(statuses={"queued": 7, "scoring": 1, "done": 10}, last_finished_at=now - timedelta(minutes=16))
    assert "no video finished for 15 min while 8 waiting" in failing(stalled, settings)["progress"]
    assert failing(snapshot(statuses={"done": 3}, last_finished_at=now - timedelta(days=2)), settings) == {}  # nothing waits
    assert "no video finished" in failing(snapshot(statuses={"queued": 1}, last_finished_at=None), settings)["progress"]
    assert failing(snapshot(consumers={"io": 1, "cpu": 0, "score": 0}), settings) == {"workers": "no worker consumes cpu, score (io 1, cpu 0, score 0)"}
    assert failing(snapshot(broker_error="broker unreachable: refused", consumers=None), settings).keys() == {"broker", "workers"}
    assert failing(snapshot(database_error="OperationalError: refused"), settings).keys() == {"database"}
    watch = WatchState(4, "tiktok:hashtag:news", True, now - timedelta(hours=3), 0, 0, 3, None, ["0 videos: likely blocked or rate limited"])
    said = failing(snapshot(watches=[watch, WatchState(5, "folder:/x", False, None, None, None, 9, "gone", [])]), settings)
    assert said == {"watches": "1 of 1 failing: #4 tiktok:hashtag:news: 3 runs in a row (0 videos: likely blocked or rate limited), "
                               "last success 3.0 h ago"}  # the disabled watch is not counted
    assert "2 alert(s) not delivered" in failing(snapshot(alerts={"sent": 1, "failed": 2}), settings)["alerts"]
    embedded = Settings(_env_file=None, broker_url="")
    assert failing(snapshot(queues={}, consumers=None), embedded) == {}


def test_health_gauges_match_the_checks():
    settings = Settings(_env_file=None, broker_url="redis://127.0.0.1:6379/0")
    text = exposed(snapshot_metrics(snapshot(statuses={"queued": 2, "done": 5}, consumers={"io": 0, "cpu": 1, "score": 1}), settings))
    assert 'tt_health_check_ok{check="workers"} 0.0' in text and 'tt_health_check_ok{check="progress"} 1.0' in text
    assert "tt_backlog_videos 2.0" in text and 'tt_queue_consumers{queue="io"} 0.0' in text and 'tt_videos{status="done"} 5.0' in text


def test_the_last_stage_health_reads_is_the_stage_tables_last():
    from workers.pipeline.stages import STAGES

    assert LAST_STAGE == STAGES[-1].name


def test_the_exporter_needs_a_password_beyond_loopback_and_asks_for_it(tmp_path):
    from wsgiref.simple_server import make_server

    from workers.services.metrics import wsgi_app

    open_settings = Settings(_env_file=None, data_dir=tmp_path, broker_url="")
    with pytest.raises(TrackerError, match="without authentication: set TT_METRICS_PASSWORD"):
        check_bind(open_settings, "0.0.0.0")
    check_bind(open_settings, "127.0.0.1")
    guarded = Settings(_env_file=None, data_dir=tmp_path, broker_url="", metrics_password="s3cret")
    check_bind(guarded, "0.0.0.0")
    server = make_server("127.0.0.1", free_port(), wsgi_app(guarded))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_port}"
    try:
        def get(path: str, password: str | None = None) -> tuple[int, str]:
            request = urllib.request.Request(url + path)
            if password is not None:
                request.add_header("Authorization", "Basic " + base64.b64encode(f"prometheus:{password}".encode()).decode())
            try:
                with urllib.request.urlopen(request, timeout=10) as answer:
                    return answer.status, answer.read().decode()
            except urllib.error.HTTPError as err:
                return err.code, ""

        assert get("/metrics")[0] == 401 and get("/metrics", "wrong")[0] == 401
        status, body = get("/metrics", "s3cret")
        assert status == 200 and 'tt_up{part="database"} 1.0' in body and "tt_backlog_videos 0.0" in body
        assert get("/", "s3cret")[0] == 404
    finally:
        server.shutdown()


def test_alerting_rules_pass_promtool_check_and_unit_tests(tmp_path):
    promtool = shutil.which("promtool")
    need(promtool is not None, "promtool is not installed (apt-get install prometheus)")
    for args in (["check", "rules", "rules.yml"], ["test", "rules", "rules_test.yml"]):
        proc = subprocess.run([promtool, *args], cwd=PROMETHEUS, capture_output=True, text=True, timeout=120)
        assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "SUCCESS" in proc.stdout
    broken = (PROMETHEUS / "rules_test.yml").read_text().replace("while 4 wait", "while 5 wait")
    shutil.copy(PROMETHEUS / "rules.yml", tmp_path)
    (tmp_path / "rules_test.yml").write_text(broken)
    proc = subprocess.run([promtool, "test", "rules", "rules_test.yml"], cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert proc.returncode != 0  # the unit tests can fail


def test_a_watch_counts_its_failed_runs_in_a_row_and_its_last_success(tmp_path):
    from workers.storage import watches as watch_rows
    from workers.storage.db import session_scope

    url = f"sqlite:///{tmp_path / 'w.db'}"
    now = utcnow()
    with session_scope(url) as s:
        watch_id = watch_rows.add(s, "folder:/x", ["red"], 60, now).id
    for n, (error, failed) in enumerate([(None, False), ("listing failed", False), (None, True), (None, True), (None, False)]):
        with session_scope(url) as s:
            watch_rows.record_run(s, watch_id, 0, 0, [], error, started_at=now + timedelta(minutes=n), failed=failed)
            watch = watch_rows.get(s, watch_id)
            if n == 3:
                assert watch.failed_runs == 3 and watch.last_success_at.replace(tzinfo=None) == now.replace(tzinfo=None)
    assert watch.failed_runs == 0 and watch.last_success_at.replace(tzinfo=None) == (now + timedelta(minutes=4)).replace(tzinfo=None)


def test_history_counts_finishes_per_hour_and_works_the_backlog_back_from_now(tmp_path):
    from workers.services.health import history, take_snapshot
    from workers.storage import results, videos
    from workers.storage.db import session_scope
    from workers.storage.models import Video
    from workers.web.charts import backlog_svg, finished_per_hour_svg, stage_times_svg

    settings = Settings(_env_file=None, data_dir=tmp_path, database_url=f"sqlite:///{tmp_path / 'h.db'}", broker_url="")
    now = utcnow().replace(minute=30, second=0, microsecond=0)
    with session_scope(settings.resolved_database_url) as s:
        def video(n: int, status: str, created: timedelta, finished: timedelta | None) -> None:
            row = videos.queued_video(f"job-{n}", f"/v/{n}.mp4", ["red"])
            row.status = status
            s.add(row)
            s.flush()
            if status == "done":
                results.record_timing(s, row.id, "alert", "w/1", now - finished - timedelta(seconds=2), now - finished)
            s.execute(Video.__table__.update().where(Video.id == row.id).values(
                created_at=now - created, updated_at=now - (finished if finished is not None else timedelta(0))))

        video(1, "done", timedelta(hours=3), timedelta(hours=2))  # queued 3 h ago, done 2 h ago
        video(2, "done", timedelta(hours=3), timedelta(hours=2))
        video(3, "failed", timedelta(hours=2), timedelta(hours=1))
        video(4, "queued", timedelta(hours=1), None)  # still waiting
    past = history(settings, take_snapshot(settings, now), hours=6)
    assert past.done == [0, 0, 0, 2, 0, 0] and past.failed == [0, 0, 0, 0, 1, 0]
    assert past.backlog == [0, 0, 2, 1, 1, 1]  # 2 queued, both done; 1 more, failed; 1 more, waiting
    assert past.stages["alert"] == (2.0, 2.0, 2) and past.stages["score"] == (0.0, 0.0, 0)
    bars = finished_per_hour_svg(past.hours, past.done, past.failed)
    assert bars.count('class="bar done"') == 1 and ": 2 done</title>" in bars and ": 1 failed</title>" in bars
    line = backlog_svg(past.hours, past.backlog, 10)
    assert line.count('<circle class="backlog"') == 6 and "backlog_limit 10" not in line  # 10 is off this chart's scale
    assert "alert p95: 2.00 s over 2 runs" in stage_times_svg(past.stages)
