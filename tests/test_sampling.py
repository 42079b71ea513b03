import numpy as np
import pytest

from tests.videos import truncate, write_video, zero_frame_video
from workers.errors import BadVideo
from workers.video import frame_step, probe_video, read_frames_at, read_sampled, sample_frames


def test_frame_step_is_floor_of_fps():
    assert frame_step(30.0) == 30
    assert frame_step(29.98) == 29
    assert frame_step(10.0, rate=2) == 5
    assert frame_step(5.0, rate=10) == 1  # never zero


@pytest.mark.parametrize(
    "seconds,fps,size,expected",
    [(3.0, 10, (160, 120), 3), (2.0, 25, (90, 160), 2), (1.0, 30, (32, 24), 1), (4.5, 12, (1920, 1080), 5)],
)
def test_one_frame_per_second(tmp_path, seconds, fps, size, expected):
    path = write_video(tmp_path / "v.mp4", seconds=seconds, fps=fps, size=size)
    frames = list(sample_frames(path))
    assert len(frames) == expected
    step = frame_step(probe_video(path).fps)
    assert [f.index for f in frames] == [i * step for i in range(expected)]
    assert [round(f.timestamp, 3) for f in frames] == [round(i * step / fps, 3) for i in range(expected)]
    h, w = frames[0].image.shape[:2]
    assert (w, h) == size and frames[0].image.dtype == np.uint8


def test_rate_and_max_side(tmp_path):
    path = write_video(tmp_path / "v.mp4", seconds=2.0, fps=10, size=(640, 360))
    frames = list(sample_frames(path, rate=5, max_side=320))
    assert len(frames) == 10
    assert frames[0].image.shape == (180, 320, 3)


def test_frames_read_again_by_number_are_the_sampled_pixels(tmp_path):
    path = write_video(tmp_path / "v.mp4", seconds=4.0, fps=10, size=(640, 360))
    sampled = read_sampled(path, 1.0, max_side=320)
    again = read_frames_at(path, [sampled.frames[2].index, sampled.frames[0].index], max_side=320)
    assert [f.index for f in again] == [sampled.frames[0].index, sampled.frames[2].index]
    assert np.array_equal(again[0].image, sampled.frames[0].image)
    assert np.array_equal(again[1].image, sampled.frames[2].image)
    assert again[1].timestamp == sampled.frames[2].timestamp
    assert read_frames_at(path, []) == []


def test_colours_are_rgb(tmp_path):
    path = write_video(tmp_path / "red.mp4", color=(220, 20, 20), noise=0)
    img = next(sample_frames(path)).image
    r, g, b = img[5, 5].astype(int)  # away from the moving square
    assert r > 150 and g < 80 and b < 80


def test_bad_videos_raise_specific_errors(tmp_path):
    text = tmp_path / "notes.mp4"
    text.write_text("this is not a video\n")
    good = write_video(tmp_path / "good.mp4")
    cases = {
        text: "not a readable video",
        truncate(good, tmp_path / "cut.mp4"): "not a readable video",
        zero_frame_video(tmp_path / "empty.mp4"): "not a readable video|no decodable frames",
        tmp_path / "missing.mp4": "no such file",
    }
    (tmp_path / "zero.mp4").write_bytes(b"")
    cases[tmp_path / "zero.mp4"] = "empty file"
    for path, message in cases.items():
        with pytest.raises(BadVideo, match=message) as info:
            read_sampled(path)
        assert "\n" not in str(info.value)


def test_seed_videos_sample_like_the_tutorial(seed_dir):
    trump = read_sampled(seed_dir / "Trump.mp4")
    biden = read_sampled(seed_dir / "Biden.mp4")
    assert len(trump.frames) == 18 and trump.frames[0].image.shape == (960, 540, 3)
    assert len(biden.frames) == 61 and biden.indices[-1] == 60 * 29


