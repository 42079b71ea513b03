"""The Celery application, configured from the typed settings.

``celery -A workers.pipeline.celery_app ...`` (beat, flower, inspect) and
``tiktok-tracker worker`` both use ``app``. Routing is derived here: each task
goes to the queue of its kind of work (a stage's in ``stages.STAGES``, a
periodic task's in ``PERIODIC``), so that I/O, CPU and model work scale
separately:

- ``io``: download, alert, and beat's periodic tasks (network-bound; many
  processes per host are fine)
- ``cpu``: frames, verdict (decoding and bookkeeping; one process per core)
- ``score``: the model (one process per GPU, or one per CPU host); the ``timeline``
  follow-up too, at a lower priority (``stages.FOLLOW_UP_PRIORITY``): taken only
  when no video waits there

Reliability: a task is acknowledged only when it has finished (``acks_late``),
and requeued when its worker process dies (``task_reject_on_worker_lost``);
a task held by a worker that vanished altogether goes back to the queue after
``broker_visibility_timeout``. Each worker process takes one task at a time
(prefetch multiplier 1): tasks are long and should go to whichever worker is
free. Results travel through the database and the media store, never through
Celery's result backend (disabled).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from celery import Celery
from celery.signals import beat_init

from workers.pipeline.stages import FOLLOW_UPS, IO, STAGES
from workers.pipeline.stages import QUEUES as QUEUES  # the worker command's choices
from workers.settings import Settings, get_settings

TASKS = "workers.pipeline.tasks"
SCORE_THREADS = "workers.pipeline.score_threads"  # a score worker's threads, sharing forward passes


@dataclass(frozen=True)
class Periodic:
    """A task celery beat queues every ``every`` seconds (a setting's name); ``tasks.py`` defines it."""

    name: str
    queue: str
    every: str
    expires: bool = True  # a tick no worker took within one interval is dropped: the next one does the same work
    events: bool = False  # sends task events: shows in Flower's task list (ticks would crowd it)


# Watch runs' and alert follow-ups' work shows in `watch list` and `alerts list`, their errors in the worker log.
PERIODIC = {
    p.name: p
    for p in (
        Periodic("housekeeping", IO, "housekeeping_interval", expires=False, events=True),
        Periodic("prune", IO, "prune_interval", expires=False, events=True),
        Periodic("reap_stalled", IO, "reaper_interval"),
        Periodic("run_watches", IO, "watch_poll_interval"),
        Periodic("alert_followups", IO, "watch_poll_interval"),
    )
}
# Task name -> queue. Tasks are named as their stage (``download``, ``score`` ...): short
# enough to read in Flower's task list and in worker logs.
ROUTES = {task.name: task.queue for task in (*STAGES, *FOLLOW_UPS, *PERIODIC.values())}


def beat_entry(task: Periodic, settings: Settings) -> dict:
    """``task``'s entry in beat's schedule."""
    every = getattr(settings, task.every)
    return {"task": task.name, "schedule": every, **({"options": {"expires": every}} if task.expires else {})}


def celery_config(settings: Settings) -> dict:
    """Celery settings derived from ours (the only place they are set)."""
    visibility = settings.broker_visibility_timeout
    return {
        "broker_url": settings.broker_url or None,
        "broker_connection_timeout": settings.broker_connect_timeout,
        "broker_connection_retry_on_startup": True,
        "broker_transport_options": {
            "visibility_timeout": visibility,
            # Look for abandoned tasks about ten times per visibility timeout.
            "unacked_restore_interval": max(1, min(60, visibility // 10)),
            "unacked_restore_throttle": 1,
            "socket_connect_timeout": settings.broker_connect_timeout,
            "socket_timeout": 60,
            "socket_keepalive": True,
        },
        "task_routes": {name: {"queue": queue} for name, queue in ROUTES.items()},
        "task_default_queue": "cpu",
        "task_acks_late": True,
        "task_reject_on_worker_lost": True,
        "worker_prefetch_multiplier": 1,
        # A score worker's processes load and trace their models before they report
        # up (tasks.warm_models): give them far longer than Celery's default 4 s.
        "worker_proc_alive_timeout": 300,
        "worker_cancel_long_running_tasks_on_connection_loss": True,
        "task_ignore_result": True,
        "result_backend": None,
        "task_serializer": "json",
        "accept_content": ["json"],
        "worker_send_task_events": True,
        "task_send_sent_event": True,
        "timezone": "UTC",
        "beat_schedule": {task.name: beat_entry(task, settings) for task in PERIODIC.values()},
    }


def make_app(settings: Settings | None = None) -> Celery:
    app = Celery("tiktok_tracker", include=[TASKS, SCORE_THREADS])
    app.conf.update(celery_config(settings or get_settings()))
    return app


app = make_app()


@beat_init.connect
def _beat_sends_no_sent_events(sender=None, **_kwargs) -> None:
    """Beat queues ``run_watches`` and ``alert_followups`` every ``watch_poll_interval``
    seconds, and ``reap_stalled`` every ``reaper_interval``: without this, each tick
    would be a "sent" task in Flower's list. (Those tasks send no worker events
    either: ``PERIODIC``.) Housekeeping still shows
    there once its worker takes it."""
    (sender.app if sender is not None else app).conf.task_send_sent_event = False
    logging.getLogger("celery.beat").addFilter(demote_ticks)


def demote_ticks(record: logging.LogRecord) -> bool:
    """Beat's "Sending due task" line, every ``watch_poll_interval`` seconds, at DEBUG: shown with
    ``beat --loglevel DEBUG`` only, so that an INFO log keeps what happened, not the clock."""
    if not str(record.msg).startswith("Scheduler: Sending due task"):
        return True
    record.levelno, record.levelname = logging.DEBUG, "DEBUG"
    return logging.getLogger("celery.beat").getEffectiveLevel() <= logging.DEBUG
