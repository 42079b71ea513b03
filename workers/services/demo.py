"""The offline demo (``tiktok-tracker demo``): enrol a face target from scikit-image's
astronaut photo, generate one video that shows her and one that does not, scan both.
No broker, no network, no model download."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from workers.settings import Settings

TARGET = "demo-astronaut"
STEPS = ("enrol", "videos", "scan")  # what ``on_step`` is told, in order


@dataclass
class DemoResult:
    target: str
    rows: list[tuple[Path, object]]  # (video, its ``ScanRow``), the positive video first


def run_demo(settings: Settings, workdir: Path, on_step: Callable[[str], None] = lambda step: None) -> DemoResult:
    """Write the photo and videos into ``workdir``, save the target, scan; ``on_step`` hears each of ``STEPS``."""
    from workers.demo_media import demo_reference_photo, make_demo_videos
    from workers.scan import Scanner
    from workers.services.enrolment import enrol_face

    workdir.mkdir(parents=True, exist_ok=True)
    on_step("enrol")
    enrolled = enrol_face(settings, TARGET, [demo_reference_photo(workdir)])
    on_step("videos")
    videos = make_demo_videos(workdir)
    on_step("scan")
    scanner = Scanner(settings, [enrolled.target], extractors={enrolled.embedder.key: enrolled.embedder})
    return DemoResult(TARGET, [(path, row) for path in videos for row in scanner.scan_file(path, force=True)])
