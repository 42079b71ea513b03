"""Face corrections without the seed data (the demo's astronaut): marked faces
are embedded again from the video, or, once it is gone, from the face crops
kept as evidence; each change is a new version with its history; a face
nearer a negative no longer counts."""

from __future__ import annotations

from sqlalchemy import select

from tests.web_support import web_settings
from workers.demo_media import demo_reference_photo, make_demo_videos
from workers.detect.face import FaceEmbedder, enroll_faces
from workers.review.corrections import rescan
from workers.review.service import mark_frames
from workers.scan import Scanner
from workers.storage.db import session_scope
from workers.storage.models import Detection
from workers.targets.bundle import load_target, save_target, target_meta


def test_marks_correct_a_face_target_after_the_video_is_gone(tt_env, tmp_path, monkeypatch):
    settings = web_settings(monkeypatch, None)
    embedder = FaceEmbedder()
    target, _ = enroll_faces("astronaut", [demo_reference_photo(tmp_path / "photo")], embedder)
    save_target(target, settings.models_dir)
    with_face, _ = make_demo_videos(tmp_path / "videos")
    (row,) = Scanner(settings, [target], {embedder.key: embedder}, all_frames=True).scan_file(with_face)
    assert row.verdict == "positive" and row.positive_frames >= 3
    with session_scope(settings.resolved_database_url) as s:
        det = s.scalars(select(Detection)).one()
        kept = [f.frame_index for f in det.frame_scores if f.evidence_key]
        det_id = det.id
    assert 3 <= len(kept) <= settings.evidence_frames

    with_face.rename(tmp_path / "gone.mp4")  # the video is deleted: only the evidence is left
    result = mark_frames(settings, det_id, kept[:2], "not_target", reviewer="ann")
    assert result.problems == [] and result.target_version
    corrected = load_target(settings.models_dir, "astronaut")
    assert corrected.version == result.target_version != target.version
    assert corrected.negatives.shape == (2, 128) and corrected.negative_references[0].startswith("video")
    meta = target_meta(settings.models_dir, "astronaut")
    assert [h["version"] for h in meta["history"]] == [target.version] and "negative gallery" in meta["change"]

    # Her own frames said "not her": rescanned, the faces nearer those negatives no longer count.
    (tmp_path / "gone.mp4").rename(with_face)
    report = rescan(settings, "astronaut", all_frames=True)
    assert report.rescanned == [row_video(settings, det_id)] and report.version == corrected.version
    with session_scope(settings.resolved_database_url) as s:
        new = s.scalars(select(Detection).where(Detection.target_version == corrected.version)).one()
        assert new.positive_frames < row.positive_frames

    positive = mark_frames(settings, det_id, kept[2:3], "target")
    again = load_target(settings.models_dir, "astronaut")
    assert positive.target_version == again.version and len(again.references) == len(target.references) + 1
    assert len(target_meta(settings.models_dir, "astronaut")["history"]) == 2


def row_video(settings, detection_id: int) -> int:
    with session_scope(settings.resolved_database_url) as s:
        return s.get(Detection, detection_id).video_id


def test_review_and_rescan_commands(tt_env, tmp_path, monkeypatch):
    import subprocess
    import sys

    settings = web_settings(monkeypatch, None)
    embedder = FaceEmbedder()
    target, _ = enroll_faces("astronaut", [demo_reference_photo(tmp_path / "photo")], embedder)
    save_target(target, settings.models_dir)
    with_face, _ = make_demo_videos(tmp_path / "videos")
    Scanner(settings, [target], {embedder.key: embedder}).scan_file(with_face)

    def cli(*args):
        return subprocess.run([sys.executable, "-m", "workers.cli.main", *args], capture_output=True, text=True, timeout=300)

    done = cli("review", "1", "rejected", "--by", "ann")
    assert done.returncode == 0 and "detection 1: rejected" in done.stdout
    bad = cli("review", "1", "maybe")
    assert bad.returncode == 2 and len(bad.stderr.strip().splitlines()) == 1
    again = cli("rescan", "--target", "astronaut")
    assert again.returncode == 0 and "1 video(s) rescanned, 0 no longer available" in again.stdout
    with_face.unlink()
    gone = cli("rescan", "--target", "astronaut")
    assert gone.returncode == 0 and "0 video(s) rescanned, 1 no longer available" in gone.stdout
