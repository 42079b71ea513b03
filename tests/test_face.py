"""Face targets: enrolment, scoring, verdicts on the seed videos, bundles.

The seed tests embed every sampled frame of Trump.mp4 (18) and Biden.mp4 (61)
once per session (~25 s on two cores) and check the acceptance numbers.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from workers.demo_media import demo_reference_photo
from workers.detect.face import (
    DEFAULT_FACE_RULE,
    DetectedFace,
    FaceEmbedder,
    FaceTarget,
    enroll_faces,
)
from workers.errors import BackboneMismatch, NoFace
from workers.targets.bundle import load_target, save_target
from workers.verdict import verdict_for
from workers.video import sample_frames

TRUMP_PHOTOS = ["frame72.jpg", "frame588.jpg", "frame324.jpg", "frame33.jpg", "frame601.jpg"]
BIDEN_PHOTOS = ["frame192.jpg", "frame215.jpg"]
VIDEOS = ["Trump.mp4", "Biden.mp4"]


@pytest.fixture(scope="session")
def embedder() -> FaceEmbedder:
    return FaceEmbedder()


@pytest.fixture(scope="session")
def seed_faces(seed_dir: Path, embedder: FaceEmbedder) -> dict[str, tuple[list, list[int], list[float]]]:
    """Per seed video: (faces per sampled frame, frame indices, timestamps)."""
    out = {}
    for video in VIDEOS:
        frames = list(sample_frames(seed_dir / video, rate=1.0))
        faces = embedder.extract([f.image for f in frames])
        out[video] = (faces, [f.index for f in frames], [f.timestamp for f in frames])
    return out


@pytest.fixture(scope="session")
def seed_targets(seed_dir: Path, embedder: FaceEmbedder) -> dict[str, FaceTarget]:
    images = seed_dir / "images"
    targets = {}
    for name, photos in (("trump", TRUMP_PHOTOS), ("biden", BIDEN_PHOTOS)):
        target, problems = enroll_faces(name, [images / p for p in photos], embedder)
        assert problems == []
        targets[name] = target
    return targets


def matches(target: FaceTarget, faces_per_frame: list[list[DetectedFace]], tolerance: float) -> int:
    """Frames with a face within ``tolerance`` of the target's gallery."""
    return sum(bool(faces) and target.distances(faces).min() <= tolerance for faces in faces_per_frame)


@pytest.mark.seed
@pytest.mark.parametrize(
    ("target", "positive", "negative"),
    [("trump", "Trump.mp4", "Biden.mp4"), ("biden", "Biden.mp4", "Trump.mp4")],
)
def test_seed_verdicts(seed_targets, seed_faces, target, positive, negative):
    face_target = seed_targets[target]
    assert face_target.rule == DEFAULT_FACE_RULE and face_target.threshold == pytest.approx(0.5)
    for video, expected in ((positive, True), (negative, False)):
        scores = face_target.score(*seed_faces[video])
        verdict = verdict_for(scores, face_target.threshold, face_target.rule)
        assert verdict.positive is expected, (target, video, verdict)


@pytest.mark.seed
def test_seed_match_counts(seed_targets, seed_faces):
    trump = seed_targets["trump"]
    biden_frames, trump_frames = seed_faces["Biden.mp4"][0], seed_faces["Trump.mp4"][0]
    assert len(biden_frames) == 61 and len(trump_frames) == 18
    # dlib's usual 0.6 lets a fifth of Biden's frames match Trump's photos; 0.5 none.
    assert matches(trump, biden_frames, 0.6) == 12
    assert matches(trump, biden_frames, 0.5) == 0
    assert matches(trump, trump_frames, 0.5) == 14
    assert matches(seed_targets["biden"], biden_frames, 0.5) == 61


