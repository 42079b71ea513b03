"""The Celery application, configured from the typed settings.

``celery -A workers.pipeline.celery_app ...`` (beat, flower, inspect) and
``tiktok-tracker worker`` both use ``app``. Routing lives here: each stage
goes to the queue of its kind of work, so that I/O, CPU and model work scale
separately:

- ``io``: download, alert, and beat's watch runs and alert follow-ups
  (network-bound; many processes per host are fine)
- ``cpu``: frames, verdict (decoding and bookkeeping; one process per core)
- ``score``: the model (one process per GPU, or one per CPU host)

Reliability: a task is acknowledged only when it has finished (``acks_late``),
and requeued when its worker process dies (``task_reject_on_worker_lost``);
a task held by a worker that vanished altogether goes back to the queue after
``broker_visibility_timeout``. Each worker process takes one task at a time
(prefetch multiplier 1): tasks are long and should go to whichever worker is
free. Results travel through the database and the media store, never through
Celery's result backend (disabled).
"""

from __future__ import annotations

from celery import Celery
from celery.signals import beat_init

from workers.settings import Settings, get_settings

QUEUES = ("io", "cpu", "score")
TASKS = "workers.pipeline.tasks"
SCORE_BATCHES = "workers.pipeline.score_batches"  # a score worker's shared forward passes
STAGE_QUEUES = {
    "download": "io",
    "frames": "cpu",
    "score": "score",
    "verdict": "cpu",
    "alert": "io",
    "housekeeping": "io",
    "run_watches": "io",
    "alert_followups": "io",
    "reap_stalled": "io",
}


def task_name(stage: str) -> str:
    """A task's registered name: the stage itself (``download``, ``score`` ...), short
    enough to read in Flower's task list and in worker logs."""
    return stage


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
        "task_routes": {task_name(stage): {"queue": queue} for stage, queue in STAGE_QUEUES.items()},
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
        "beat_schedule": {
            "housekeeping": {"task": task_name("housekeeping"), "schedule": settings.housekeeping_interval},
            "reap_stalled": {
                "task": task_name("reap_stalled"),
                "schedule": settings.reaper_interval,
                "options": {"expires": settings.reaper_interval},
            },
            # Ticks that wait in the queue longer than one interval are dropped: the next one does the same work.
            **{
                name: {
                    "task": task_name(name),
                    "schedule": settings.watch_poll_interval,
                    "options": {"expires": settings.watch_poll_interval},
                }
                for name in ("run_watches", "alert_followups")
            },
        },
    }


def make_app(settings: Settings | None = None) -> Celery:
    app = Celery("tiktok_tracker", include=[TASKS, SCORE_BATCHES])
    app.conf.update(celery_config(settings or get_settings()))
    return app


app = make_app()


@beat_init.connect
def _beat_sends_no_sent_events(sender=None, **_kwargs) -> None:
    """Beat queues ``run_watches`` and ``alert_followups`` every ``watch_poll_interval``
    seconds, and ``reap_stalled`` every ``reaper_interval``: without this, each tick
    would be a "sent" task in Flower's list. (Those tasks send no worker events
    either: ``tasks.py``.) Housekeeping still shows
    there once its worker takes it."""
    (sender.app if sender is not None else app).conf.task_send_sent_event = False
