"""The media store and the formats stages exchange through it."""

from __future__ import annotations

import io

import numpy as np
import pytest

from tests.videos import write_video
from workers.detect.scoring import TargetSpec
from workers.detect.views import FrameView
from workers.media.frame_batch import load_frames, write_frames
from workers.media.keys import evidence_key, frames_key, video_key
from workers.media.scores import decode_scores, encode_scores
from workers.media.store import LocalMediaStore, MediaMissing, check_key
from workers.verdict import FrameScore, VerdictRule
from workers.video.sampling import read_sampled

FACE_VIEW = FrameView(None, "rgb", "jpeg")  # frames as sampled, as JPEG (the face kind's)


def test_put_get_open_delete_and_keys(tmp_path):
    store = LocalMediaStore(tmp_path / "media")
    store.put("videos/1/source.mp4", b"abc")
    store.put("frames/1.npz", io.BytesIO(b"x" * 3_000_000))
    assert store.get("videos/1/source.mp4") == b"abc"
    with store.open("frames/1.npz") as fh:
        assert len(fh.read()) == 3_000_000
    with store.local_path("videos/1/source.mp4") as path:
        assert path.read_bytes() == b"abc"
    assert list(store.keys("videos")) == ["videos/1/source.mp4"]
    store.put("videos/1/source.mp4", b"replaced")
    assert store.get("videos/1/source.mp4") == b"replaced"
    store.delete("videos/1/source.mp4")
    store.delete("videos/1/source.mp4")  # already gone: fine
    assert not store.exists("videos/1/source.mp4")
    assert not (tmp_path / "media" / "videos" / "1").exists()  # empty folder removed
    assert list(store.keys("videos")) == []
    with pytest.raises(MediaMissing, match="frames/2.npz"):
        store.get("frames/2.npz")
    # no temporary files left behind by the atomic writes
    assert [p.name for p in (tmp_path / "media").rglob("*.part")] == []


@pytest.mark.parametrize("key", ["../etc/passwd", "/abs", "a//b", "a/./b", "a b", ""])
def test_keys_cannot_escape_the_store(key):
    with pytest.raises(ValueError):
        check_key(key)


def test_download_area_is_hidden_moved_from_and_cleaned_when_stale(tmp_path):
    import os

    store = LocalMediaStore(tmp_path / "media")
    with store.download_area() as folder:
        assert folder.parent == tmp_path / "media" / ".downloads" and not any(folder.iterdir())
        (folder / "abc123.mp4").write_bytes(b"video")
        assert list(store.keys("")) == []  # not a key while it downloads
        store.put_file("videos/3/source.mp4", folder / "abc123.mp4", move=True)
        assert not (folder / "abc123.mp4").exists()
    assert not folder.exists() and store.get("videos/3/source.mp4") == b"video"
    assert store.location("videos/3/source.mp4") == str((tmp_path / "media" / "videos/3/source.mp4").resolve())
    with store.download_area() as left:  # as if its worker died mid-download
        (left / "part.mp4.part").write_bytes(b"x")
        assert store.drop_stale_downloads(older_than=3600) == 0
        for path in (left / "part.mp4.part", left):
            os.utime(path, (1, 1))
        assert store.drop_stale_downloads(older_than=3600) == 1 and not left.exists()


def test_key_layout():
    assert video_key(7, ".MP4") == "videos/7/source.mp4"
    assert video_key(7, "") == "videos/7/source.video"
    assert frames_key(7) == "frames/7.npz"
    assert evidence_key(7, "red", "abc") == "evidence/7/red-abc.jpg"


def test_frame_batches_round_trip_bit_for_bit(tmp_path):
    sampled = read_sampled(write_video(tmp_path / "v.mp4", seconds=3), 1.0)
    store = LocalMediaStore(tmp_path / "store")
    with store.writer("frames/1.npz") as fh:
        write_frames(fh, sampled, [FACE_VIEW])
    assert store.get("frames/1.npz")[:2] == b"PK"  # a zip archive of chunks
    back = load_frames(store, "frames/1.npz", FACE_VIEW)
    assert back.info == sampled.info
    assert [(f.index, f.timestamp) for f in back.frames] == [(f.index, f.timestamp) for f in sampled.frames]
    # Full frames are kept as JPEG (quality 95): close to the decoded frames, not equal.
    for a, b in zip(back.frames, sampled.frames):
        assert a.image.shape == b.image.shape
        assert np.abs(a.image.astype(int) - b.image.astype(int)).mean() < 3