@pytest.mark.seed
def test_seed_scores_carry_boxes(seed_targets, seed_faces):
    scores = seed_targets["trump"].score(*seed_faces["Trump.mp4"])
    h, w = 960, 540  # Trump.mp4 frames
    for s in scores:
        if s.box is None:
            assert s.score == 0.0
            continue
        top, right, bottom, left = s.box
        assert 0 <= top < bottom < h and 0 <= left < right < w
        assert 0.0 <= s.score <= 1.0


@pytest.mark.seed
def test_bundle_round_trip(tmp_path, seed_targets, seed_faces, embedder):
    trump = seed_targets["trump"]
    folder = save_target(trump, tmp_path)
    assert (folder / "gallery.npy").is_file()
    loaded = load_target(tmp_path, "trump")
    assert isinstance(loaded, FaceTarget)
    assert loaded.version == trump.version and loaded.version
    assert loaded.references == TRUMP_PHOTOS and loaded.tolerance == trump.tolerance
    assert loaded.rule == trump.rule and loaded.threshold == trump.threshold
    loaded.check_extractor(embedder)
    for video in VIDEOS:
        assert loaded.score(*seed_faces[video]) == trump.score(*seed_faces[video])


@pytest.fixture(scope="module")
def photos(tmp_path_factory) -> Path:
    """A folder with the astronaut's photo and a plain grey image (no face)."""
    folder = tmp_path_factory.mktemp("photos")
    demo_reference_photo(folder)
    cv2.imwrite(str(folder / "plain.png"), np.full((240, 320, 3), 127, np.uint8))
    (folder / "broken.jpg").write_bytes(b"not an image")
    return folder


def test_no_face_raises_one_line_error(photos, embedder):
    with pytest.raises(NoFace) as err:
        enroll_faces("nobody", [photos / "plain.png"], embedder)
    message = str(err.value)
    assert "\n" not in message
    assert "plain.png: no face found" in message and "'nobody'" in message


def test_enrol_skips_bad_photos(photos, embedder):
    target, problems = enroll_faces("astronaut", [photos], embedder)  # a folder, read sorted
    assert target.references == ["astronaut.jpg"]
    assert target.gallery.shape == (1, 128) and target.gallery.dtype == np.float32
    assert len(problems) == 2
    assert any("broken.jpg: not a readable image" in p for p in problems)
    assert any("plain.png: no face found" in p for p in problems)
    assert all("\n" not in p for p in problems)


def test_several_faces_rejected(photos, embedder, tmp_path):
    one = cv2.imread(str(photos / "astronaut.jpg"))
    cv2.imwrite(str(tmp_path / "two.jpg"), np.hstack([one, one]))
    with pytest.raises(NoFace, match="two.jpg: 2 faces found, need exactly one"):
        enroll_faces("pair", [tmp_path / "two.jpg", tmp_path / "missing.jpg"], embedder)


def test_frame_without_face_scores_zero(photos, embedder):
    target, _ = enroll_faces("astronaut", [photos / "astronaut.jpg"], embedder)
    scores = target.score([[]], [0], [0.0])
    assert scores[0].score == 0.0 and scores[0].box is None


def test_boxes_in_original_coordinates(photos):
    image = cv2.cvtColor(cv2.imread(str(photos / "astronaut.jpg")), cv2.COLOR_BGR2RGB)
    big = cv2.resize(image, None, fx=3, fy=3, interpolation=cv2.INTER_CUBIC)  # 1200 px: downscaled to detect
    small_faces = FaceEmbedder().extract([image])[0]
    big_faces = FaceEmbedder(detect_max_side=400).extract([big])[0]
    assert len(small_faces) == len(big_faces) == 1
    np.testing.assert_allclose(np.array(big_faces[0].box) / 3, small_faces[0].box, atol=12)


def test_extractor_mismatch(photos, embedder):
    target, _ = enroll_faces("astronaut", [photos / "astronaut.jpg"], embedder)
    target.check_extractor(embedder)
    other = FaceTarget("x", target.gallery, target.references, embedder={"model": "something_else"})
    with pytest.raises(BackboneMismatch, match="enrol it again"):
        other.check_extractor(embedder)
