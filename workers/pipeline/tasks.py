"""Celery tasks: one thin task per stage, chained per video.

A task receives a video id and returns it; the work is done by the plain
functions in ``workers.pipeline.stages``, one task per row of its table
(``stages.STAGES``: the task has the stage's name). What the wrapper adds:

- status and failure bookkeeping: a ``TrackerError`` (bad input: corrupt
  file, missing target ...) fails the video at once with its reason; a
  transient error (database, broker, network) is retried with exponential
  backoff and jitter for at least ``task_retry_window`` seconds (enough
  retries that even the shortest jitter adds up to it), then fails the video;
  anything else fails it as an internal error. The task is marked failed in
  Celery too (visible in Flower) and the rest of the chain is dropped.
- the stage's interval and worker, recorded in ``stage_timings``. That
  bookkeeping is part of the stage: an error there is handled (retried or
  failed) like the stage's own, never left to end the chain silently. A
  video whose failure could not even be recorded (the database is down for
  longer than the retry window) is found by beat's reaper (``reap_stalled``);
- a lease on the video while the stage runs (``workers.pipeline.leases``): a worker killed
  mid-stage is noticed within ``lease_seconds`` and its video requeued by the reaper, which
  also runs once in every worker that starts; a delivery that finds the video leased by
  another live worker does nothing (the work is in progress);
- a stage that raises ``Postponed`` runs again after its delay (not a failure, no limit);
- what the stage says comes next (``stages.Next``): the chain goes on; it stops
  (the video was already finished: a redelivered message), instead of redoing
  work; or it skips to the alert stage (a repost whose verdicts were reused);
- models and database connections belong to the worker process that uses
  them: nothing is carried over a fork.
"""

from __future__ import annotations

import logging
import os
import random
import threading
from collections.abc import Callable
from pathlib import PurePosixPath
from urllib.parse import urlsplit

from billiard.process import current_process
from celery import Task, chain
from celery.signals import worker_process_init, worker_ready
from celery.utils.log import get_task_logger
from kombu.exceptions import OperationalError as BrokerError
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from sqlalchemy.exc import DBAPIError, InterfaceError
from sqlalchemy.exc import OperationalError as DatabaseError

from workers.errors import Postponed, TrackerError, TransientError
from workers.pipeline import alerting, reaper, retention, stages, watches
from workers.pipeline.celery_app import PERIODIC, app
from workers.pipeline.leases import LeaseKeeper
from workers.pipeline.submit import Publisher
from workers.retrying import jittered_backoff, retries_spanning
from workers.settings import Settings, get_settings
from workers.storage.db import forget_engines, get_engine
from workers.storage.models import utcnow
from workers.video_ref import is_url

logger = get_task_logger(__name__)
# Outside a task (process start-up) the task logger prints "???[???]" for the task it is
# not in: use a plain logger there (another name: loggers are one per name).
process_logger = logging.getLogger("workers.pipeline.worker")

# Retried with backoff; checked before TrackerError (TransientError, e.g. a download that
# timed out after its own retries, is one).
TRANSIENT: tuple[type[BaseException], ...] = (
    DatabaseError,
    InterfaceError,
    BrokerError,
    RedisConnectionError,
    RedisTimeoutError,
    ConnectionError,
    TimeoutError,
    TransientError,
)

_context: stages.StageContext | None = None
_keeper: LeaseKeeper | None = None
_keeper_lock = threading.Lock()


def context() -> stages.StageContext:
    """This process's stage context (settings, media store, loaded models)."""
    global _context
    if _context is None:
        _context = stages.StageContext.from_settings(get_settings())
        _context.complete_later = complete_later  # follow-ups go through the broker
    return _context


@worker_process_init.connect
def _fresh_process(**_kwargs) -> None:
    """In each pool process, after the fork: own models, own connections, own GPU."""
    global _context, _keeper
    _context = _keeper = None
    forget_engines(close=False)
    settings = get_settings()  # score_gpus, worker_queues: the plan of `tiktok-tracker worker`
    gpus = settings.score_gpus
    if gpus:  # one pool process per GPU (see `tiktok-tracker worker`)
        index = getattr(current_process(), "index", 0) or 0
        os.environ["CUDA_VISIBLE_DEVICES"] = gpus[index % len(gpus)]
    queues = settings.worker_queues
    if queues:
        warm_database()
    if "score" in queues:
        warm_models()


def lease_keeper() -> LeaseKeeper:
    """This process's stage leases (``workers.pipeline.leases``)."""
    global _keeper
    with _keeper_lock:
        if _keeper is None:
            ctx = context()
            _keeper = LeaseKeeper(ctx.db_url, ctx.settings.lease_seconds)
        return _keeper


