"""Score tasks of several videos in threads of one process, sharing forward passes
(the Celery side of ``workers.detect.shared_passes``).

A score-only worker with ``score_videos_in_flight`` > 1 runs one process with
that many threads (Celery's ``threads`` pool): each thread runs the ordinary
``score`` task of one video, so everything ``StageTask.run_stage`` does stays
per video (acks-late, retries, failures, skipping a finished video, the rest
of its chain), and the broker holds each unfinished video's message until its
task ends (a killed worker's videos go back to the queue after
``broker_visibility_timeout``; a redelivered one finds its scores written and
goes on). The threads hand their frames to this process's ``SharedPasses``
(``workers.detect.shared_passes``), which fills each forward pass with chunks of
several videos. With one video in flight (prefork pool, one process per GPU)
the same code scores one video at a time.

Why not celery-batches: its batch task gets the messages of a batch as one
call, so retries, failures and each message's chain would have to be redone
by hand per request; a video could join a batch only when the previous batch
had ended; and its 0.11 release requires Celery < 5.7.
"""

from __future__ import annotations

import logging
import time

from celery.signals import task_postrun, task_prerun, worker_init, worker_ready

from workers.detect.shared_passes import passes_for
from workers.pipeline.stages import STAGE
from workers.settings import get_settings

SCORE_TASK = STAGE["score"].name  # tasks are named as their stage
log = logging.getLogger("workers.pipeline.worker")
_warmed: list[str] = []  # said once the worker's logging is up (worker_ready)


@worker_init.connect
def _warm_threads_pool(sender=None, **_kwargs) -> None:
    """The threads pool forks no process (no ``worker_process_init``): load the models
    in the worker itself, before it takes its first video."""
    pool = getattr(sender, "pool_cls", None)
    name = pool if isinstance(pool, str) else getattr(pool, "__module__", "")
    if "thread" not in str(name):
        return
    from workers.pipeline import tasks

    started = time.monotonic()
    tasks.warm_database()
    tasks.warm_models()  # its warnings reach the log; its info line comes before logging is set up
    settings = get_settings()
    _warmed.append(
        f"threads pool: models warmed in {time.monotonic() - started:.1f} s; forward passes of up to "
        f"{settings.score_batch_frames} frames shared by the videos in flight"
    )


@worker_ready.connect
def _say_warmed(**_kwargs) -> None:
    for line in _warmed:
        log.info(line)


@task_prerun.connect
def _expect_video(sender=None, **_kwargs) -> None:
    """A score task has started: the next pass may wait briefly for its frames."""
    if getattr(sender, "name", None) == SCORE_TASK:
        passes_for(get_settings()).expect()


@task_postrun.connect
def _video_settled(sender=None, **_kwargs) -> None:
    """The task ended (scored, skipped or failed): no pass waits for it any more."""
    if getattr(sender, "name", None) == SCORE_TASK:
        passes_for(get_settings()).unexpect()
