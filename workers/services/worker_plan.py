"""Planning a Celery worker: its queues, processes, GPUs and the environment its
pool processes read (``tasks._fresh_process``: the settings ``worker_queues``, ``score_gpus``)."""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass

from workers.errors import TrackerError
from workers.settings import env_name


class UnknownQueue(TrackerError):
    """A queue name that the pipeline does not have."""


def parse_queues(text: str) -> list[str]:
    """The queue names of ``io,cpu`` (each once, in order); ``UnknownQueue`` for any other."""
    from workers.pipeline.celery_app import QUEUES

    names = list(dict.fromkeys(q.strip() for q in text.split(",") if q.strip()))
    unknown = [q for q in names if q not in QUEUES]
    if not names or unknown:
        raise UnknownQueue(f"choose from {', '.join(QUEUES)} (comma-separated for several)")
    return names


def visible_gpus() -> list[str]:
    """GPU ids this host offers (CUDA_VISIBLE_DEVICES, else nvidia-smi); [] on a CPU host."""
    declared = os.environ.get("CUDA_VISIBLE_DEVICES")
    if declared is not None:
        return [g.strip() for g in declared.split(",") if g.strip() and g.strip() != "-1"]
    if not shutil.which("nvidia-smi"):
        return []
    try:
        out = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True, timeout=10).stdout
    except (OSError, subprocess.SubprocessError):
        return []
    return [str(i) for i, line in enumerate(out.splitlines()) if line.startswith("GPU ")]


def default_concurrency(queues: list[str], gpus: list[str]) -> int:
    """score: one process per GPU (one on a CPU host: it uses every core);
    cpu: one per core; io: four (they mostly wait on the network)."""
    if "score" in queues:
        return max(1, len(gpus))
    if "cpu" in queues:
        return os.cpu_count() or 1
    return 4


@dataclass(frozen=True)
class WorkerPlan:
    queues: list[str]
    concurrency: int  # pool processes, or threads (videos in flight) for the threads pool
    gpus: list[str]  # one pool process per GPU (score queue only)
    pool: str = "prefork"  # "threads": one process whose threads share forward passes (workers.pipeline.score_threads)

    def environment(self) -> dict[str, str]:
        """The settings the pool processes read after the fork (their GPU, whether to warm models), as
        environment variables."""
        env = {env_name("worker_queues"): ",".join(self.queues)}
        if self.gpus:
            env[env_name("score_gpus")] = ",".join(self.gpus)
        return env

    @property
    def default_name(self) -> str:
        """The worker's node name, stable per host and queues (``score@%h``): a restarted worker
        is the same worker to Flower and Celery's control commands, not one more dead one."""
        return f"{'+'.join(self.queues)}@%h"

    def argv(self, loglevel: str, name: str | None = None) -> list[str]:
        """Arguments of ``app.worker_main`` (``name``: the node name, default ``default_name``;
        two workers of the same queues on one host need their own, e.g. ``score2@%h``)."""
        return [
            "worker",
            "--queues",
            ",".join(self.queues),
            "--concurrency",
            str(self.concurrency),
            "--hostname",
            name or self.default_name,
            "--loglevel",
            loglevel.upper(),
            "--pool",
            self.pool,
            "--without-gossip",
            "--without-mingle",
        ]


def plan_worker(settings, queues: str, concurrency: int | None = None) -> WorkerPlan:
    """The worker for ``queues`` on this host (``concurrency`` None: see ``default_concurrency``)."""
    names = parse_queues(queues)
    if not settings.broker_url:
        raise TrackerError("no broker configured: set TT_BROKER_URL (e.g. redis://127.0.0.1:6379/0)")
    gpus = visible_gpus() if "score" in names else []
    threads = score_threads(names, concurrency, gpus, settings)
    if threads:
        return WorkerPlan(names, threads, gpus, pool="threads")
    return WorkerPlan(names, concurrency or default_concurrency(names, gpus), gpus)


def score_threads(queues: list[str], concurrency: int | None, gpus: list[str], settings) -> int | None:
    """Videos in flight for a worker that only scores, on a CPU host or one GPU, when more
    than one (``--concurrency``, else ``score_videos_in_flight``): its threads share forward
    passes (``workers.pipeline.score_threads``); None: the usual prefork pool."""
    if queues != ["score"] or len(gpus) > 1:
        return None
    in_flight = concurrency or settings.score_videos_in_flight
    return in_flight if in_flight > 1 else None