def test_backbone_sized_frames_are_read_alone_and_resize_exactly(tmp_path):
    from workers.detect.backbone import VIEW, resize_for_backbone, resize_frame

    sampled = read_sampled(write_video(tmp_path / "v.mp4", seconds=3, size=(320, 180)), 1.0)
    store = LocalMediaStore(tmp_path / "store")
    with store.writer("frames/1.npz") as fh:
        write_frames(fh, sampled, [VIEW, FACE_VIEW])
    small = load_frames(store, "frames/1.npz", VIEW)
    full = load_frames(store, "frames/1.npz", FACE_VIEW)
    assert small.frames[0].image.shape == (224, 224, 3) and full.frames[0].image.shape == (180, 320, 3)
    assert [f.index for f in small.frames] == [f.index for f in sampled.frames]
    # The score stage's input equals what the in-process scan computes from full frames.
    assert np.array_equal(resize_for_backbone([f.image for f in small.frames]), resize_for_backbone([f.image for f in sampled.frames]))
    assert resize_frame(small.frames[0].image) is small.frames[0].image


def test_batches_without_full_frames_say_so(tmp_path):
    from workers.detect.backbone import VIEW

    sampled = read_sampled(write_video(tmp_path / "v.mp4", seconds=2, size=(320, 180)), 1.0)
    store = LocalMediaStore(tmp_path / "store")
    with store.writer("frames/2.npz") as fh:
        write_frames(fh, sampled, [VIEW])
    assert len(load_frames(store, "frames/2.npz", VIEW).frames) == 2
    with pytest.raises(MediaMissing, match="frames/2.npz: no sampled-rgb-jpeg frames .* holds 224x224-rgb-lossless"):
        load_frames(store, "frames/2.npz", FACE_VIEW)


def test_a_failed_write_stores_nothing(tmp_path):
    store = LocalMediaStore(tmp_path / "store")
    store.put("scores/1.json", b"old")
    with pytest.raises(RuntimeError):
        with store.writer("scores/1.json") as fh:
            fh.write(b"half")
            raise RuntimeError("worker died")
    assert store.get("scores/1.json") == b"old"
    assert not [p for p in (tmp_path / "store").rglob("*.part")]


def test_scores_round_trip_exactly():
    spec = TargetSpec("red", "classifier", "v1", 0.5, VerdictRule(1 / 3, 1))
    face = TargetSpec("ann", "face", "v2", 0.5, VerdictRule(0.0, 2))
    scores = {
        "red": [FrameScore(0, 0.0, 0.1 + 0.2), FrameScore(10, 1.0000000001, 0.987654321)],
        "ann": [FrameScore(0, 0.0, 0.61, (1, 50, 40, 10))],
    }
    specs, back, total = decode_scores(encode_scores([spec, face], scores, 5))
    assert specs == [spec, face] and back == scores and total == 5


def test_frame_batches_are_written_and_read_in_chunks(tmp_path):
    from workers.detect.backbone import VIEW, resize_frame
    from workers.media.frame_batch import CHUNK_FRAMES

    sampled = read_sampled(write_video(tmp_path / "v.mp4", seconds=4, fps=20, size=(320, 180)), 20.0)
    assert len(sampled.frames) > 2 * CHUNK_FRAMES
    store = LocalMediaStore(tmp_path / "store")
    with store.writer("frames/3.npz") as fh:
        write_frames(fh, sampled, [VIEW])
    small = load_frames(store, "frames/3.npz", VIEW)
    assert [f.index for f in small.frames] == [f.index for f in sampled.frames]
    assert all(np.array_equal(a.image, resize_frame(b.image)) for a, b in zip(small.frames, sampled.frames))  # lossless


def test_scores_from_a_streamed_batch_equal_those_from_a_list(tmp_path):
    from workers.detect.scoring import TargetSpec, collect_scores
    from workers.verdict import FrameScore, VerdictRule

    class Brightness:
        """A stand-in target: the frame's mean brightness; an extractor that is the frame itself."""

        name, kind, version, threshold, rule, extractor_key = "bright", "classifier", "v", 0.3, VerdictRule(1 / 3, 1), "x"

        def score(self, outputs, indices, stamps):
            return [FrameScore(i, t, float(o.mean() / 255)) for o, i, t in zip(outputs, indices, stamps)]

    class Identity:
        def extract(self, images):
            return list(images)

    sampled = read_sampled(write_video(tmp_path / "v.mp4", seconds=4, fps=20), 20.0)
    listed = collect_scores(sampled.frames, [Brightness()], {"x": Identity()}, 8, True)
    streamed = collect_scores(iter(sampled.frames), [Brightness()], {"x": Identity()}, 8, True, total=len(sampled.frames))
    assert listed == streamed and TargetSpec  # same scores, frames pulled one batch at a time
