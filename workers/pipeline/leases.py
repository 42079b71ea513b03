"""Stage leases: how the pipeline tells a video whose worker is gone from one still being worked on.

A stage task takes a lease on its video as it starts (``videos.take_lease``: the worker's name
and ``lease_until = now + lease_seconds``), a thread of its process renews the leases of every
video the process is working on every third of ``lease_seconds``, and the task releases it when
the stage ends, however it ends. A worker killed with SIGKILL, or a host that is lost, stops
renewing: its leases expire within ``lease_seconds``, and the reaper (every ``reaper_interval``,
and once at every worker's start: ``reaper.reap_at_start``) requeues those videos from their
stage, instead of waiting for the broker's visibility timeout or for ``stall_timeout``.

A delivery that finds its video leased by another worker whose lease runs (the broker handed
out a task that is still running, or the reaper requeued a video a worker was only slow on)
does nothing: the work is in progress. Renewals never touch ``updated_at``: a worker that lives
but hangs in a stage still stalls, and the reaper requeues it after ``stall_timeout``.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable
from datetime import datetime

from workers.storage import videos
from workers.storage.db import session_scope
from workers.storage.models import utcnow
from workers.storage.videos import Lease

log = logging.getLogger(__name__)


def dead_sibling(holder: str, worker: str) -> bool:
    """Whether ``holder`` (``node/pid``, as ``worker``) was a process of this same Celery worker
    (node) that no longer exists: a pool process killed mid-task, whose task Celery hands out
    again at once (``task_reject_on_worker_lost``). Another node's leases are left to expire."""
    node, _, pid = holder.rpartition("/")
    if node != worker.rpartition("/")[0] or not pid.isdigit() or int(pid) == os.getpid():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except OSError:  # it exists (another user's): alive
        return False
    return False


def expire_dead_processes(db_url: str, node: str, now: datetime | None = None) -> list[str]:
    """Expire now the running leases of ``node``'s processes that no longer exist (``dead_sibling``):
    a worker restarted on this host under the same node name tells its predecessor's videos at
    once. Returns the holders expired."""
    now = now or utcnow()
    me = f"{node}/{os.getpid()}"
    with session_scope(db_url) as s:
        gone = [h for h in videos.running_lease_holders(s, now) if dead_sibling(h, me)]
        videos.expire_leases(s, gone, now)
    for holder in gone:
        log.warning("worker %s is gone: its videos are requeued now", holder)
    return gone


class LeaseKeeper:
    """This process's leases: taken and released by its stage tasks, renewed by one daemon
    thread (started with the first lease). ``clock`` is the time source (tests drive it)."""

    def __init__(self, db_url: str, seconds: float, clock: Callable[[], datetime] = utcnow, background: bool = True) -> None:
        self.db_url = db_url
        self.seconds = seconds
        self.clock = clock
        self.background = background  # False: only ``renew()`` renews (a test's driven clock)
        self._held: dict[int, str] = {}  # video id -> the worker name it was taken under
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()

    def take(self, video_id: int, worker: str) -> Lease | None:
        """Lease the video for a stage; None when taken (or nothing to lease), else the lease of
        the other worker that runs it (this delivery should do nothing)."""
        with session_scope(self.db_url) as s:
            holder = videos.take_lease(s, video_id, worker, self.clock(), self.seconds)
        if holder is None:
            return None
        if holder.worker != worker and dead_sibling(holder.worker, worker):
            # Celery requeues at once the task of a pool process that died: take its lease over now.
            log.warning("video %s: its lease holder %s died; taken over by %s", video_id, holder.worker, worker)
            with session_scope(self.db_url) as s:
                holder = videos.take_lease(s, video_id, worker, self.clock(), self.seconds, replacing=holder.worker)
            if holder is None:
                return None
        if holder.worker != worker:
            return holder
        with self._lock:
            self._held[video_id] = worker
        self._start()
        return None

    def release(self, video_id: int) -> None:
        """The stage ended. Never raises: a lease left behind expires on its own (the reaper then
        requeues the video once; its stages find their work done)."""
        with self._lock:
            worker = self._held.pop(video_id, None)
        if worker is None:
            return
        try:
            with session_scope(self.db_url) as s:
                videos.release_lease(s, video_id, worker)
        except Exception as exc:  # noqa: BLE001 - see the docstring
            log.warning(
                "video %s: could not release its lease (%s: %s); it expires in %.0f s", video_id, type(exc).__name__, exc, self.seconds
            )

    def held(self) -> dict[int, str]:
        with self._lock:
            return dict(self._held)

    def renew(self) -> set[int]:
        """One renewal of every lease held; returns the videos whose lease was lost (the reaper
        requeued them after the lease expired: another worker may be on them now)."""
        held = self.held()
        lost: set[int] = set()
        for worker in set(held.values()):
            ids = {vid for vid, w in held.items() if w == worker}
            with session_scope(self.db_url) as s:
                lost |= ids - videos.renew_leases(s, ids, worker, self.clock(), self.seconds)
        with self._lock:
            for vid in lost:
                if self._held.get(vid) == held[vid]:
                    del self._held[vid]
        for vid in sorted(lost):
            log.warning(
                "video %s: lost its lease (requeued after it expired); this stage still ends, its outputs replacing, not adding to, the other's",
                vid,
            )
        return lost

    def _start(self) -> None:
        if not self.background or (self._thread is not None and self._thread.is_alive()):
            return
        self._thread = threading.Thread(target=self._renew_forever, name="stage-leases", daemon=True)
        self._thread.start()

    def _renew_forever(self) -> None:
        while not self._stop.wait(self.seconds / 3):
            try:
                self.renew()
            except Exception as exc:  # noqa: BLE001 - the database is down: try again at the next beat
                log.warning("could not renew stage leases (%s: %s)", type(exc).__name__, exc)

    def stop(self) -> None:
        self._stop.set()
