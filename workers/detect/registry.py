"""The detector kinds, and which extractor serves which key (built from settings, lazily loaded).

Each kind is a module that declares a ``KIND`` (``workers.detect.kind.DetectorKind``);
adding a kind is its module plus one line in ``KIND_MODULES``. The modules are
imported on first use, so code that only reads ``target.json`` loads none.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterable
from functools import cache
from typing import TypeVar

from workers.detect.base import Extractor
from workers.detect.kind import DetectorKind
from workers.detect.views import FrameView
from workers.errors import BadTarget

T = TypeVar("T")

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


def scores_distance(key: str) -> bool:
    """Whether targets of kind ``key`` score ``1 - distance`` (shown as a match distance);
    False for an unknown kind (shown as a plain score)."""
    kind = kinds().get(key)
    return kind is not None and kind.scores_distance


def by_view(targets: Iterable[T]) -> dict[FrameView, list[T]]:
    """Targets (anything with a ``kind``, or kind keys as saved in bundles: no model needed)
    grouped by the view of a frame their kind reads, in order of first appearance: the frames
    stage renders each view once per frame, and each group is scored on its own view, so a
    target's scores never depend on the targets beside it."""
    groups: dict[FrameView, list[T]] = {}
    for t in targets:
        groups.setdefault(kind_of(t if isinstance(t, str) else t.kind).view, []).append(t)
    return groups


def make_extractor(key: str, settings, **options) -> Extractor:
    """The extractor of ``key`` (``vgg16``, ``vgg16@160``, ``faces``). ``options`` (a command's
    flags, such as ``weights``/``preprocessing`` from --backbone-*) reach only the kind that
    declares them (``DetectorKind.options``); None means "as the settings say"."""
    for kind in kinds().values():
        variant = kind.overrides_for(key)
        if variant is not None:
            own = {name: value for name, value in options.items() if name in kind.options and value is not None}
            return kind.make_extractor(settings, {**variant, **own})
    raise ValueError(f"unknown extractor {key!r}")


def make_extractors(keys: Iterable[str], settings, **options) -> dict[str, Extractor]:
    return {key: make_extractor(key, settings, **options) for key in sorted(set(keys))}
