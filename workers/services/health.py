"""Is the pipeline doing its job? One snapshot of its state (database, broker, queues, workers,
progress, watches, alerts) and the checks an operator is paged for, read by ``tiktok-tracker
health`` (non-zero exit when one fails: cron, systemd timers), the web app's pipeline page and
the metrics exporter (``services.metrics``), so that all three say the same.

The same conditions, over time, are Prometheus' alerting rules (``infra/prometheus/``):
``health`` is the look of now, the rules also see what grows.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy.exc import DBAPIError

from workers.services.database import database_problem
from workers.settings import Settings
from workers.storage.models import AlertStatus, VideoStatus, as_utc, utcnow

LAST_STAGE = "alert"  # the stage a done video runs through last (``stages.STAGES``; tests check they agree)


@dataclass(frozen=True)
class WatchState:
    id: int
    source: str
    enabled: bool
    last_success_at: datetime | None
    last_listed: int | None
    last_enqueued: int | None
    failed_runs: int
    last_error: str | None
    last_warnings: list[str]
    last_deferred: int = 0


@dataclass
class Snapshot:
    """The pipeline's state at ``at``. A part that could not be read is empty, with its ``*_error``."""

    at: datetime
    database_error: str | None = None
    statuses: dict[str, int] = field(default_factory=dict)
    finished_last_hour: dict[str, int] = field(default_factory=dict)
    last_finished_at: datetime | None = None
    alerts: dict[str, int] = field(default_factory=dict)
    watches: list[WatchState] = field(default_factory=list)
    queues: dict[str, int | None] = field(default_factory=dict)
    broker_error: str | None = None
    consumers: dict[str, int] | None = None  # worker processes per queue
    consumers_error: str | None = None

    @property
    def backlog(self) -> int:
        """Videos accepted and not finished: queued or in a stage."""
        return sum(n for status, n in self.statuses.items() if status not in VideoStatus.FINISHED)


def take_snapshot(settings: Settings, now: datetime | None = None, ask_workers: bool = True) -> Snapshot:
    """Read everything once. ``ask_workers``: the workers are asked which queues they consume,
    which takes ``health_inspect_timeout`` s; False: their last answer (``WorkerCensus``), so
    that a page shows it without waiting."""
    from workers.pipeline.queues import queue_consumers, queue_lengths
    from workers.storage import activity, results
    from workers.storage.db import session_scope

    snap = Snapshot(at=now or utcnow())
    try:
        with session_scope(settings.resolved_database_url) as s:
            snap.statuses = results.status_counts(s)
            snap.finished_last_hour = activity.finished_since(s, snap.at - timedelta(hours=1), LAST_STAGE)
            snap.last_finished_at = activity.last_finished_at(s, LAST_STAGE)
            snap.alerts = activity.alert_counts(s)
            snap.watches = [
                WatchState(
                    w.id,
                    w.source,
                    bool(w.enabled),
                    as_utc(w.last_success_at),
                    w.last_listed,
                    w.last_enqueued,
                    w.failed_runs or 0,
                    w.last_error,
                    list(w.last_warnings or []),
                )
                for w in activity.all_watches(s)
            ]
    except DBAPIError as exc:
        snap.database_error = database_problem(settings.resolved_database_url, exc)
    except Exception as exc:  # noqa: BLE001 - a health check reports a database it cannot read
        snap.database_error = f"{type(exc).__name__}: {exc}"
    if settings.broker_url:
        snap.queues, snap.broker_error = queue_lengths(settings)
        if ask_workers and snap.broker_error is None:
            snap.consumers, snap.consumers_error = queue_consumers(settings, settings.health_inspect_timeout)
        elif snap.broker_error is None:
            snap.consumers, snap.consumers_error = CENSUS.last(settings)
    return snap


class WorkerCensus:
    """The workers' last answer to "which queues do you consume?", asked again in the background
    when older than ``max_age`` s: a page reads it at once (None until the first answer)."""

    def __init__(self, max_age: float = 30.0) -> None:
        self.max_age = max_age
        self._lock = threading.Lock()
        self._answers: dict[str, tuple[float, dict[str, int] | None, str | None]] = {}
        self._asking: set[str] = set()

    def last(self, settings: Settings) -> tuple[dict[str, int] | None, str | None]:
        url = settings.broker_url or ""
        with self._lock:
            asked_at, consumers, error = self._answers.get(url, (0.0, None, "asking the workers (reload in a second)"))
            if time.monotonic() - asked_at > self.max_age and url not in self._asking:
                self._asking.add(url)
                threading.Thread(target=self._ask, args=(settings,), name="worker-census", daemon=True).start()
        return consumers, error

    def _ask(self, settings: Settings) -> None:
        from workers.pipeline.queues import queue_consumers

        consumers, error = None, "the workers could not be asked"
        try:
            consumers, error = queue_consumers(settings, settings.health_inspect_timeout)
        finally:
            with self._lock:
                self._asking.discard(settings.broker_url or "")
                self._answers[settings.broker_url or ""] = (time.monotonic(), consumers, error)


CENSUS = WorkerCensus()


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    detail: str


