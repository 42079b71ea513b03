"""Corrections that improve a face target, driven through the web app on the
seed data: a Trump target from the five seed stills at tolerance 0.6 matches
12 of Biden.mp4's 61 frames; after a reviewer marks those frames "not the
target" (one new version, with a negative gallery) and rescans, Biden.mp4
keeps at most 2 and Trump.mp4 at least 14 of its 18. A real browser takes the
screenshots of the inbox and the video page on the way (left in the test's folder: they show seed frames)."""

from __future__ import annotations

import pytest
from sqlalchemy import select
from starlette.testclient import TestClient

from tests.browser_support import browser, serving
from tests.test_face import TRUMP_PHOTOS
from tests.web_support import CSRF, web_settings
from workers.detect.face import FaceEmbedder, enroll_faces
from workers.scan import Scanner
from workers.storage.db import session_scope
from workers.storage.models import Detection, Review, Video
from workers.targets.bundle import save_target, target_meta
from workers.web.app import create_app


def detection_of(settings, video_name: str, version: str) -> Detection:
    with session_scope(settings.resolved_database_url) as s:
        det = s.scalars(
            select(Detection).join(Video).where(Video.source.endswith(video_name), Detection.target_version == version)
        ).one()
        det.frame_scores  # loaded before the session closes
        s.expunge_all()
        return det


@pytest.mark.seed
def test_not_the_target_marks_make_a_better_face_target(tt_env, seed_dir, tmp_path, monkeypatch):
    settings = web_settings(monkeypatch, None)
    embedder = FaceEmbedder()
    target, problems = enroll_faces("trump", [seed_dir / "images" / p for p in TRUMP_PHOTOS], embedder, tolerance=0.6)
    assert problems == []
    save_target(target, settings.models_dir)
    first = target.version
    videos = [seed_dir / "Trump.mp4", seed_dir / "Biden.mp4"]
    for _ in Scanner(settings, [target], {embedder.key: embedder}, all_frames=True).scan_files(videos):
        pass
    biden, trump = detection_of(settings, "Biden.mp4", first), detection_of(settings, "Trump.mp4", first)
    assert (biden.positive_frames, biden.frames) == (12, 61)  # tests/test_face.py: 12 at 0.6
    assert trump.positive_frames >= 14 and trump.verdict == biden.verdict == "positive"

    with serving(settings) as base, browser() as chromium:
        page = chromium.new_page(viewport={"width": 1100, "height": 900})
        page.goto(f"{base}/?target=trump")
        for img in page.locator(".inbox img").all():
            assert img.evaluate("img => img.complete && img.naturalWidth") > 0
        page.screenshot(path=str(tmp_path / "seed-inbox.png"), full_page=True)  # seed frames: never into docs/
        page.goto(f"{base}/videos/{biden.video_id}")
        assert page.locator("svg.timeline circle.frame").count() == 61
        page.screenshot(path=str(tmp_path / "seed-video.png"), full_page=True)

    client = TestClient(create_app(settings), follow_redirects=False)
    token = CSRF.search(client.get(f"/videos/{biden.video_id}").text).group(1)
    false_frames = [str(f.frame_index) for f in biden.frame_scores if f.score >= biden.threshold]
    reply = client.post(
        f"/detections/{biden.id}/frames", data={"csrf": token, "verdict": "not_target", "frame": false_frames}
    )
    assert reply.status_code == 303, reply.text
    meta = target_meta(settings.models_dir, "trump")
    second = meta["version"]
    assert second != first and len(meta["negative_references"]) == 12
    assert [h["version"] for h in meta["history"]] == [first]
    with session_scope(settings.resolved_database_url) as s:
        marks = s.scalars(select(Review).where(Review.detection_id == biden.id)).all()
        assert len(marks) == 12 and {m.target_version for m in marks} == {second}

    reply = client.post("/targets/trump/rescan", data={"csrf": token, "all_frames": "1"})
    assert reply.status_code == 303
    biden2, trump2 = detection_of(settings, "Biden.mp4", second), detection_of(settings, "Trump.mp4", second)
    print(f"before: Biden {biden.positive_frames}/61, Trump {trump.positive_frames}/18; "
          f"after: Biden {biden2.positive_frames}/61, Trump {trump2.positive_frames}/18")
    assert biden2.positive_frames <= 2 and biden2.verdict == "negative"
    assert trump2.positive_frames >= 12 and trump2.verdict == "positive"  # 13 measured
    assert "negative gallery" in client.get("/targets").text
