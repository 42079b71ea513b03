"""Reposts enqueued together with their originals, through real workers: each
repost cluster is scored once and alerted once.

Two originals (slow pans over scikit-image pictures, one tinted red, one
blue, for the random-weight ``red`` target) and two ffmpeg variants of each
(mirrored; re-encoded at another bitrate) go into one ``enqueue``. The cpu
worker runs two processes, so a variant's frames are often extracted while
its original is still being scored: it waits for the original's verdicts.
"""

from __future__ import annotations

import numpy as np
import pytest
from sqlalchemy import select

from bench.repost_variants import _picture, make_variant, write_pan_video
from tests.pipeline_support import (
    BLUE,
    RED,
    Cluster,
    module_postgres_url,  # noqa: F401  (fixture)
    red_target,  # noqa: F401  (fixture)
    redis_url,  # noqa: F401  (fixture)
)
from workers.storage.models import AlertRow, Video
from workers.video_ref import canonical_source

pytestmark = pytest.mark.services


def tinted(name: str, colour) -> np.ndarray:
    return (0.35 * _picture(name) + 0.65 * np.array(colour, float)).astype(np.uint8)


@pytest.fixture(scope="module")
def run(tmp_path_factory, module_postgres_url, redis_url, red_target):  # noqa: F811
    root = tmp_path_factory.mktemp("reposts")
    folder = root / "videos"
    folder.mkdir()
    originals = {
        "red": write_pan_video(folder / "red-coffee.mp4", tinted("coffee", RED), seconds=4, fps=10),
        "blue": write_pan_video(folder / "blue-astronaut.mp4", tinted("astronaut", BLUE), seconds=4, fps=10),
    }
    clusters = {
        key: [path, *(make_variant(path, v, folder / f"{path.stem}-{v}.mp4") for v in ("mirror", "bitrate"))]
        for key, path in originals.items()
    }
    cluster = Cluster(root, module_postgres_url, redis_url, red_target)
    try:
        cluster.start_worker("io", "io")
        cluster.start_worker("cpu", "cpu", concurrency=2)
        cluster.start_worker("score", "score")
        sources = [str(p) for paths in clusters.values() for p in paths]
        job_ids = cluster.enqueue(*sources, "--target", "red")
        cluster.wait(job_ids, timeout=300)
        yield cluster, clusters
    finally:
        cluster.stop()


def test_each_cluster_is_scored_once_and_its_reposts_take_its_verdicts(run):
    cluster, clusters = run
    with cluster.session() as s:
        for paths in clusters.values():
            videos = [s.scalars(select(Video).where(Video.source == canonical_source(str(p)))).one() for p in paths]
            assert {v.status for v in videos} == {"done"}, [(v.source, v.status, v.error) for v in videos]
            scored = [v for v in videos if "score" in {t.stage for t in v.timings}]
            assert len(scored) == 1, [(v.source, sorted(t.stage for t in v.timings)) for v in videos]
            (first,) = scored
            for repost in (v for v in videos if v is not first):
                assert repost.duplicate_of == first.id and repost.duplicate_match >= 0.8
                (det,), (orig,) = repost.detections, first.detections
                assert (det.verdict, det.positive_frames, det.best_score) == (orig.verdict, orig.positive_frames, orig.best_score)


def test_each_positive_cluster_is_alerted_once(run):
    cluster, clusters = run
    with cluster.session() as s:
        verdicts = {}
        for key, paths in clusters.items():
            ids = [s.scalars(select(Video.id).where(Video.source == canonical_source(str(p)))).one() for p in paths]
            rows = list(s.scalars(select(AlertRow).where(AlertRow.video_id.in_(ids))))
            positive = s.get(Video, ids[0]).detections[0].verdict == "positive"
            verdicts[key] = positive
            if positive:
                assert sorted(r.status for r in rows) == ["repost", "repost", "sent"]
            else:
                assert rows == []
    assert verdicts["red"], "the red cluster should be positive for the red target"
