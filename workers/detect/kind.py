"""What a detector kind declares about itself (one ``KIND`` per kind module).

A kind (face, classifier ...) is one module that ends with a ``DetectorKind``:
its key (the ``kind`` in ``target.json``), its typed settings, how to make its
extractor from them, how its bundle's model files are saved and loaded, the view
of a frame its extractor reads (``workers.detect.views``), and what reviews can do
to its targets. ``workers.detect.registry`` collects them; nothing else names a kind.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from workers.detect.base import Extractor, Target
from workers.detect.views import FrameView


@dataclass(frozen=True)
class DetectorKind:
    key: str  # the ``kind`` of its targets and their bundles
    target: type[Target]
    settings: Callable[[Any, Mapping[str, Any]], Any]  # (Settings, CLI overrides) -> the kind's typed settings
    extractor: Callable[[Any], Extractor]  # typed settings -> a (lazily loading) extractor
    view: FrameView  # what its extractor reads of each sampled frame
    # Extractor keys beyond ``extractor_key`` that the kind serves (``vgg16@160``): key ->
    # the settings overrides that make its extractor, or None when the key is not its own.
    variant: Callable[[str], Mapping[str, Any] | None] | None = None
    options: frozenset[str] = frozenset()  # construction options a command may give (--backbone-weights: ``weights``)
    corrected_by_marks: bool = False  # reviewers' frame marks make a new target version at once (a face gallery)
    retrained_with_reviews: bool = False  # ``target train --with-reviews`` retrains its targets (a classifier head)
    # Its scores are ``1 - distance`` (a face gallery): shown as a match distance against the
    # tolerance (``workers.verdict_text.score_text``), never as a probability.
    scores_distance: bool = False

    @property
    def extractor_key(self) -> str:
        return self.target.extractor_key

    def overrides_for(self, extractor_key: str) -> Mapping[str, Any] | None:
        """The settings overrides of this kind's extractor for ``extractor_key``, or None
        when the key names another kind's extractor."""
        if extractor_key == self.extractor_key:
            return {}
        return self.variant(extractor_key) if self.variant else None

    def make_extractor(self, settings, overrides: Mapping[str, Any] | None = None) -> Extractor:
        return self.extractor(self.settings(settings, overrides or {}))

    def save_bundle(self, target: Target, folder: Path) -> None:
        """Write the target's model files (head, gallery) into the bundle ``folder``."""
        target.save_artifacts(folder)

    def load_bundle(self, meta: dict, folder: Path) -> Target:
        """The target of a bundle: its ``target.json`` contents and its ``folder``."""
        return self.target.from_bundle(meta, folder)
