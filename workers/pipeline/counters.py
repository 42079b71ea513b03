"""Counters of what the workers did, kept in the broker's Redis.

Every worker on every host adds to one Redis hash (``COUNTERS_KEY``), so one exporter
(``tiktok-tracker metrics``) reports them all: no worker is scraped on its own. A count
is one ``HINCRBY`` (a stage's duration: three fields in one round trip), written after
the work it counts is recorded in the database; a count that cannot be written (Redis
gone for a moment) is lost and logged, never an error of the stage.

Fields are ``name`` or ``name{label="value",...}`` in Prometheus' own notation, so the
exporter reads them back without a schema. Durations go into fixed buckets
(``DURATION_BUCKETS``): each observation adds one to the first bucket it fits, the
exporter makes them cumulative. A Redis that restarts without its data starts the
counters again from zero, which Prometheus' ``rate`` and ``increase`` read as a reset.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import lru_cache

log = logging.getLogger(__name__)

COUNTERS_KEY = "tt:metrics"
# Seconds, for stage durations: a download or a score batch is 0.1 s to minutes.
DURATION_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0, float("inf"))

STAGE_RUNS = "tt_stage_runs_total"  # {stage, outcome: ok | failed}
STAGE_SECONDS = "tt_stage_duration_seconds"  # histogram {stage}
VIDEOS_FINISHED = "tt_videos_finished_total"  # {status: done | failed}
FRAMES_SCORED = "tt_frames_scored_total"  # frames through a model (reused scores are not)
ALERT_DELIVERIES = "tt_alert_deliveries_total"  # {channel, outcome: sent | failed}
REAPER_REQUEUES = "tt_reaper_requeues_total"
WATCH_RUNS = "tt_watch_runs_total"  # {outcome: ok | failed | blocked}

# What each is, for the exporter (``services.metrics``); a field of another name is not exported.
HELP = {
    STAGE_RUNS: "Stage runs by stage and outcome (ok, failed), on every worker.",
    STAGE_SECONDS: "How long each stage ran on a video.",
    VIDEOS_FINISHED: "Videos that finished: done (through the alert stage) or failed.",
    FRAMES_SCORED: "Sampled frames a target's model scored (reused scores not counted).",
    ALERT_DELIVERIES: "Alert deliveries by channel and outcome (sent, failed after its retries).",
    REAPER_REQUEUES: "Videos the reaper requeued (their worker gone, or no progress for stall_timeout).",
    WATCH_RUNS: "Watch runs by outcome (ok, failed, blocked).",
}

_FIELD = re.compile(r"^(?P<name>[a-z_]+)(?:\{(?P<labels>.*)\})?$", re.DOTALL)
_LABEL = re.compile(r'(\w+)="((?:[^"\\]|\\.)*)"')


def field_name(name: str, labels: Mapping[str, str] | None = None) -> str:
    """``name{a="x",b="y"}`` (labels sorted; quotes and backslashes escaped)."""
    if not labels:
        return name
    inner = ",".join(f'{k}="{_escape(str(v))}"' for k, v in sorted(labels.items()))
    return f"{name}{{{inner}}}"


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"')


def parse_field(text: str) -> tuple[str, dict[str, str]] | None:
    """``field_name``'s inverse; None for a field this version does not know how to read."""
    match = _FIELD.match(text)
    if match is None:
        return None
    labels = {k: re.sub(r"\\(.)", r"\1", v, flags=re.DOTALL) for k, v in _LABEL.findall(match["labels"] or "")}
    return match["name"], labels


def bucket_of(seconds: float) -> str:
    """The upper bound of the first bucket ``seconds`` fits, as the ``le`` label writes it."""
    for bound in DURATION_BUCKETS:
        if seconds <= bound:
            return le_text(bound)
    return "+Inf"


def le_text(bound: float) -> str:
    return "+Inf" if bound == float("inf") else repr(float(bound))


@dataclass
class Counters:
    """Adds to the counters in ``redis_url``'s Redis; does nothing without one (no broker, or not
    Redis). ``add`` and ``observe`` never raise: a failed write is logged at most once a minute."""

    redis_url: str | None
    _client: object | None = field(default=None, repr=False)
    _warned_at: float = field(default=0.0, repr=False)

    def client(self):
        if self._client is None and self.redis_url:
            import redis

            self._client = redis.Redis.from_url(self.redis_url, socket_connect_timeout=2, socket_timeout=2)
        return self._client

    def add(self, name: str, labels: Mapping[str, str] | None = None, amount: int = 1) -> None:
        self._write([(field_name(name, labels), amount)])

    def observe(self, name: str, labels: Mapping[str, str], seconds: float) -> None:
        """One duration into ``name``'s histogram (its bucket, count and sum)."""
        seconds = max(0.0, float(seconds))
        bucket = field_name(f"{name}_bucket", {**labels, "le": bucket_of(seconds)})
        self._write([(bucket, 1), (field_name(f"{name}_count", labels), 1), (field_name(f"{name}_sum", labels), seconds)])

    def _write(self, increments: list[tuple[str, float]]) -> None:
        client = self.client()
        if client is None:
            return
        try:
            pipe = client.pipeline(transaction=False)
            for name, amount in increments:
                if isinstance(amount, int):
                    pipe.hincrby(COUNTERS_KEY, name, amount)
                else:
                    pipe.hincrbyfloat(COUNTERS_KEY, name, amount)
            pipe.execute()
        except Exception as exc:  # noqa: BLE001 - a count is never worth failing the work it counts
            if time.monotonic() - self._warned_at > 60:
                self._warned_at = time.monotonic()
                log.warning("metrics: could not count %s in Redis (%s: %s)", increments[0][0], type(exc).__name__, exc)

    def read(self) -> dict[str, float]:
        """Every counter field and its value (the exporter's read); ``{}`` without a Redis."""
        client = self.client()
        if client is None:
            return {}
        raw = client.hgetall(COUNTERS_KEY)
        return {k.decode(): float(v) for k, v in raw.items()}


def redis_url_of(broker_url: str | None) -> str | None:
    """Where the counters live: the broker, when it is Redis."""
    return broker_url if broker_url and broker_url.startswith(("redis://", "rediss://")) else None


@lru_cache(maxsize=8)
def counters_for(broker_url: str | None) -> Counters:
    """One ``Counters`` (one connection pool) per broker, per process."""
    return Counters(redis_url_of(broker_url))
