"""The steps of one video's processing, each a plain function (no Celery):

    identify (``identity``) -> sample (frames, PDQ hashes, repost link) -> score
    -> decide (verdicts) -> keep evidence -> record

The pipeline runs one step per stage task and passes store keys between them
(frames stream chunk by chunk into a frame batch); ``scan`` and ``target
eval`` run them in a row in one process, frames in memory. Either way a frame
reaches the models the same way (``scoring_frames``: each target its kind's view
of the frame, exactly as the frame batch gives it back, whatever targets it runs
with), so the per-frame scores and verdicts are the same.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path

from sqlalchemy.orm import Session

from workers.detect.base import Extractor, Target
from workers.detect.registry import by_view
from workers.detect.scoring import TargetOutcome, TargetSpec, check_targets, collect_scores, outcomes_for
from workers.detect.shared_passes import SharedPasses
from workers.detect.views import FrameView
from workers.media.store import MediaStore
from workers.processing.evidence import evidence_frame_indices, save_evidence
from workers.processing.options import ScoringOptions
from workers.reposts import linking
from workers.reposts.hashing import FrameHash, FrameHasher
from workers.reposts.matching import LinkRule
from workers.settings import Settings
from workers.storage import results, videos
from workers.storage.models import Video
from workers.verdict import FrameScore
from workers.video.sampling import Decoding, Frame, SampledVideo, VideoInfo, VideoReader, open_sampled

REUSE, WAIT, SCORE = linking.REUSE, linking.WAIT, linking.SCORE


# --- sample -------------------------------------------------------------------------


@contextmanager
def sample(path: str | Path, settings: Settings, hashes: list[FrameHash] | None = None) -> Iterator[tuple[VideoReader, Iterator[Frame]]]:
    """The video's sampled frames (``frame_rate`` per second, at most ``max_frame_side``),
    streamed, as ``(reader, frames)``; with ``hashes`` (and ``repost_matching`` on) each frame's
    PDQ hashes (taken at full size, with ``repost_hash_rate`` frames a second hashed in all:
    ``FrameHasher``) are appended to it on the way. Raises ``BadVideo``."""
    watch = None
    if hashes is not None and settings.repost_matching:
        watch = FrameHasher(hashes, settings.repost_hash_rate / settings.frame_rate)
    with open_sampled(path, settings.frame_rate, settings.max_frame_side, settings.skip_loop_filter, watch) as (reader, frames):
        yield reader, frames


def scoring_frames(frames: Iterable[Frame], view: FrameView) -> list[Frame]:
    """The frames as the models of a kind that reads ``view`` get them, whichever way the video
    came: ``FrameView.render``, exactly what a frame batch written with that view gives back."""
    return [replace(f, image=view.render(f.image)) for f in frames]


@dataclass
class SampledFile:
    """A whole video's frames in memory (scan, eval): as sampled, and in each view its targets
    read (``scoring``, see ``scoring_frames``)."""

    sampled: SampledVideo
    scoring: dict[FrameView, list[Frame]]
    hashes: list[FrameHash] = field(default_factory=list)

    def frames_for(self, view: FrameView) -> list[Frame]:
        return self.scoring[view]


def sample_file(path: str | Path, settings: Settings, targets: Sequence[Target], with_hashes: bool = False) -> SampledFile:
    """``sample`` read whole, plus the views of its frames that ``targets`` read (``scoring_frames``)."""
    hashes: list[FrameHash] = []
    with sample(path, settings, hashes if with_hashes else None) as (reader, frames):
        kept = list(frames)
        sampled = SampledVideo(reader.info, kept, reader.decoding())
    scoring = {view: scoring_frames(kept, view) for view in by_view(targets)}
    return SampledFile(sampled, scoring, hashes)


def record_frames(
    session: Session,
    video: Video,
    info: VideoInfo,
    count: int,
    decoding: Decoding | None,
    hashes: Sequence[FrameHash],
    settings: Settings,
) -> linking.RepostLink:
    """Store what sampling learnt about ``video`` and link it, by its frames' PDQ hashes, to
    the earlier video it reposts (``repost_rule``; the hashes are stored for later videos to match)."""
    results.record_sampling(video, info, count, decoding)
    if not hashes:
        return linking.RepostLink(None)
    return linking.link_repost(session, video, hashes, LinkRule.of(settings))


def repost_action(
    session: Session,
    video: Video,
    link: linking.RepostLink,
    target_versions: Mapping[str, str],
    settings: Settings,
    may_wait: bool = True,
) -> str:
    """What a linked video does: ``reuse`` (it took its finished original's verdicts for
    ``target_versions`` and is done), ``wait`` (its original is still being scored: ask again
    later; only ``may_wait`` callers, for at most ``repost_wait_seconds``) or ``score``."""
    action = link.action(settings.repost_reuse_at)
    if action == WAIT:
        if not may_wait:
            return SCORE  # a scan scores in order: an original still in the pipeline is not waited for
        return WAIT if videos.wait_for_original(video) < settings.repost_wait_seconds else SCORE
    if action == REUSE:
        original = session.get(Video, link.original_id)
        if original is not None and results.reuse_verdicts(session, original, video, target_versions):
            return REUSE
    return SCORE


# --- score and decide ------------------------------------------------------------------


def score(
    frames_for: Callable[[FrameView], Iterable[Frame]],
    targets: Sequence[Target],
    extractors: Mapping[str, Extractor],
    options: ScoringOptions,
    total: int | None = None,
    passes: SharedPasses | None = None,
) -> dict[str, list[FrameScore]]:
    """Per-frame scores of every target, the work of targets of one kind shared
    (``collect_scores``). ``frames_for(view)``: the video's frames in that view
    (``SampledFile.frames_for``, or a frame batch's stream of ``total`` frames); the targets
    of each view (``registry.by_view``) read their own (progress: from the first), all asked
    for before any is scored (a view missing fails at once).
    ``passes``: forward passes shared with other videos (a score worker's
    ``workers.detect.shared_passes.SharedPasses``); the same scores as alone."""
    check_targets(targets, extractors)
    groups = [(frames_for(view), group) for view, group in by_view(targets).items()]
    scores: dict[str, list[FrameScore]] = {}
    for n, (frames, group) in enumerate(groups):
        if passes is not None:
            scores.update(
                passes.collect_scores(
                    frames,
                    group,
                    extractors,
                    options.batch_size,
                    options.early_verdict,
                    duplicate_tolerance=options.duplicate_tolerance,
                    total=total,
                )
            )
            continue
        scores.update(
            collect_scores(
                frames,
                group,
                extractors,
                options.batch_size,
                options.early_verdict,
                options.on_frames if n == 0 else None,
                options.duplicate_tolerance,
                total,
            )
        )
    return {t.name: scores[t.name] for t in targets}


def decide(
    targets: Sequence[Target | TargetSpec], scores: Mapping[str, Sequence[FrameScore]], total_frames: int
) -> dict[str, TargetOutcome]:
    """Each target's verdict on its frame scores (a video of ``total_frames`` sampled frames)."""
    return outcomes_for(targets, scores, total_frames)


# --- evidence and record ---------------------------------------------------------------


def keep_evidence(
    store: MediaStore,
    media: str | int,
    outcomes: Mapping[str, TargetOutcome],
    frames_at: Callable[[list[int]], Sequence[Frame]],
    per_detection: int,
) -> tuple[dict[str, str], dict[str, dict[int, str]]]:
    """Evidence JPEGs of the positive outcomes (``workers.processing.evidence``); ``frames_at``
    gives the frames of the indices needed (from memory, or decoded again from the video)."""
    wanted = evidence_frame_indices(outcomes.values(), per_detection)
    frames = frames_at(wanted) if wanted else []
    return save_evidence(store, media, outcomes.values(), frames, per_detection)


def frames_from(frames: Sequence[Frame]) -> Callable[[list[int]], list[Frame]]:
    """``frames_at`` for frames held in memory."""
    by_index = {f.index: f for f in frames}
    return lambda wanted: [by_index[i] for i in wanted if i in by_index]


def record(
    session: Session,
    video: Video,
    outcomes: Mapping[str, TargetOutcome],
    evidence: tuple[Mapping[str, str], Mapping[str, Mapping[int, str]]] = ({}, {}),
) -> None:
    """Store the verdicts, their frame scores and evidence keys; the video is done."""
    results.finish_video(session, video, outcomes.values(), *evidence)
