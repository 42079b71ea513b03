"""One stored verdict as every listing shows it (results table, CSV, JSON, ``status``, the web
pages): its label with "(partial)" for a truncated video, the decoded frame counts, its best
score in words (a face target's as a match distance against the tolerance), the review that
holds across reruns and whether the verdict now disagrees with it, and whether a newer verdict
of the same (video, target) superseded it. The wording itself is ``workers.verdict_text``."""

from __future__ import annotations

from dataclasses import dataclass

from workers.detect.registry import scores_distance
from workers.storage.models import Detection, Review
from workers.storage.reviews import UNREVIEWED, made_before
from workers.verdict_text import disagreement_text, match_distance, partial_note, review_disagrees, score_text, shown_verdict


@dataclass(frozen=True)
class ShownVerdict:
    label: str  # positive | negative, as stored
    verdict: str  # as shown: "negative (partial)" for a partial video
    partial: bool
    partial_note: str | None  # "partial: 19 of 523 frames decoded"
    decoded_frames: int | None
    promised_frames: int | None
    score_kind: str  # "distance" (a face target: 1 - score) or "score" (a classifier's probability-like score)
    score_text: str  # "distance 0.31 (match at or below 0.40)" / "score 0.872 (positive at 0.50 or more)"
    score_short: str  # the same for a table cell
    match_distance: float | None  # face targets: the best frame's distance to the gallery
    match_tolerance: float | None  # face targets: the largest distance that matches
    review: str  # unreviewed | confirmed | rejected: the review that holds for the video and target
    reviewer: str | None  # who made that review (an account name), when known
    disagrees: bool  # that review contradicts this verdict (made on an earlier run or version)
    disagreement: str | None
    superseded: bool  # a newer verdict of the same (video, target) replaced it (``results --history``)


def shown(detection: Detection, review: Review | None = None, superseded: bool = False) -> ShownVerdict:
    """How ``detection`` reads (its video loaded); ``review``: the detection review that holds
    (``reviews.holding``). It disagrees only when made about an earlier result (a rerun or another
    version): a rejection of this very result is what a rejected positive is."""
    video = detection.video
    partial = bool(detection.partial or (video is not None and video.partial))
    decoded = video.decoded_frames if video is not None else None
    promised = video.promised_frames if video is not None else None
    distance = scores_distance(detection.target_kind)
    state = review.verdict if review is not None else UNREVIEWED
    disagrees = review is not None and made_before(review, detection) and review_disagrees(state, detection.verdict)
    best = detection.best_score
    return ShownVerdict(
        label=detection.verdict,
        verdict=shown_verdict(detection.verdict, partial),
        partial=partial,
        partial_note=partial_note(decoded, promised) if partial else None,
        decoded_frames=decoded,
        promised_frames=promised,
        score_kind="distance" if distance else "score",
        score_text=score_text(best, detection.threshold, distance),
        score_short=score_text(best, detection.threshold, distance, short=True),
        match_distance=None if not distance or best is None else round(match_distance(best), 4),
        match_tolerance=round(match_distance(detection.threshold), 4) if distance else None,
        review=state,
        reviewer=review.reviewer if review is not None else None,
        disagrees=disagrees,
        disagreement=disagreement_text(state, detection.verdict) if disagrees else None,
        superseded=superseded,
    )