@worker_ready.connect
def _recover_on_start(sender=None, **_kwargs) -> None:
    """A worker that starts requeues what gone workers left mid-way (``reaper.reap_at_start``),
    from a thread of its main process: it never delays the worker."""
    node = getattr(sender, "hostname", None)  # the Celery node name, as in its stage leases
    threading.Thread(target=reaper.reap_at_start, args=(context(), requeue_chain, node), name="reaper-at-start", daemon=True).start()


def warm_database() -> None:
    """Connect (and check the schema) now rather than in the first task, which
    sits on the path of the first video through the pipeline."""
    try:
        get_engine(context().db_url)
    except Exception as exc:  # noqa: BLE001 - the first task connects (and retries) anyway
        process_logger.warning("database not reachable at start (%s: %s); tasks will retry", type(exc).__name__, exc)


def warm_models() -> None:
    """Load and trace this process's models before it takes its first task
    (the worker reports ready only after this: see ``worker_proc_alive_timeout``)."""
    started = utcnow()
    try:
        names = context().models.warm()
    except Exception as exc:  # noqa: BLE001 - never keep a worker from starting; the first task retries the load
        process_logger.warning("could not load the models ahead of time (%s: %s); the first video will", type(exc).__name__, exc)
        return
    process_logger.info("models warm for %s in %.1f s", ", ".join(names) or "no saved target", (utcnow() - started).total_seconds())


def _reason(exc: BaseException) -> str:
    if isinstance(exc, DBAPIError) and exc.orig is not None:
        return f"{type(exc.orig).__name__}: {str(exc.orig).strip().splitlines()[0]}"
    return f"{type(exc).__name__}: {exc}"


class StageTask(Task):
    """Base of the stage tasks: see the module docstring."""

    acks_late = True
    reject_on_worker_lost = True
    throws = (TrackerError,)  # expected failures: logged without a traceback

    def run_stage(self, row: stages.Stage, video_id: int) -> int:
        ctx = context()
        stage = row.name
        worker = f"{self.request.hostname or 'worker'}/{os.getpid()}"
        started = utcnow()
        keeper = lease_keeper()
        try:
            other = keeper.take(video_id, worker)
            if other is not None:  # a second delivery of work in progress (see ``leases``)
                logger.info(
                    "video %s, %s: %s runs it (lease until %s); this delivery does nothing", video_id, stage, other.worker, other.until
                )
                self.request.chain = None
                return video_id
            try:
                step = row.run(ctx, video_id)
            finally:
                keeper.release(video_id)
            if step is not stages.Next.STOP:  # bookkeeping before the chain is touched: a retry re-sends the chain as it came
                stages.record_timing(ctx, video_id, stage, worker, started, utcnow())
        except Postponed as exc:  # e.g. a repost waiting for its original: run again later (a Celery retry without limit)
            logger.info("video %s, %s: %s; again in %ss", video_id, stage, exc, exc.seconds)
            raise self.retry(
                countdown=exc.seconds, max_retries=self.request.retries + 1, argsrepr=getattr(self.request, "argsrepr", None)
            ) from exc
        except TRANSIENT as exc:
            settings = ctx.settings
            limit = retries_spanning(settings.task_retry_window, settings.task_retry_backoff, settings.task_retry_backoff_max)
            if self.request.retries < limit:
                delay = round(
                    jittered_backoff(self.request.retries, settings.task_retry_backoff, settings.task_retry_backoff_max, random.random), 2
                )
                logger.warning(
                    "video %s, %s: %s; retry %d/%d in %ss", video_id, stage, _reason(exc), self.request.retries + 1, limit, delay
                )
                raise self.retry(exc=exc, countdown=delay, max_retries=limit, argsrepr=getattr(self.request, "argsrepr", None)) from exc
            self._fail(ctx, video_id, stage, worker, started, f"{stage}: gave up after {limit} retries ({_reason(exc)})")
            raise
        except TrackerError as exc:
            self._fail(ctx, video_id, stage, worker, started, str(exc))
            raise
        except Exception as exc:
            self._fail(ctx, video_id, stage, worker, started, f"{stage}: internal error ({_reason(exc)})")
            raise
        if step is stages.Next.STOP:
            logger.info("video %s is already finished: %s skipped, chain stopped", video_id, stage)
            self.request.chain = None
        elif step is stages.Next.TO_ALERT:  # the rest of the chain is that one task (Celery pops the next from the end)
            self.request.chain = [STAGE_TASKS["alert"].si(video_id).set(argsrepr=getattr(self.request, "argsrepr", None))]
        return video_id

    @staticmethod
    def _fail(ctx, video_id, stage, worker, started, reason: str) -> None:
        try:
            stages.fail(ctx, video_id, reason)
            stages.record_timing(ctx, video_id, stage, worker, started, utcnow(), ok=False)
        except Exception:  # the database is down too: the task still fails
            logger.exception("video %s: could not record the failure (%s)", video_id, reason)


