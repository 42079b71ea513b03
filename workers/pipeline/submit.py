"""Submitting videos to the pipeline: one job (a ``videos`` row with a job id)
and one chain of stage tasks per video.

Videos come as paths and URLs (``enqueue``) or as ``VideoRef``s that a source
listed (watches). A listed video is recorded with its platform id, which is
unique: one that the database already has is skipped, however many watches
or runs list it at once.

Nothing is half-recorded: the broker is checked before anything is written,
and a video whose chain could not be published is removed again, so a job id
that was printed is a job that will run (the broker keeps it: Redis with
append-only persistence), and a failed ``enqueue`` leaves no trace.

Publishing goes through a ``Publisher`` that the caller makes (``tasks.publisher()``),
so this module does not import the tasks (which import the watches, which submit).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from kombu.utils.url import maybe_sanitize_url
from sqlalchemy import delete
from sqlalchemy.exc import IntegrityError

from workers.download.safety import UrlPolicy
from workers.errors import BadVideo, TrackerError, UnsafeURL
from workers.settings import Settings
from workers.storage import results, videos
from workers.storage.db import batches, session_scope
from workers.storage.models import Video, VideoStatus, utcnow
from workers.targets.published import catalog_for
from workers.video_ref import VideoRef, canonical_source, is_url


class BrokerUnavailable(TrackerError):
    """No broker is configured, or it cannot be reached. ``queued``: the jobs
    that were published before it went away (their ids are valid)."""

    def __init__(self, message: str, queued: Sequence[Job] = ()) -> None:
        super().__init__(message)
        self.queued = list(queued)


@dataclass(frozen=True)
class Job:
    job_id: str | None  # None: a video known from a scan, never queued
    video_id: int
    source: str
    existing: str | None = None  # the status of the video already known as this source: no new job

    @property
    def ident(self) -> str:
        """What ``status`` takes to show this job: its job id, else its video id."""
        return self.job_id or str(self.video_id)


class Publisher:
    """Publishes one job's chain of stage tasks on the broker of a Celery ``app``;
    ``chain(video_id, job_id, source)`` builds the chain (``tasks.video_chain``).
    ``broker_url``: the broker to publish on when it is not the one ``app`` was
    configured with at import (a web app made with other settings)."""

    RETRY_POLICY = {"max_retries": 2, "interval_start": 0.2, "interval_step": 0.5, "interval_max": 1.0}

    def __init__(self, app: Any, chain: Callable[[int, str, str], Any], broker_url: str | None = None) -> None:
        self.app = app
        self.chain = chain
        self._own_url = broker_url if broker_url and broker_url != app.conf.broker_url else None
        self._connection: Any = None

    @property
    def broker_url(self) -> str:
        return self._own_url or self.app.conf.broker_url

    def check(self, timeout: float) -> None:
        """Raise ``BrokerUnavailable`` unless the broker answers within ``timeout`` seconds."""
        check_broker(self.app, timeout, self._own_url)

    def __call__(self, job: Job) -> None:
        options: dict[str, Any] = {"retry": True, "retry_policy": self.RETRY_POLICY}
        if self._own_url:
            if self._connection is None:
                self._connection = self.app.connection_for_write(self._own_url)
            options["connection"] = self._connection  # the first task goes there; the workers send the rest
        self.chain(job.video_id, job.job_id, job.source).apply_async(**options)

    def close(self) -> None:
        """Close the connection of a broker of its own (a no-op on ``app``'s pooled ones)."""
        if self._connection is not None:
            self._connection.release()
            self._connection = None

    def __enter__(self) -> Publisher:
        return self

    def __exit__(self, *_exc) -> None:
        self.close()


def resolve_sources(items: Iterable[str]) -> list[str]:
    """URLs as given; local files as absolute paths, folders expanded to their videos."""
    from workers.video.files import expand_paths

    out: list[str] = []
    for item in items:
        if is_url(item):
            out.append(item)
            continue
        path = Path(item).expanduser()
        if not path.exists():
            raise TrackerError(f"{item}: no such file or folder")
        files = expand_paths([path])
        if not files:
            raise TrackerError(f"{item}: no video files in this folder")
        out.extend(canonical_source(str(f)) for f in files)
    return out


EXPORT_PREFIXES = ("zeeschuimer:", "4cat:")  # research-tool exports: listed item by item
ALL_ITEMS = 10**9


def list_exports(settings: Settings, items: Iterable[str]) -> tuple[list[str], list[VideoRef], list[str]]:
    """Split ``items`` into plain paths and URLs, and the videos of the research-tool exports
    among them (``zeeschuimer:FILE``, ``4cat:FILE``: every item, with its metadata), plus
    the exports' warnings (an unreadable line is named by its number; the rest is listed)."""
    from workers.sources import list_videos

    plain, refs, warnings = [], [], []
    for item in items:
        if not item.strip().lower().startswith(EXPORT_PREFIXES):
            plain.append(item)
            continue
        listing = list_videos(item, settings, ALL_ITEMS)
        refs.extend(listing.videos)
        warnings.extend(listing.warnings)
    return plain, refs, warnings


def refusal(item: str, policy: UrlPolicy) -> str | None:
    """Why ``item`` (a URL, or a resolved local path) would certainly fail, checked
    now so that ``enqueue`` can refuse it; None when only the pipeline can tell.

    A URL must pass the download address policy (a host that does not resolve
    just now is left to the download stage); a local file must open as a video
    container. A file that opens but does not decode still fails later, with its reason."""
    if is_url(item):
        try:
            policy.check(item)
        except UnsafeURL as exc:
            return str(exc)
        except TrackerError:
            return None
        return None
    from workers.video.sampling import check_container

    try:
        check_container(item)
    except BadVideo as exc:
        return str(exc)
    return None


def check_sources(settings: Settings, items: Sequence[str]) -> tuple[list[str], list[str]]:
    """The sources worth queueing, and why each of the others is sure to fail (one reason a
    source), so that one bad file does not hold back a folder's good ones."""
    policy = UrlPolicy.from_settings(settings)
    accepted, refused = [], []
    for item in items:
        problem = refusal(item, policy)
        if problem:
            refused.append(problem)
        else:
            accepted.append(item)
    return accepted, refused


def resolve_targets(settings: Settings, names: Sequence[str]) -> list[str]:
    """The named targets (checked to exist), or every saved target when none is named."""
    catalog = catalog_for(settings)  # models_dir, or the targets published in an object store
    names = list(dict.fromkeys(names)) or catalog.names()
    if not names:
        raise TrackerError(f"no targets saved in {settings.models_dir}: create one with `tiktok-tracker target train` or `target add-face`")
    for name in names:
        catalog.meta(name)
    return names


def check_broker(app, timeout: float, url: str | None = None) -> None:
    """Raise ``BrokerUnavailable`` (one line) unless the broker (``url``, else ``app``'s) answers within ``timeout`` seconds."""
    url = url or app.conf.broker_url
    if not url:
        raise BrokerUnavailable("no broker configured: set TT_BROKER_URL (e.g. redis://127.0.0.1:6379/0)")
    try:
        with app.connection_for_write(url) as conn:
            conn.ensure_connection(max_retries=1, interval_start=0, interval_step=0.2, timeout=timeout)
    except Exception as exc:  # kombu wraps every transport error differently
        raise BrokerUnavailable(broker_error(url, exc)) from None


def broker_error(url: str, exc: BaseException) -> str:
    reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return f"cannot reach the broker at {maybe_sanitize_url(url)} ({reason}): start Redis or set TT_BROKER_URL"


def new_job_id() -> str:
    """A job id: also the name of the job's media (``media_id``), never reused by another database."""
    return str(uuid.uuid4())


def new_video(item: str | VideoRef, target_names: Sequence[str], watch_id: int | None = None, all_frames: bool = False) -> Video:
    """The queued row of a path or URL, or of a listed video (with its metadata and platform id)."""
    if not isinstance(item, VideoRef):
        return videos.queued_video(new_job_id(), item, target_names, watch_id, all_frames)
    video = videos.queued_video(new_job_id(), item.url, target_names, watch_id, all_frames)
    results.apply_metadata(video, item)
    video.platform_id = item.platform_id
    return video


def requeue(video: Video, target_names: Sequence[str], all_frames: bool = False) -> None:
    """Run a finished video (one source: one row) again for ``target_names``, as a new job:
    its verdicts for other targets and its alerts stay (one alert per video and target, ever)."""
    videos.reset_for_requeue(video, target_names, new_job_id(), all_frames)
    video.timings.clear()  # the last job's stage timings: `status JOB` shows this job's only


def submit(
    settings: Settings,
    sources: Sequence[str | VideoRef],
    target_names: Sequence[str],
    publish: Publisher,
    *,
    watch_id: int | None = None,
    force: bool = False,
    all_frames: bool = False,
    expires_at: datetime | None = None,
) -> list[Job]:
    """Record one queued video per source and ``publish`` its chain; return the jobs.

    A listed video (``VideoRef``) the database already has is skipped (no job).
    A path or URL the database already has (``identity.known_job``) is one video:
    while it is on its way, or done for these target versions, its job is returned
    as it is (``Job.existing``: its status); once finished without them, failed, or
    with ``force``, it runs again as a new job on the same row (``force`` also reruns one
    left mid-way by a worker that is gone, or that stalled: ``videos.is_stuck``).
    ``all_frames``: its videos score every sampled frame in the first pass (no early verdict);
    ``expires_at``: new videos not started by then fail as expired (a watch's ``--expire-after``).
    Raises ``BrokerUnavailable`` when the broker is down; videos recorded by
    this call whose chain was not published are deleted (re-runs: failed) again.
    """
    from workers.processing import identity

    publish.check(settings.broker_connect_timeout)
    jobs: list[Job] = []  # to publish
    answers: list[Job] = []  # every source's job, in their order
    rerun: set[int] = set()
    catalog = catalog_for(settings)  # models_dir, or the targets published in an object store
    versions = {name: catalog.meta(name).get("version", "") for name in target_names}
    with session_scope(settings.resolved_database_url) as s:
        for item in sources:
            same = None if isinstance(item, VideoRef) else identity.known_job(s, item)
            if same is not None:
                # On its way, unless ``force`` and its worker is gone (lease expired) or it stalled.
                abandoned = force and videos.is_stuck(same, utcnow(), settings.stall_timeout)
                running = same.status not in VideoStatus.FINISHED and not abandoned
                if running or (not force and identity.covers(same, versions)):
                    answers.append(Job(same.job_id, same.id, same.source, existing=same.status))
                    continue
                requeue(same, target_names, all_frames)
                s.flush()
                rerun.add(same.id)
                jobs.append(Job(same.job_id, same.id, same.source))
                answers.append(jobs[-1])
                continue
            video = new_video(item, target_names, watch_id, all_frames)
            video.expires_at = expires_at
            try:
                with s.begin_nested():
                    s.add(video)
                    s.flush()
            except IntegrityError:  # its platform id or its source is taken: a known video
                same = None if isinstance(item, VideoRef) else identity.known_job(s, item)
                if same is not None:  # submitted a moment ago by another run (the unique source_key)
                    answers.append(Job(same.job_id, same.id, same.source, existing=same.status))
                continue
            jobs.append(Job(video.job_id, video.id, video.source))
            answers.append(jobs[-1])
    published = 0
    try:
        for job in jobs:
            publish(job)
            published += 1
    except Exception as exc:
        unpublished = [j.video_id for j in jobs[published:]]
        reason = broker_error(publish.broker_url, exc)
        with session_scope(settings.resolved_database_url) as s:
            for batch in batches([i for i in unpublished if i not in rerun]):
                s.execute(delete(Video).where(Video.id.in_(batch)))
            for video_id in (i for i in unpublished if i in rerun):
                results.set_status(s.get(Video, video_id), VideoStatus.FAILED, f"not queued again: {reason}")
        lost = set(jobs[published:])
        raise BrokerUnavailable(reason, [j for j in answers if j not in lost]) from None
    return answers
