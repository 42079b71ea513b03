"""Forward passes shared by the videos that one process scores at the same time.

A score worker that runs several score tasks at once (threads of one process:
``workers.pipeline.score_threads``) hands each video to ``SharedPasses``: one
thread owns the models and fills each forward pass with the next chunk
(``batch_size`` frames that need scoring) of up to ``max_frames // batch_size``
videos, so that a GPU sees large batches when the queue is full. Before a pass
that is not full it waits at most ``wait_seconds`` for the videos that are on
their way (a task has started and is opening its frames: ``expect``); a lone
video waits for nothing. Each video is scored exactly as alone (see
``workers.detect.scoring``). No Celery here.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Iterable, Mapping, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field

from workers.detect.base import Extractor, Target
from workers.detect.scoring import VideoScoring, score_chunks
from workers.verdict import FrameScore
from workers.video.sampling import Frame

log = logging.getLogger(__name__)


@dataclass
class _Entry:
    video: VideoScoring
    extractors: Mapping[str, Extractor]
    done: Future = field(default_factory=Future)
    passes: int = 0
    most_videos: int = 0  # the most videos in one of its passes
    most_frames: int = 0  # the most frames in one of its passes


@dataclass
class PassStats:
    """What the passes were like (for the bench and the worker log)."""

    passes: int = 0  # forward passes (a pass whose frames all reused earlier scores runs none)
    frames: int = 0  # frames through the models, summed over passes
    videos: int = 0  # videos in a pass, summed over passes

    @property
    def fill(self) -> float:
        """Frames per forward pass."""
        return self.frames / self.passes if self.passes else 0.0


class SharedPasses:
    """One scoring thread for every video of this process (see the module docstring)."""

    def __init__(self, max_frames: int, batch_size: int, wait_seconds: float) -> None:
        self.batch_size = batch_size
        self.videos_per_pass = max(1, max_frames // batch_size)
        self.wait_seconds = max(0.0, wait_seconds)
        self.stats = PassStats()
        self._cond = threading.Condition()
        self._queue: list[_Entry] = []
        self._expected: set[int] = set()  # threads that will submit a video soon
        self._thread: threading.Thread | None = None

    # --- the callers' side (any thread) -----------------------------------------------

    def expect(self) -> None:
        """This thread will submit a video soon: a pass that is not full waits for it
        (at most ``wait_seconds``)."""
        with self._cond:
            self._expected.add(threading.get_ident())

    def unexpect(self) -> None:
        """This thread will not submit after all (its video needed no scoring)."""
        with self._cond:
            self._expected.discard(threading.get_ident())
            self._cond.notify_all()

    def collect_scores(
        self,
        frames: Iterable[Frame],
        targets: Sequence[Target],
        extractors: Mapping[str, Extractor],
        batch_size: int | None = None,
        early_verdict: bool = True,
        duplicate_tolerance: float = 0.0,
        total: int | None = None,
    ) -> dict[str, list[FrameScore]]:
        """``workers.detect.scoring.collect_scores``, its passes shared with the other
        videos of this process; blocks until this video is scored (its errors raise here)."""
        if batch_size is not None and batch_size != self.batch_size:
            raise ValueError(f"these shared passes take chunks of {self.batch_size} frames, not {batch_size}")
        video = VideoScoring(frames, targets, self.batch_size, early_verdict, None, duplicate_tolerance, total)
        return self.submit(video, extractors).result()

    def submit(self, video: VideoScoring, extractors: Mapping[str, Extractor]) -> Future:
        entry = _Entry(video, extractors)
        with self._cond:
            self._start()
            self._expected.discard(threading.get_ident())
            self._queue.append(entry)
            self._cond.notify_all()
        return entry.done

    # --- the scoring thread ------------------------------------------------------------

    def _start(self) -> None:
        if self._thread is None or not self._thread.is_alive():
            self._thread = threading.Thread(target=self._run, name="shared-passes", daemon=True)
            self._thread.start()

    def _run(self) -> None:
        active: list[_Entry] = []
        while True:
            active = self._admit(active)
            chunks, members = [], []
            for entry in active:
                try:  # reading one video's frames fails that video only
                    chunks.append((entry.video, entry.video.next_chunk()))
                    members.append(entry)
                except BaseException as exc:  # noqa: BLE001 - handed to the video's own task
                    entry.done.set_exception(exc)
            try:
                extractors = {k: e for entry in reversed(members) for k, e in entry.extractors.items()}
                frames = score_chunks(chunks, extractors)
            except BaseException as exc:  # noqa: BLE001 - the models failed: every video of the pass fails (and retries)
                for entry in members:
                    entry.done.set_exception(exc)
                active = []
                continue
            if frames:  # a pass whose chunks were all reused or empty ran no model
                self.stats.passes += 1
                self.stats.frames += frames
                self.stats.videos += len(members)
            active = []
            for entry in members:
                entry.passes += 1
                entry.most_videos = max(entry.most_videos, len(members))
                entry.most_frames = max(entry.most_frames, frames)
                if entry.video.finished:
                    log.info(
                        "scored %d frames in %d passes, shared with up to %d videos (%d frames per pass at most)",
                        entry.video.total,
                        entry.passes,
                        entry.most_videos,
                        entry.most_frames,
                    )
                    entry.done.set_result(entry.video.scores)
                else:
                    active.append(entry)

    def _admit(self, active: list[_Entry]) -> list[_Entry]:
        """The videos of the next pass: those still being scored, then new ones, waiting
        briefly for expected ones while the pass is not full."""
        with self._cond:
            while not active and not self._queue:
                self._cond.wait()
            deadline = time.monotonic() + self.wait_seconds
            while len(active) + len(self._queue) < self.videos_per_pass and self._expected:
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                self._cond.wait(left)
            room = self.videos_per_pass - len(active)
            new, self._queue = self._queue[:room], self._queue[room:]
        return active + new


_shared: dict[tuple, SharedPasses] = {}
_shared_lock = threading.Lock()


def process_passes(max_frames: int, batch_size: int, wait_seconds: float) -> SharedPasses:
    """This process's ``SharedPasses`` for these settings (a forked child makes its own)."""
    key = (os.getpid(), max_frames, batch_size, wait_seconds)
    with _shared_lock:
        if key not in _shared:
            _shared[key] = SharedPasses(max_frames, batch_size, wait_seconds)
        return _shared[key]


def passes_for(settings) -> SharedPasses:
    """This process's ``SharedPasses`` as the settings size them (``score_batch_frames``,
    ``batch_size``, ``score_batch_wait_ms``)."""
    return process_passes(settings.score_batch_frames, settings.batch_size, settings.score_batch_wait_ms / 1000)
