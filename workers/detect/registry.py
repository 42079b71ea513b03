"""Which extractor serves which key, built from settings (lazily loaded)."""

from __future__ import annotations

from typing import Iterable

from workers.detect.base import Extractor


def make_extractor(key: str, settings, weights: str | None = None, preprocessing: str | None = None) -> Extractor:
    if key == "vgg16":
        from workers.detect.backbone import backbone_from_settings

        return backbone_from_settings(settings, weights, preprocessing)
    if key == "faces":
        from workers.detect.face import FaceEmbedder

        return FaceEmbedder(upsample=settings.face_upsample)
    raise ValueError(f"unknown extractor {key!r}")


def make_extractors(keys: Iterable[str], settings, **overrides) -> dict[str, Extractor]:
    return {key: make_extractor(key, settings, **overrides) for key in sorted(set(keys))}
