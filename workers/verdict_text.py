"""How a stored verdict reads to a person: one wording for the CLI, exports, status, the web
app and alerts, so that a partial video's negative never reads as a plain negative and a face
target's score never reads as a probability. Pure functions, no I/O."""

from __future__ import annotations


def shown_verdict(label: str, partial: bool) -> str:
    """``"negative (partial)"`` for a verdict made from part of a (truncated) video."""
    return f"{label} (partial)" if partial else label


def partial_note(decoded: int | None, promised: int | None) -> str:
    """``"partial: 19 of 523 frames decoded"`` (the counts the frames stage recorded)."""
    if decoded is None or promised is None:
        return "partial: only part of the video decoded"
    return f"partial: {decoded} of {promised} frames decoded"


def match_distance(score: float) -> float:
    """A face score is ``1 - distance`` to the target's gallery (clipped at 0): the distance back."""
    return 1.0 - score


def score_text(score: float | None, threshold: float, is_distance: bool, short: bool = False) -> str:
    """The best frame's score in words. Face targets (``is_distance``): the match distance against
    the tolerance, ``"distance 0.31 (match at or below 0.40)"`` (a distance, not a probability);
    classifier targets: ``"score 0.872 (positive at 0.50 or more)"``. ``short``: for tables."""
    if score is None:
        return "no face found" if is_distance else ""
    if is_distance:
        tolerance = match_distance(threshold)
        distance = f">= {match_distance(score):.2f}" if score <= 0 else f"{match_distance(score):.2f}"
        if short:
            return f"distance {distance} (match <= {tolerance:.2f})"
        return f"distance {distance} (match at or below {tolerance:.2f})"
    return f"{score:.3f}" if short else f"score {score:.3f} (positive at {threshold:.2f} or more)"


def review_disagrees(review: str | None, label: str) -> bool:
    """Whether a person's review of an earlier result contradicts the verdict now shown: confirmed
    but now negative, or rejected but still positive (after a rerun or a new target version)."""
    return (review == "confirmed" and label == "negative") or (review == "rejected" and label == "positive")


def disagreement_text(review: str, label: str) -> str:
    return f"review disagrees: {review} earlier, {label} now"