def test_rotation_metadata_is_applied(tmp_path):
    """A phone video stored landscape with a 90-degree display matrix comes out portrait."""
    import subprocess

    import imageio_ffmpeg  # a test dependency: ships an ffmpeg binary to add the rotation metadata
    src = write_video(tmp_path / "landscape.mp4", seconds=2, size=(160, 90))
    rotated = tmp_path / "rotated.mp4"
    subprocess.run(
        [imageio_ffmpeg.get_ffmpeg_exe(), "-y", "-loglevel", "error", "-display_rotation", "90", "-i", str(src), "-c", "copy", str(rotated)],
        check=True,
    )
    frames = list(sample_frames(rotated))
    assert len(frames) == 2
    assert frames[0].image.shape == (160, 90, 3)


def _opencv_sampled(path, step):
    """Reference: OpenCV's own sequential decode, every ``step``-th frame, as RGB."""
    import cv2

    cap = cv2.VideoCapture(str(path))
    cap.set(cv2.CAP_PROP_ORIENTATION_AUTO, 1)
    out, index = {}, 0
    while cap.grab():
        if index % step == 0:
            out[index] = cv2.cvtColor(cap.retrieve()[1], cv2.COLOR_BGR2RGB)
        index += 1
    cap.release()
    return out


def _h264_with_b_frames(tmp_path, *options: str):
    """A 6 s, 24 fps generated video re-encoded as H.264 with B-frames, one keyframe (as phones
    and TikTok encode), with extra ffmpeg output ``options``."""
    import subprocess

    import imageio_ffmpeg

    src = write_video(tmp_path / "src.mp4", seconds=6.0, fps=24, size=(320, 240))
    h264 = tmp_path / "bframes.mp4"
    subprocess.run(
        [imageio_ffmpeg.get_ffmpeg_exe(), "-y", "-loglevel", "error", "-i", str(src), *options,
         "-c:v", "libx264", "-bf", "3", "-g", "250", "-pix_fmt", "yuv420p", str(h264)],
        check=True,
    )
    return h264


def test_b_frame_video_matches_opencv_and_skips_unwanted_frames(tmp_path):
    """An H.264 file with B-frames at 23.976 fps (as phones and TikTok encode):
    the same frame numbers and pixels as OpenCV, and fewer frames decoded than it has."""
    from workers.video.sampling import _every, VideoReader

    h264 = _h264_with_b_frames(tmp_path, "-r", "24000/1001")
    sampled = read_sampled(h264)
    expected = _opencv_sampled(h264, frame_step(sampled.info.fps))
    assert sampled.indices == sorted(expected)
    assert all(np.array_equal(f.image, expected[f.index]) for f in sampled.frames)
    with VideoReader(h264) as reader:
        decoded = sum(1 for _ in reader._decoded(_every(23)))
        assert decoded < reader.info.frame_count  # non-reference frames not wanted were never decoded


def test_skip_loop_filter_keeps_keyframes_and_frame_numbers_and_is_what_the_setting_decodes(tmp_path):
    """``skip_loop_filter``: the same frames (numbers, times, sizes), the keyframe pixel for pixel,
    later frames of an H.264 stream slightly different from the exact decode (the filter is
    really skipped); evidence re-decoding gives the same pixels as sampling; and the frames
    stage decodes as the setting says (off by default: the exact, OpenCV-equal frames)."""
    from workers.processing.steps import sample
    from workers.settings import Settings

    h264 = _h264_with_b_frames(tmp_path, "-crf", "32")  # coarse: visible deblocking
    exact = read_sampled(h264)
    fast = read_sampled(h264, skip_loop_filter=True)
    assert fast.indices == exact.indices and fast.timestamps == exact.timestamps and len(fast.frames) == 6
    assert np.array_equal(fast.frames[0].image, exact.frames[0].image)  # frame 0: the only keyframe
    diffs = [np.abs(a.image.astype(int) - b.image.astype(int)).mean() for a, b in zip(fast.frames, exact.frames)]
    assert any(d > 0 for d in diffs[1:]) and max(diffs) < 5
    again = read_frames_at(h264, [3 * 24, 5 * 24], skip_loop_filter=True)
    assert all(np.array_equal(a.image, fast.frames[a.index // 24].image) for a in again)

    assert Settings().skip_loop_filter is False
    for setting, expected in ((True, fast), (False, exact)):
        with sample(h264, Settings(skip_loop_filter=setting)) as (_reader, frames):
            assert all(np.array_equal(f.image, e.image) for f, e in zip(frames, expected.frames, strict=True))