def _ago(moment: datetime | None, now: datetime) -> str:
    if moment is None:
        return "never"
    minutes = (now - moment).total_seconds() / 60
    return f"{minutes:.0f} min ago" if minutes < 120 else f"{minutes / 60:.1f} h ago"


def checks(snap: Snapshot, settings: Settings) -> list[Check]:
    """The checks, in the order a person reads them; each says what it saw."""
    out = [Check("database", snap.database_error is None, snap.database_error or "answers")]
    if not settings.broker_url:
        out.append(Check("broker", True, "none configured: scans run in-process (no workers to check)"))
    else:
        out.append(Check("broker", snap.broker_error is None, snap.broker_error or "answers"))
        if snap.consumers is None:
            out.append(Check("workers", False, snap.consumers_error or snap.broker_error or "not asked"))
        else:
            idle = [q for q, n in snap.consumers.items() if n == 0]
            text = ", ".join(f"{q} {n}" for q, n in snap.consumers.items())
            out.append(Check("workers", not idle, f"no worker consumes {', '.join(idle)} ({text})" if idle else f"per queue: {text}"))
    if snap.database_error is None:
        out.append(_progress(snap, settings))
        out.append(_watches(snap, settings))
        failed = snap.alerts.get(AlertStatus.FAILED, 0)
        out.append(
            Check(
                "alerts",
                failed == 0,
                f"{failed} alert(s) not delivered by any channel (`alerts list`; `alerts test` tries the channels)"
                if failed
                else f"{snap.alerts.get(AlertStatus.SENT, 0)} sent, none failing",
            )
        )
    return out


def _progress(snap: Snapshot, settings: Settings) -> Check:
    done, failed = snap.finished_last_hour.get(VideoStatus.DONE, 0), snap.finished_last_hour.get(VideoStatus.FAILED, 0)
    seen = f"{snap.backlog} waiting; last hour {done} done, {failed} failed; last finished {_ago(snap.last_finished_at, snap.at)}"
    stalled = timedelta(minutes=settings.health_stall_minutes)
    moving = snap.backlog == 0 or (snap.last_finished_at is not None and snap.at - snap.last_finished_at <= stalled)
    if not moving:
        return Check("progress", False, f"no video finished for {settings.health_stall_minutes:g} min while {seen}")
    return Check("progress", True, seen)


def _watches(snap: Snapshot, settings: Settings) -> Check:
    enabled = [w for w in snap.watches if w.enabled]
    failing = [w for w in enabled if w.failed_runs >= settings.health_failed_runs]
    deferring = "".join(
        f"; #{w.id} deferred {w.last_deferred} (backlog {snap.backlog} of {settings.backlog_limit})" for w in enabled if w.last_deferred
    )
    if not failing:
        return Check("watches", True, f"{len(enabled)} enabled, none failing{deferring}")
    said = "; ".join(
        f"#{w.id} {w.source}: {w.failed_runs} runs in a row ({w.last_error or ', '.join(w.last_warnings) or 'blocked'}), "
        f"last success {_ago(w.last_success_at, snap.at)}"
        for w in failing
    )
    return Check("watches", False, f"{len(failing)} of {len(enabled)} failing: {said}{deferring}")


@dataclass
class History:
    """The last ``len(hours)`` hours, oldest first, for the pipeline page's charts: videos done and
    failed per hour, the backlog at each hour's end (worked back from now: arrivals added, finishes
    taken away), and each stage's p50 and p95 seconds over its newest runs."""

    hours: list[datetime]
    done: list[int]
    failed: list[int]
    backlog: list[int]
    stages: dict[str, tuple[float, float, int]]  # stage -> (p50, p95, runs measured)


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))] if ordered else 0.0


def history(settings: Settings, snap: Snapshot, hours: int = 48) -> History:
    """The ``hours`` up to ``snap``'s moment, its backlog the last hour's end."""
    from workers.pipeline.stages import STAGES
    from workers.storage import activity
    from workers.storage.db import session_scope

    now = snap.at
    first = now.replace(minute=0, second=0, microsecond=0) - timedelta(hours=hours - 1)
    starts = [first + timedelta(hours=h) for h in range(hours)]

    def per_hour(times: list[datetime]) -> list[int]:
        counts = [0] * hours
        for t in times:
            index = int((t - first).total_seconds() // 3600)
            if 0 <= index < hours:
                counts[index] += 1
        return counts

    with session_scope(settings.resolved_database_url) as s:
        done_at, failed_at = activity.finish_times(s, first, LAST_STAGE)
        arrived = per_hour(activity.arrival_times(s, first))
        stages = {}
        for stage in STAGES:
            seconds = activity.recent_stage_seconds(s, stage.name)
            stages[stage.name] = (_percentile(seconds, 0.5), _percentile(seconds, 0.95), len(seconds))
    done, failed = per_hour(done_at), per_hour(failed_at)
    backlog = [0] * hours
    backlog[-1] = snap.backlog
    for h in range(hours - 1, 0, -1):
        backlog[h - 1] = max(0, backlog[h] - arrived[h] + done[h] + failed[h])
    return History(starts, done, failed, backlog, stages)
