"""Enrolling a face target from reference photos (``tiktok-tracker target add-face``, the demo)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from workers.settings import Settings
from workers.verdict import VerdictRule


@dataclass
class Enrolment:
    target: object  # the saved FaceTarget (its version, its references)
    path: Path  # its bundle
    problems: list[str]  # photos skipped, one line each
    embedder: object  # the FaceEmbedder it was enrolled with (loaded: reuse it to scan)
    published: str | None = None  # where every worker finds it (an object store), else None


def enrol_face(
    settings: Settings, name: str, photos: Sequence[Path], tolerance: float | None = None, rule: VerdictRule | None = None
) -> Enrolment:
    """Embed the one face of each photo, save the target (``tolerance`` None: ``face_tolerance``)."""
    from workers.detect.base import check_name
    from workers.detect.face import enroll_faces
    from workers.detect.registry import make_extractor
    from workers.targets.published import save_target

    check_name(name)
    embedder = make_extractor("faces", settings)
    target, problems = enroll_faces(
        name,
        list(photos),
        embedder,
        tolerance=tolerance if tolerance is not None else settings.face_tolerance,
        rule=rule,
    )
    path, where = save_target(target, settings)
    return Enrolment(target, path, problems, embedder, where)
