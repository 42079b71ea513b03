"""How a video's frames are scored: one typed object, from settings and a command's flags."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from workers.settings import Settings


@dataclass(frozen=True)
class ScoringOptions:
    """What ``collect_scores`` is told besides the frames, targets and extractors.

    ``early_verdict``: stop scoring a target once its verdict is decided;
    ``duplicate_tolerance``: a near-identical frame takes the last scored frame's
    scores (0: every frame scored itself); ``on_frames``: progress, called with
    the number of frames done after each batch."""

    batch_size: int = 16
    early_verdict: bool = True
    duplicate_tolerance: float = 0.0
    on_frames: Callable[[int], None] | None = None

    @classmethod
    def from_settings(cls, settings: Settings, all_frames: bool = False) -> ScoringOptions:
        """The settings' options; ``all_frames`` (``scan --all-frames``, ``target eval``): every
        sampled frame goes through the models (no early verdict, no reuse)."""
        return cls(
            batch_size=settings.batch_size,
            early_verdict=settings.early_verdict and not all_frames,
            duplicate_tolerance=0.0 if all_frames else settings.duplicate_tolerance,
        )

    def reporting(self, on_frames: Callable[[int], None] | None) -> ScoringOptions:
        """The same options with this progress callback."""
        return replace(self, on_frames=on_frames)
