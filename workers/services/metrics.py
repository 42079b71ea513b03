"""The Prometheus exposition of the pipeline (``tiktok-tracker metrics``).

Why its own process: it reads the state every host shares (the database and the broker's
Redis, where every worker counts what it did: ``pipeline.counters``), so one exporter reports
all hosts' workers and a Prometheus scrapes one target; it is light (no model, no Celery worker)
and keeps scrapes away from the web app's reviewers. Each scrape reads a fresh ``health``
snapshot (a few indexed queries, one ``inspect`` of the workers) and the counters hash.

It binds 127.0.0.1 unless told otherwise; on any other address it asks for basic auth
(``metrics_user`` / ``metrics_password``), which Prometheus' ``basic_auth`` scrape option sends.
"""

from __future__ import annotations

import base64
import hmac
import logging
from collections import defaultdict
from collections.abc import Iterator

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector, CollectorRegistry

from workers.errors import TrackerError
from workers.listen import is_loopback
from workers.pipeline.counters import HELP, counters_for, parse_field
from workers.services.health import Snapshot, checks, take_snapshot
from workers.settings import Settings

log = logging.getLogger(__name__)


def _gauge(name: str, doc: str, labels: list[str], values: dict[tuple[str, ...], float]) -> GaugeMetricFamily:
    family = GaugeMetricFamily(name, doc, labels=labels)
    for key, value in values.items():
        family.add_metric(list(key), value)
    return family


def snapshot_metrics(snap: Snapshot, settings: Settings) -> Iterator[Metric]:
    """The state of now, as gauges."""
    yield _gauge(
        "tt_up",
        "1 when the part answers (database, broker), else 0.",
        ["part"],
        {
            ("database",): float(snap.database_error is None),
            **({("broker",): float(snap.broker_error is None)} if settings.broker_url else {}),
        },
    )
    yield _gauge(
        "tt_health_check_ok",
        "1 when the check of `tiktok-tracker health` passes, else 0.",
        ["check"],
        {(c.name,): float(c.ok) for c in checks(snap, settings)},
    )
    if snap.database_error is None:
        yield _gauge("tt_videos", "Videos by status.", ["status"], {(k,): v for k, v in snap.statuses.items()})
        yield _gauge("tt_backlog_videos", "Videos accepted and not finished (queued or in a stage).", [], {(): snap.backlog})
        yield _gauge("tt_backlog_limit", "The bound of the backlog that watches add to (backlog_limit).", [], {(): settings.backlog_limit})
        yield _gauge(
            "tt_videos_finished_last_hour",
            "Videos done or failed in the last hour.",
            ["status"],
            {(k,): v for k, v in snap.finished_last_hour.items()},
        )
        if snap.last_finished_at is not None:
            yield _gauge(
                "tt_last_video_finished_timestamp_seconds",
                "When a video last finished (Unix time).",
                [],
                {(): snap.last_finished_at.timestamp()},
            )
        yield _gauge(
            "tt_alerts",
            "Alert rows by status (failed: no channel took it; retried by beat).",
            ["status"],
            {(k,): v for k, v in snap.alerts.items()},
        )
        watches = [w for w in snap.watches if w.enabled]
        labels = ["watch", "source"]
        yield _gauge(
            "tt_watch_seconds_since_success",
            "Seconds since the watch's last successful run (no error, not blocked).",
            labels,
            {(str(w.id), w.source): (snap.at - w.last_success_at).total_seconds() for w in watches if w.last_success_at},
        )
        yield _gauge(
            "tt_watch_failed_runs",
            "The watch's runs in a row that failed or were blocked.",
            labels,
            {(str(w.id), w.source): w.failed_runs for w in watches},
        )
        yield _gauge(
            "tt_watch_last_listed",
            "Videos the watch's last run listed.",
            labels,
            {(str(w.id), w.source): w.last_listed for w in watches if w.last_listed is not None},
        )
        yield _gauge(
            "tt_watch_last_queued",
            "New videos the watch's last run queued.",
            labels,
            {(str(w.id), w.source): w.last_enqueued or 0 for w in watches},
        )
    if snap.broker_error is None and snap.queues:
        yield _gauge(
            "tt_queue_messages", "Messages waiting in each queue.", ["queue"], {(q,): n for q, n in snap.queues.items() if n is not None}
        )
    if snap.consumers is not None:
        yield _gauge(
            "tt_queue_consumers",
            "Worker processes consuming each queue (those that answered).",
            ["queue"],
            {(q,): n for q, n in snap.consumers.items()},
        )


