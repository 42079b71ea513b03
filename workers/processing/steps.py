"""The steps of one video's processing, each a plain function (no Celery):

    identify (``identity``) -> sample (frames, PDQ hashes, repost link) -> score
    -> decide (verdicts) -> keep evidence -> record

The pipeline runs one step per stage task and passes store keys between them
(frames stream chunk by chunk into a frame batch); ``scan`` and ``target
eval`` run them in a row in one process, frames in memory. Either way a frame
reaches the models the same way (``scoring_frames``: as the frame batch gives
it back, each target the frames it reads whatever targets it runs with), so
the per-frame scores and verdicts are the same.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace

from sqlalchemy.orm import Session

from workers.detect.backbone import resize_frame
from workers.detect.base import Extractor, Target
from workers.detect.scoring import TargetOutcome, TargetSpec, backbone_frames_suffice, check_targets, collect_scores, outcomes_for
from workers.media.frame_batch import decode_jpeg, encode_jpeg
from workers.media.store import MediaStore
from workers.processing.evidence import evidence_frame_indices, save_evidence
from workers.processing.options import ScoringOptions
from workers.reposts import linking
from workers.reposts.hashing import FrameHash, hashed
from workers.storage import results
from workers.storage.models import Video, utcnow
from workers.verdict import FrameScore
from workers.video.sampling import Decoding, Frame, SampledVideo, VideoInfo, open_sampled

REUSE, WAIT, SCORE = linking.REUSE, linking.WAIT, linking.SCORE


# --- sample -------------------------------------------------------------------------


@contextmanager
def sample(path, settings, hashes: list[FrameHash] | None = None) -> Iterator[tuple[object, Iterator[Frame]]]:
    """The video's sampled frames (``frame_rate`` per second, at most ``max_frame_side``),
    streamed, as ``(reader, frames)``; with ``hashes`` (and ``repost_matching`` on) each frame's
    PDQ hashes are appended to it on the way. Raises ``BadVideo``."""
    with open_sampled(path, settings.frame_rate, settings.max_frame_side, settings.skip_loop_filter) as (reader, frames):
        if hashes is not None and settings.repost_matching:
            frames = hashed(frames, hashes)
        yield reader, frames


def scoring_frames(frames: Iterable[Frame], backbone_only: bool) -> list[Frame]:
    """The frames as the models read them, whichever way the video came, exactly as a frame
    batch gives them back: resized once to the backbone's input (lossless) for targets that
    read only VGG16 features (``backbone_only``), else as sampled after the batch's JPEG
    round trip (``FULL_FRAME_QUALITY``). So scan, eval and pipeline score the same pixels."""
    if backbone_only:
        return [replace(f, image=resize_frame(f.image)) for f in frames]
    return [replace(f, image=decode_jpeg(encode_jpeg(f.image))) for f in frames]


def frame_groups(targets: Sequence[Target]) -> dict[bool, list[Target]]:
    """The targets by the frames they read (``backbone_only`` -> targets; decided by
    ``backbone_frames_suffice``): a target's scores never depend on the targets beside it."""
    groups: dict[bool, list[Target]] = {}
    for t in targets:
        groups.setdefault(backbone_frames_suffice([t]), []).append(t)
    return groups


@dataclass
class SampledFile:
    """A whole video's frames in memory (scan, eval): as sampled, and as its targets' models
    read them (``scoring``: backbone_only -> frames, see ``scoring_frames``)."""

    sampled: SampledVideo
    scoring: dict[bool, list[Frame]]
    hashes: list[FrameHash] = field(default_factory=list)

    def frames_for(self, backbone_only: bool) -> list[Frame]:
        return self.scoring[backbone_only]


def sample_file(path, settings, targets: Sequence[Target], with_hashes: bool = False) -> SampledFile:
    """``sample`` read whole, plus the frames ``targets`` read (``scoring_frames``)."""
    hashes: list[FrameHash] = []
    with sample(path, settings, hashes if with_hashes else None) as (reader, frames):
        kept = list(frames)
        sampled = SampledVideo(reader.info, kept, reader.decoding())
    scoring = {small: scoring_frames(kept, small) for small in frame_groups(targets)}
    return SampledFile(sampled, scoring, hashes)


def record_frames(
    session: Session,
    video: Video,
    info: VideoInfo,
    count: int,
    decoding: Decoding | None,
    hashes: Sequence[FrameHash],
    link_at: float,
) -> linking.RepostLink:
    """Store what sampling learnt about ``video`` and link it, by its frames' PDQ hashes, to
    the earlier video it reposts (the hashes are stored for later videos to match)."""
    results.record_sampling(video, info, count, decoding)
    if not hashes:
        return linking.RepostLink(None)
    return linking.link_repost(session, video, hashes, link_at)


def repost_action(
    session: Session,
    video: Video,
    link: linking.RepostLink,
    target_versions: Mapping[str, str],
    settings,
    may_wait: bool = True,
) -> str:
    """What a linked video does: ``reuse`` (it took its finished original's verdicts for
    ``target_versions`` and is done), ``wait`` (its original is still being scored: ask again
    later; only ``may_wait`` callers, for at most ``repost_wait_seconds``) or ``score``."""
    action = link.action(settings.repost_reuse_at)
    if action == WAIT:
        if not may_wait:
            return SCORE  # a scan scores in order: an original still in the pipeline is not waited for
        since = (video.meta or {}).get("repost_wait_since") or utcnow().timestamp()
        video.meta = {**(video.meta or {}), "repost_wait_since": since}
        return WAIT if utcnow().timestamp() - since < settings.repost_wait_seconds else SCORE
    if action == REUSE:
        original = session.get(Video, link.original_id)
        if original is not None and results.reuse_verdicts(session, original, video, target_versions):
            return REUSE
    return SCORE


# --- score and decide ------------------------------------------------------------------


def score(
    frames_for: Callable[[bool], Iterable[Frame]],
    targets: Sequence[Target],
    extractors: Mapping[str, Extractor],
    options: ScoringOptions,
    total: int | None = None,
    passes=None,
) -> dict[str, list[FrameScore]]:
    """Per-frame scores of every target, the work of targets of one kind shared
    (``collect_scores``). ``frames_for(backbone_only)``: the video's frames as those
    targets read them (``SampledFile.frames_for``, or a frame batch's stream of ``total``
    frames); each group of ``frame_groups`` reads its own (progress: from the first).
    ``passes``: forward passes shared with other videos (a score worker's
    ``workers.detect.batching.SharedPasses``); the same scores as alone."""
    check_targets(targets, extractors)
    scores: dict[str, list[FrameScore]] = {}
    for n, (backbone_only, group) in enumerate(frame_groups(targets).items()):
        frames = frames_for(backbone_only)
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
