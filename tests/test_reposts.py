"""Reposts by what they show: the PDQ matching rules, the chunk index (SQLite and
Postgres), and linking real ffmpeg-made variants of a generated video."""

from __future__ import annotations

import numpy as np
import pytest
from sqlalchemy import select

from bench.repost_variants import _picture, make_variant, write_pan_video
from tests.pipeline_support import postgres_url, red_target  # noqa: F401 - fixtures
from workers.reposts import linking
from workers.reposts.hashing import hash_frames
from workers.reposts.matching import MAX_DISTANCE, index_keys, match_videos, probe_keys, usable
from workers.reposts import hash_index as frame_hashes
from workers.storage.db import session_scope
from workers.storage.models import Video, VideoStatus
from workers.video.sampling import read_sampled


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
    hashes = hash_frames(read_sampled(path).frames)
    with session_scope(url) as s:
        video = Video(source=source or str(path), status=VideoStatus.DONE, meta={})
        s.add(video)
        s.flush()
        return linking.link_repost(s, video, hashes, 0.5)


@pytest.fixture(scope="module")
def clips(tmp_path_factory):
    folder = tmp_path_factory.mktemp("clips")
    original = write_pan_video(folder / "coffee.mp4", _picture("coffee"), seconds=5, fps=10)
    other = write_pan_video(folder / "rocket.mp4", _picture("rocket"), seconds=5, fps=10)
    variants = {name: make_variant(original, name, folder / f"coffee-{name}.mp4") for name in ("mirror", "crop5", "trim2")}
    return original, other, variants


@pytest.mark.parametrize("database", ["sqlite", "postgres"])
def test_variants_link_to_their_original_and_others_do_not(database, clips, tmp_path, request):
    url = f"sqlite:///{tmp_path / 'links.db'}" if database == "sqlite" else request.getfixturevalue("postgres_url")
    original, other, variants = clips
    assert _link(url, original).original_id is None
    assert _link(url, other).original_id is None  # a distinct video: no false link
    with session_scope(url) as s:
        first = s.scalars(select(Video.id).where(Video.source == str(original))).one()
    for name, path in variants.items():
        link = _link(url, path)
        assert link.original_id == first, name
        # A 5 s clip without its first 2 s still shows 3/5 of it: linked, but scored itself.
        expected = linking.SCORE if name == "trim2" else linking.REUSE
        assert link.action(0.8) == expected, (name, link.match)
    with session_scope(url) as s:
        repost = s.scalars(select(Video).where(Video.source == str(variants["mirror"]))).one()
        assert repost.duplicate_of == first and repost.duplicate_match >= 0.8
        assert frame_hashes.has_hashes(s, repost.id)


def test_scan_gives_a_repost_its_originals_verdicts(tmp_path, red_target):  # noqa: F811
    from tests.pipeline_support import RED
    from workers.scan import Scanner
    from workers.settings import Settings

    red = (0.35 * _picture("coffee") + 0.65 * np.array(RED, float)).astype(np.uint8)
    original = write_pan_video(tmp_path / "red-coffee.mp4", red, seconds=4, fps=10)
    mirrored = make_variant(original, "mirror", tmp_path / "red-coffee-mirror.mp4")
    settings = Settings(_env_file=None, data_dir=tmp_path / "data", models_dir=red_target, vgg16_weights="random",
                        database_url=f"sqlite:///{tmp_path / 'scan.db'}")
    scanner = Scanner.for_names(settings, ["red"])
    (first,), (second,) = [[r.to_json() for r in rows] for _, rows in scanner.scan_files([original, mirrored])]
    assert first["repost_of"] is None and not first["cached"]
    assert second["repost_of"] == str(original) and second["cached"]
    assert (second["verdict"], second["positive_frames"], second["best_score"]) == (
        first["verdict"], first["positive_frames"], first["best_score"])
    with session_scope(settings.resolved_database_url) as s:
        repost = s.scalars(select(Video).where(Video.source == str(mirrored))).one()
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
            _env_file=None, data_dir=tmp_path / "data", models_dir=red_target, vgg16_weights="random",
            database_url=f"sqlite:///{tmp_path / 'results.db'}", broker_url="", alert_log=False,
            alert_webhook_urls=[hook.url("/hook")], alert_retries=1, alert_timeout=2.0,
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