def counter_metrics(fields: dict[str, float]) -> Iterator[Metric]:
    """The workers' counters (``pipeline.counters``) as counters and histograms."""
    counters: dict[str, dict[tuple, float]] = defaultdict(dict)
    histograms: dict[str, dict[tuple, dict]] = defaultdict(dict)
    label_names: dict[str, list[str]] = {}
    for text, value in fields.items():
        parsed = parse_field(text)
        if parsed is None:
            continue
        name, labels = parsed
        for suffix in ("_bucket", "_count", "_sum"):
            base = name[: -len(suffix)]
            if name.endswith(suffix) and base in HELP:
                le = labels.pop("le", None)
                label_names[base] = sorted(labels)
                series = histograms[base].setdefault(tuple(labels[k] for k in sorted(labels)), {"buckets": {}, "count": 0.0, "sum": 0.0})
                if suffix == "_bucket" and le is not None:
                    series["buckets"][le] = value
                elif suffix == "_count":
                    series["count"] = value
                else:
                    series["sum"] = value
                break
        else:
            if name in HELP:
                label_names[name] = sorted(labels)
                counters[name][tuple(labels[k] for k in sorted(labels))] = value
    for name, series in counters.items():
        family = CounterMetricFamily(name, HELP[name], labels=label_names[name])
        for key, value in series.items():
            family.add_metric(list(key), value)
        yield family
    for name, series in histograms.items():
        family = HistogramMetricFamily(name, HELP[name], labels=label_names[name])
        for key, parts in series.items():
            family.add_metric(list(key), buckets=cumulative(parts["buckets"], parts["count"]), sum_value=parts["sum"])
        yield family


def cumulative(buckets: dict[str, float], count: float) -> list[tuple[str, float]]:
    """Per-bucket counts (``counters.DURATION_BUCKETS``) as Prometheus' cumulative ``le`` buckets."""
    from workers.pipeline.counters import DURATION_BUCKETS, le_text

    out, total = [], 0.0
    for bound in DURATION_BUCKETS:
        total += buckets.get(le_text(bound), 0.0)
        out.append((le_text(bound), total if bound != float("inf") else max(total, count)))
    return out


class PipelineCollector(Collector):
    """Everything above, read afresh at each scrape."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    def collect(self) -> Iterator[Metric]:
        yield from snapshot_metrics(take_snapshot(self.settings), self.settings)
        try:
            fields = counters_for(self.settings.broker_url).read()
        except Exception as exc:  # noqa: BLE001 - the broker is down: tt_up says so, the gauges still come
            log.warning("metrics: the counters could not be read (%s: %s)", type(exc).__name__, exc)
            fields = {}
        yield from counter_metrics(fields)


def registry_for(settings: Settings) -> CollectorRegistry:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(PipelineCollector(settings))
    return registry


def check_bind(settings: Settings, host: str) -> None:
    """Refuse to serve beyond loopback without a password (the metrics name watches and sources)."""
    if not is_loopback(host) and not (settings.metrics_password and settings.metrics_password.get_secret_value()):
        raise TrackerError(f"metrics: refusing to listen on {host} without authentication: set TT_METRICS_PASSWORD (or bind 127.0.0.1)")


def wsgi_app(settings: Settings):
    """``/metrics`` (basic auth when ``metrics_password`` is set); anything else: 404."""
    from prometheus_client import make_wsgi_app

    metrics = make_wsgi_app(registry_for(settings))
    password = settings.metrics_password.get_secret_value() if settings.metrics_password else ""
    expected = "Basic " + base64.b64encode(f"{settings.metrics_user}:{password}".encode()).decode()

    def app(environ, start_response):
        if environ.get("PATH_INFO", "/") not in ("/metrics", "/metrics/"):
            start_response("404 Not Found", [("Content-Type", "text/plain")])
            return [b"tiktok-tracker metrics: see /metrics\n"]
        if password and not hmac.compare_digest(environ.get("HTTP_AUTHORIZATION", "").encode(), expected.encode()):
            start_response(
                "401 Unauthorized", [("Content-Type", "text/plain"), ("WWW-Authenticate", 'Basic realm="tiktok-tracker metrics"')]
            )
            return [b"authentication required\n"]
        return metrics(environ, start_response)

    return app


def serve(settings: Settings, host: str, port: int) -> None:
    """Serve ``/metrics`` until stopped (one thread per scrape)."""
    from wsgiref.simple_server import WSGIRequestHandler, make_server

    from prometheus_client.exposition import ThreadingWSGIServer

    check_bind(settings, host)

    class QuietHandler(WSGIRequestHandler):
        def log_message(self, format, *args):  # noqa: A002 - scrapes every few seconds are not news
            log.debug(format, *args)

    server = make_server(host, port, wsgi_app(settings), ThreadingWSGIServer, handler_class=QuietHandler)
    log.info("metrics on http://%s:%s/metrics", host, port)
    try:
        server.serve_forever()
    finally:
        server.server_close()