def stage_task(row: stages.Stage) -> Task:
    """The Celery task of a stage: its name, its function's docstring (its queue: ``celery_app``)."""

    def task(self: StageTask, video_id: int) -> int:
        return self.run_stage(row, video_id)

    task.__name__, task.__doc__ = row.name, row.run.__doc__
    return app.task(base=StageTask, bind=True, name=row.name)(task)


STAGE_TASKS: dict[str, Task] = {row.name: stage_task(row) for row in stages.STAGES}


@app.task(bind=True, name=stages.TIMELINE.name, acks_late=True, reject_on_worker_lost=True, throws=(TrackerError,))
def timeline(self: Task, video_id: int) -> int:
    """A positive video's remaining frames, scored after its alert (``stages.complete_timeline``).
    Not a stage: it never fails the video (done already) and records no stage timing; a transient
    error is retried as a stage's is, any other leaves the early timeline (logged)."""
    ctx = context()
    try:
        stages.complete_timeline(ctx, video_id)
    except TRANSIENT as exc:
        settings = ctx.settings
        limit = retries_spanning(settings.task_retry_window, settings.task_retry_backoff, settings.task_retry_backoff_max)
        if self.request.retries >= limit:
            raise
        delay = round(
            jittered_backoff(self.request.retries, settings.task_retry_backoff, settings.task_retry_backoff_max, random.random), 2
        )
        logger.warning("video %s, timeline: %s; retry %d/%d in %ss", video_id, _reason(exc), self.request.retries + 1, limit, delay)
        raise self.retry(exc=exc, countdown=delay, max_retries=limit) from exc
    except TrackerError as exc:
        logger.warning("video %s: its timeline stays as the early verdict left it (%s)", video_id, exc)
        raise
    return video_id


def complete_later(video_id: int) -> None:
    """Queue ``timeline`` for the video behind every stage's task on the score queue."""
    timeline.apply_async((video_id,), priority=stages.FOLLOW_UP_PRIORITY, argsrepr=job_label(video_id))


def periodic_task(name: str) -> Callable:
    """Register a function as the periodic task ``name`` (its queue, schedule and events: ``celery_app.PERIODIC``)."""
    return app.task(name=name, ignore_result=True, send_events=PERIODIC[name].events)


@periodic_task("housekeeping")
def housekeeping() -> dict:
    """Periodic clean-up and report (scheduled by celery beat)."""
    return stages.housekeeping(context())


@periodic_task("prune")
def prune() -> dict:
    """Periodic (celery beat, daily): remove what has outlived its retention (``retention.prune``)."""
    report = retention.prune(context().settings)
    return {k.kind: k.videos or k.objects for k in report.kinds}


@periodic_task("run_watches")
def run_watches() -> list[dict]:
    """Periodic (celery beat): list the due watches' sources and queue their new videos."""
    return [run.to_json() for run in watches.run_due_watches(context().settings, publisher())]


@periodic_task("alert_followups")
def alert_followups() -> dict:
    """Periodic (celery beat): retry failed alerts, send digests whose cooldown is over."""
    return alerting.alert_followups(context())


@periodic_task("reap_stalled")
def reap_stalled() -> dict:
    """Periodic (celery beat): requeue or fail videos that stopped moving; alert rows for positives without one."""
    return reaper.reap_stalled(context(), requeue=requeue_chain)


def requeue_chain(video_id: int, stage: str) -> None:
    """Publish a video's chain again from ``stage`` (the reaper, ``tiktok-tracker requeue``)."""
    video_chain(video_id, start=stage).apply_async()


def job_label(video_id: int, job_id: str | None = None, source: str | None = None) -> str:
    """How every task of a job shows its argument in Flower and the worker log:
    ``video=12 job=<job id> source=clip.mp4``, so a job id search finds all five stages."""
    from workers.sanitize import sanitize

    parts = [f"video={video_id}"]
    if job_id:
        parts.append(f"job={job_id}")
    if source:
        name = PurePosixPath(urlsplit(source).path if is_url(source) else source).name or source
        parts.append(f"source={sanitize(name, 60).replace(' ', '_')}")
    return " ".join(parts)


def video_chain(video_id: int, job_id: str | None = None, source: str | None = None, start: str | None = None):
    """The chain of stage tasks for one video from stage ``start`` on (default: the first);
    the first task's id is the job id."""
    label = job_label(video_id, job_id, source)
    names = list(STAGE_TASKS)
    tasks = [STAGE_TASKS[name].si(video_id).set(argsrepr=label) for name in names[names.index(start or names[0]) :]]
    if job_id:
        tasks[0] = tasks[0].set(task_id=job_id)
    return chain(*tasks)


def publisher(settings: Settings | None = None) -> Publisher:
    """What ``submit`` publishes each new job with: its chain, on the broker ``settings``
    name (a web app's own), else on this app's."""
    return Publisher(app, video_chain, settings.broker_url if settings else None)
