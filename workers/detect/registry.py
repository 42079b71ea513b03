"""The detector kinds, and which extractor serves which key (built from settings, lazily loaded).

Each kind is a module that declares a ``KIND`` (``workers.detect.kind.DetectorKind``);
adding a kind is its module plus one line in ``KIND_MODULES``. The modules are
imported on first use, so code that only reads ``target.json`` loads none.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterable
from functools import cache

from workers.detect.base import Extractor
from workers.detect.kind import DetectorKind
from workers.errors import BadTarget

KIND_MODULES = (
    "workers.detect.classifier",
    "workers.detect.face",
)


@cache
def kinds() -> dict[str, DetectorKind]:
    """Every registered kind by its key."""
    declared = [importlib.import_module(name).KIND for name in KIND_MODULES]
    return {kind.key: kind for kind in declared}


def kind_of(key: str) -> DetectorKind:
    kind = kinds().get(key)
    if kind is None:
        raise BadTarget(f"unknown target kind {key!r} (known: {', '.join(sorted(kinds()))})")
    return kind


def needs_full_frames(kind_keys: Iterable[str]) -> bool:
    """True when a kind among ``kind_keys`` reads more than backbone-sized frames."""
    return any(kind_of(key).needs_full_frames for key in kind_keys)


def make_extractor(key: str, settings, weights: str | None = None, preprocessing: str | None = None) -> Extractor:
    """The extractor of ``key`` (``vgg16``, ``vgg16@160``, ``faces``); ``weights``/``preprocessing``
    override the backbone's settings (the CLI's --backbone-* options)."""
    for kind in kinds().values():
        variant = kind.overrides_for(key)
        if variant is not None:
            return kind.make_extractor(settings, {**variant, "weights": weights, "preprocessing": preprocessing})
    raise ValueError(f"unknown extractor {key!r}")


def make_extractors(keys: Iterable[str], settings, **overrides) -> dict[str, Extractor]:
    return {key: make_extractor(key, settings, **overrides) for key in sorted(set(keys))}
