"""One video's processing, written once: what ``scan``, the pipeline and ``target eval`` run.

    identify / hash (``identity``) -> sample frames, PDQ hashes, repost link
    -> score -> verdict, evidence -> record          (``steps``)
    a positive early verdict's remaining frames later    (``timeline``)

The pipeline's Celery tasks (``workers.pipeline.stages``) call one step per
stage and pass media-store keys between them; ``workers.scan`` and
``workers.evaluation`` call them in a row in one process. Scoring options
travel as one ``ScoringOptions``. Layering: below ``workers.pipeline`` and
``workers.scan``, above detect, video, storage, media and reposts.
"""

from workers.processing.identity import identify_download, identify_file, link_by_content
from workers.processing.options import ScoringOptions
from workers.processing.steps import (
    REUSE,
    SCORE,
    WAIT,
    SampledFile,
    decide,
    frames_from,
    keep_evidence,
    record,
    record_frames,
    repost_action,
    sample,
    sample_file,
    score,
)
from workers.processing.timeline import complete_scores, incomplete_positives

__all__ = [
    "REUSE",
    "SCORE",
    "WAIT",
    "SampledFile",
    "ScoringOptions",
    "decide",
    "frames_from",
    "complete_scores",
    "identify_download",
    "identify_file",
    "incomplete_positives",
    "keep_evidence",
    "link_by_content",
    "record",
    "record_frames",
    "repost_action",
    "sample",
    "sample_file",
    "score",
]
