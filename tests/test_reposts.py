"""Reposts by what they show: PDQ as vPDQ computes it, the matching rules, the chunk
index (SQLite and Postgres), and linking real ffmpeg-made variants of a generated video."""

from __future__ import annotations

import numpy as np
import pytest
from sqlalchemy import select

from bench.repost_variants import _picture, make_variant, write_pan_video
from tests.pipeline_support import postgres_url, red_target  # noqa: F401 - fixtures
from workers.reposts import hash_index as frame_hashes
from workers.reposts import linking
from workers.reposts.hashing import FrameHash, FrameHasher, bits_to_hex, content_boxes, hash_file, luma_of, pdq_of
from workers.reposts.matching import MAX_DISTANCE, LinkRule, VideoMatch, distances, index_keys, match_videos, probe_keys, usable
from workers.storage.db import session_scope
from workers.storage.models import FrameHash as FrameHashRow
from workers.storage.models import Video, VideoStatus
from workers.video.sampling import Frame
from workers.video_ref import canonical_source


def _random_hash(rng) -> str:
    return bytes(rng.integers(0, 256, 32, dtype=np.uint8)).hex()


def _flip(rng, pdq: str, bits: int) -> str:
    raw = np.unpackbits(np.frombuffer(bytes.fromhex(pdq), np.uint8))
    raw[rng.choice(256, bits, replace=False)] ^= 1
    return np.packbits(raw).tobytes().hex()


def test_probing_finds_every_hash_within_31_bits_and_no_scan_is_needed():
    rng = np.random.default_rng(1)
    for _ in range(300):
        pdq = _random_hash(rng)
        near = _flip(rng, pdq, int(rng.integers(0, MAX_DISTANCE + 1)))
        assert set(index_keys(near)) & set(probe_keys(pdq))  # pigeonhole: some chunk is within 1 bit
    assert len(probe_keys(pdq)) == 16 * 17


def test_vpdq_rules_both_directions_and_quality():
    rng = np.random.default_rng(2)
    grey = 85 << 16 | 85 << 8 | 85
    a = [(grey, _random_hash(rng)) for _ in range(10)]
    near = [(grey, _flip(rng, h, 20)) for _, h in a]
    assert match_videos(near, a) == (1.0, 1.0)
    half = near[:5]  # a trimmed copy: all of its frames match, half of the original's
    assert match_videos(half, a) == (1.0, 0.5)
    far = [(grey, _flip(rng, h, 40)) for _, h in a]
    assert match_videos(far, a) == (0.0, 0.0)
    red = [(200 << 16 | 30 << 8 | 25, h) for _, h in near]  # the same shapes in another colour: PDQ alone would match
    assert match_videos(red, a) == (0.0, 0.0)
    assert usable([("x",), ("y",), ("x",)], [100, 10, 100]) == [("x",)]  # poor and repeated frames dropped


def _link(url: str, path, source: str | None = None) -> linking.RepostLink:
    return _link_hashes(url, hash_file(path, 1.0, 10.0), source or str(path))


MUTUAL = LinkRule()


def _link_hashes(url: str, hashes, source: str, rule: LinkRule = MUTUAL) -> linking.RepostLink:
    with session_scope(url) as s:
        video = Video(source=source, status=VideoStatus.DONE)
        s.add(video)
        s.flush()
        return linking.link_repost(s, video, hashes, rule)


def _frames(hashes, start: int = 0) -> list[FrameHash]:
    """Synthetic sampled frames, one per hash, a second apart."""
    grey = 85 << 16 | 85 << 8 | 85
    return [FrameHash(start + i, float(start + i), h, h, 100, grey) for i, h in enumerate(hashes)]


def test_pdq_is_the_reference_implementations_bit_for_bit():
    """The numpy PDQ gives pdqhash's hash, mirror hash (its dihedral left-right flip) and quality."""
    import cv2
    import pdqhash
    from skimage import data

    flat = np.full((90, 160, 3), 120, np.uint8)
    flat[40:44] = 126
    for picture in (data.astronaut(), data.coffee(), np.stack([data.camera()] * 3, -1), flat):
        for h, w in ((1920, 1080), (720, 1280), (333, 517), (64, 64)):
            image = np.ascontiguousarray(cv2.resize(picture, (w, h), interpolation=cv2.INTER_AREA))
            hashes, quality = pdqhash.compute_dihedral(image)
            ours = pdq_of(luma_of(image))
            assert ours[2] == quality
            if quality >= 50:  # a flat frame's bits are float noise (never matched)
                assert ours[:2] == (bits_to_hex(hashes[0]), bits_to_hex(hashes[5]))


