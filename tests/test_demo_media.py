"""The offline demo media: the astronaut video is positive, the other one negative.

Needs nothing outside the checkout (scikit-image ships the pictures) and runs
in a few seconds: two 7-frame videos at 360x640.
"""

from __future__ import annotations

from workers.demo_media import FPS, HEIGHT, SECONDS, WIDTH, demo_reference_photo, make_demo_videos
from workers.detect.face import FaceEmbedder, enroll_faces
from workers.verdict import verdict_for
from workers.video import probe_video, sample_frames


def test_demo_videos_positive_and_negative(tmp_path):
    photo = demo_reference_photo(tmp_path / "photos")
    target_video, other_video = make_demo_videos(tmp_path / "videos")
    embedder = FaceEmbedder()
    target, problems = enroll_faces("astronaut", [photo], embedder)
    assert problems == []

    closest = {}
    for video, expected in ((target_video, True), (other_video, False)):
        info = probe_video(video)
        assert (info.width, info.height, round(info.fps)) == (WIDTH, HEIGHT, FPS)
        assert info.frame_count == FPS * SECONDS
        frames = list(sample_frames(video, rate=1.0))
        faces = embedder.extract([f.image for f in frames])
        scores = target.score(faces, [f.index for f in frames], [f.timestamp for f in frames])
        verdict = verdict_for(scores, target.threshold, target.rule)
        assert verdict.positive is expected, (video.name, verdict)
        distances = [target.distances(f).min() for f in faces if f]
        closest[video.name] = (min(distances), max(distances), verdict.positive_frames, len(frames))

    # With margin: the astronaut is found in all 6 frames after the 1 s intro,
    # well inside the 0.5 tolerance; the other faces (which are detected) stay
    # well outside it.
    _, worst, positives, total = closest[target_video.name]
    assert (positives, total) == (6, 7) and worst < 0.35
    best_other, _, positives_other, _ = closest[other_video.name]
    assert positives_other == 0 and best_other > 0.65


def test_the_demo_service_enrols_scans_and_stores(tmp_path):
    """What `tiktok-tracker demo` runs, called as a function: the target is saved, the
    astronaut video is positive, the other negative, both rows are in the database."""
    from workers.services.demo import STEPS, TARGET, run_demo
    from workers.settings import Settings
    from workers.storage import results
    from workers.storage.db import session_scope
    from workers.targets.bundle import list_targets

    settings = Settings(data_dir=tmp_path / "data", models_dir=tmp_path / "models", database_url=None)
    steps: list[str] = []
    result = run_demo(settings, tmp_path / "work", on_step=steps.append)
    assert steps == list(STEPS)
    assert list_targets(settings.models_dir) == [TARGET]
    assert [(path.name, row.verdict) for path, row in result.rows] == [
        ("demo_astronaut.mp4", "positive"), ("demo_others.mp4", "negative")]
    with session_scope(settings.resolved_database_url) as s:
        assert results.status_counts(s).get("done") == 2