def test_a_still_shot_counts_once_on_both_sides():
    """An original holding a still shot sampled four times and two other shots: a repost of
    the two other shots matches 2 of its 3 distinct frames (2/6 if repeats counted), and links."""
    rng = np.random.default_rng(3)
    still, a, b, other = (_random_hash(rng) for _ in range(4))
    original = [still] * 4 + [a, b]
    repost = [_flip(rng, a, 6), _flip(rng, b, 6)]
    frames = [f.frame for f in _frames(original)]
    assert match_videos([f.frame for f in _frames(repost)], frames) == (1.0, pytest.approx(2 / 3))
    assert match_videos(frames, [f.frame for f in _frames(repost)]) == (pytest.approx(2 / 3), 1.0)


def test_the_still_shot_repost_links_through_the_stored_index(tmp_path):
    rng = np.random.default_rng(4)
    still, a, b = (_random_hash(rng) for _ in range(3))
    url = f"sqlite:///{tmp_path / 'links.db'}"
    assert _link_hashes(url, _frames([still] * 4 + [a, b]), "original").original_id is None
    link = _link_hashes(url, _frames([_flip(rng, a, 6), _flip(rng, b, 6)]), "repost")
    assert link.original_id is not None and link.match.strength == pytest.approx(2 / 3)


def test_link_rules_mutual_and_vpdq():
    clip = VideoMatch(1.0, 0.2)  # a short clip cut out of a long video
    compilation = VideoMatch(0.3, 1.0)  # a long video holding all of a short one
    trimmed = VideoMatch(1.0, 0.6)
    assert [LinkRule("mutual", 0.5).links(m) for m in (clip, compilation, trimmed)] == [False, False, True]
    assert [LinkRule("vpdq").links(m) for m in (clip, compilation, trimmed)] == [True, False, True]


def test_a_repost_of_a_repost_records_its_match_with_the_original(tmp_path):
    """The second copy matches the first repost best (all frames), but takes, and records,
    its match with the original, whose verdicts it would reuse."""
    rng = np.random.default_rng(5)
    url = f"sqlite:///{tmp_path / 'links.db'}"
    shots = [_random_hash(rng) for _ in range(10)]
    first = _link_hashes(url, _frames(shots), "original")
    assert first.original_id is None
    repost = _link_hashes(url, _frames(shots[:7]), "repost")  # 7 of 10 shots
    copy = _link_hashes(url, _frames([_flip(rng, h, 4) for h in shots[:7]]), "copy of the repost")
    with session_scope(url) as s:
        ids = dict(s.query(Video.source, Video.id).all())
        rows = {v.source: v for v in s.query(Video)}
        assert repost.original_id == copy.original_id == ids["original"]
        assert repost.match.strength == copy.match.strength == pytest.approx(0.7)
        assert rows["copy of the repost"].duplicate_match == pytest.approx(0.7)


def test_rows_stored_before_region_hashes_still_match(tmp_path):
    """Rows from before migration 0009 have no region hashes (NULL): they are read, probed and matched by their two."""
    rng = np.random.default_rng(6)
    url = f"sqlite:///{tmp_path / 'links.db'}"
    shots = [_random_hash(rng) for _ in range(6)]
    _link_hashes(url, _frames(shots), "old")
    with session_scope(url) as s:
        s.query(FrameHashRow).update({FrameHashRow.regions: None})
    new = _frames([_flip(rng, h, 10) for h in shots])
    new = [FrameHash(f.index, f.timestamp, f.pdq, f.centre, f.quality, f.chroma, (_random_hash(rng),)) for f in new]
    assert _link_hashes(url, new, "new").match.strength == 1.0


def test_a_picture_inside_a_frame_of_colour_or_another_clip_is_found_and_hashed():
    import cv2
    from skimage import data

    picture = cv2.resize(data.astronaut(), (360, 360), interpolation=cv2.INTER_AREA)
    own = pdq_of(luma_of(picture))[0]
    rng = np.random.default_rng(7)
    backgrounds = {
        "colour": np.full((960, 540, 3), (40, 80, 160), np.uint8),
        "blur": cv2.blur(cv2.resize(picture, (540, 960)), (61, 61)),
        "clip": cv2.resize(data.coffee(), (540, 960)),
        "noise": rng.integers(0, 255, (960, 540, 3), dtype=np.uint8),
    }
    for name, frame in backgrounds.items():
        frame = frame.copy()
        frame[150:510, 90:450] = picture
        boxes = content_boxes(luma_of(frame))
        assert (150, 510, 90, 450) in boxes, (name, boxes)  # placed to the pixel
        stored = FrameHasher([], 1.0)
        stored.see(Frame(0, 0.0, frame), True)
        (hashes,) = stored.into
        assert min(int(distances([own], [h])[0, 0]) for h in hashes.regions) <= 10, name
    assert content_boxes(luma_of(picture)) == []  # a picture alone: nothing inside it


@pytest.fixture(scope="module")
def clips(tmp_path_factory):
    folder = tmp_path_factory.mktemp("clips")
    original = write_pan_video(folder / "coffee.mp4", _picture("coffee"), seconds=5, fps=10)
    other = write_pan_video(folder / "rocket.mp4", _picture("rocket"), seconds=5, fps=10)
    variants = {name: make_variant(original, name, folder / f"coffee-{name}.mp4") for name in ("mirror", "crop5", "trim2", "trim07")}
    return original, other, variants


@pytest.mark.parametrize("database", ["sqlite", "postgres"])
def test_variants_link_to_their_original_and_others_do_not(database, clips, tmp_path, request):
    url = f"sqlite:///{tmp_path / 'links.db'}" if database == "sqlite" else request.getfixturevalue("postgres_url")
    original, other, variants = clips
    assert _link(url, original).original_id is None
    assert _link(url, other).original_id is None  # a distinct video: no false link
    with session_scope(url) as s:
        first = s.scalars(select(Video.id).where(Video.source == canonical_source(str(original)))).one()
    for name, path in variants.items():
        link = _link(url, path)
        assert link.original_id == first, name
        # A 5 s clip without its first 2 s still shows 3/5 of it: linked, but scored itself. Without its
        # first 0.7 s it is sampled 0.3 s off the original's instants: found by the frames between them.
        expected = linking.SCORE if name == "trim2" else linking.REUSE
        assert link.action(0.8) == expected, (name, link.match)
    with session_scope(url) as s:
        repost = s.scalars(select(Video).where(Video.source == canonical_source(str(variants["mirror"])))).one()
        assert repost.duplicate_of == first and repost.duplicate_match >= 0.8
        assert frame_hashes.has_hashes(s, repost.id)


def test_scan_gives_a_repost_its_originals_verdicts(tmp_path, red_target):  # noqa: F811
    from tests.pipeline_support import RED
    from workers.scan import Scanner
    from workers.settings import Settings

    red = (0.35 * _picture("coffee") + 0.65 * np.array(RED, float)).astype(np.uint8)
    original = write_pan_video(tmp_path / "red-coffee.mp4", red, seconds=4, fps=10)
    mirrored = make_variant(original, "mirror", tmp_path / "red-coffee-mirror.mp4")
    settings = Settings(
        _env_file=None,
        data_dir=tmp_path / "data",
        models_dir=red_target,
        vgg16_weights="random",
        database_url=f"sqlite:///{tmp_path / 'scan.db'}",
    )
    scanner = Scanner.for_names(settings, ["red"])
    (first,), (second,) = [[r.to_json() for r in rows] for _, rows in scanner.scan_files([original, mirrored])]
    assert first["repost_of"] is None and not first["cached"]
    assert second["repost_of"] == str(original) and second["cached"]
    assert (second["verdict"], second["positive_frames"], second["best_score"]) == (
        first["verdict"],
        first["positive_frames"],
        first["best_score"],
    )
    with session_scope(settings.resolved_database_url) as s:
        repost = s.scalars(select(Video).where(Video.source == canonical_source(str(mirrored)))).one()
        assert repost.status == "done" and repost.duplicate_match >= 0.8 and len(repost.detections) == 1


def test_stages_alert_a_repost_cluster_once_and_count_its_reposts_in_the_next_alert(tmp_path, red_target):  # noqa: F811
    import json

    from tests.local_http import Receiver
    from tests.pipeline_support import RED
    from tests.test_watch_alert_stages import queue, run_chain
    from workers.pipeline import stages
    from workers.settings import Settings
    from workers.storage.models import AlertRow

    def red(name: str):
        picture = (0.35 * _picture(name) + 0.65 * np.array(RED, float)).astype(np.uint8)
        return write_pan_video(tmp_path / f"red-{name}.mp4", picture, seconds=4, fps=10)

    original = red("coffee")
    repost = make_variant(original, "mirror", tmp_path / "red-coffee-mirror.mp4")
    other = red("brick")
    with Receiver() as hook:
        settings = Settings(
            _env_file=None,
            data_dir=tmp_path / "data",
            models_dir=red_target,
            vgg16_weights="random",
            database_url=f"sqlite:///{tmp_path / 'results.db'}",
            broker_url="",
            alert_log=False,
            alert_webhook_urls=[hook.url("/hook")],
            alert_retries=1,
            alert_timeout=2.0,
        )
        ctx = stages.StageContext.from_settings(settings)
        first, second, third = (queue(ctx, str(p)) for p in (original, repost, other))
        assert run_chain(ctx, first) == ["download", "frames", "score", "verdict", "alert"]
        assert run_chain(ctx, second) == ["download", "frames", "alert"]  # its original's verdicts: not scored
        assert len(hook.requests) == 1  # the cluster is alerted once
        run_chain(ctx, third)
    with session_scope(settings.resolved_database_url) as s:
        statuses = dict(s.execute(select(AlertRow.video_id, AlertRow.status)).all())
    assert statuses == {first: "sent", second: "repost", third: "sent"}
    bodies = [json.loads(r["body"]) for r in hook.requests]
    assert [b["video_url"] for b in bodies] == [str(original), str(other)]
    assert [b["reposts_since"] for b in bodies] == [0, 1]  # the repost, counted in the next alert
