"""Frame views: each detector kind declares what it reads of a sampled frame (its
``FrameView``), and its models get exactly that, the same pixels in the in-process
scan and through the pipeline's frame batch. The kind here reads 112x112 grey frames
and is added as a real one would be: this module (its ``KIND``) and one registry line;
nothing in the scan, the pipeline or the frame batch names it."""

from __future__ import annotations

import io
import json
import sys
import zipfile
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import select

from tests.videos import write_video
from workers.detect import registry
from workers.detect.base import Extractor, Target
from workers.detect.kind import DetectorKind
from workers.detect.views import FrameView
from workers.verdict import FrameScore, VerdictRule

GREY = FrameView((112, 112), "gray", "lossless")


class Greyness(Extractor):
    """A weighted mean of the grey pixels: any pixel that differs moves the score."""

    key = "greyness"
    seen: list[tuple[tuple[int, ...], str]] = []  # (shape, dtype) of every image it was given

    def _load(self) -> None:
        pass

    @property
    def identity(self) -> dict:
        return {}

    def extract(self, images):
        weights = np.random.default_rng(0).random((112, 112))
        Greyness.seen.extend((img.shape, str(img.dtype)) for img in images)
        return [float((img * weights).sum() / weights.sum() / 255) for img in images]


class GreyTarget(Target):
    kind = "grey"
    extractor_key = Greyness.key

    def check_extractor(self, extractor) -> None:
        pass

    def score(self, extracted, indices, timestamps):
        return [FrameScore(int(i), float(t), v) for i, t, v in zip(indices, timestamps, extracted, strict=True)]

    def config(self) -> dict:
        return {}

    def save_artifacts(self, folder: Path) -> None:
        (Path(folder) / "grey.txt").write_text("grey\n")

    @classmethod
    def from_bundle(cls, meta, folder):
        return cls(meta["name"], float(meta["threshold"]), VerdictRule.from_dict(meta["rule"]), meta.get("version", ""))

    def fingerprint(self) -> bytes:
        return b"grey"


KIND = DetectorKind(key="grey", target=GreyTarget, settings=lambda settings, overrides: None, extractor=lambda s: Greyness(), view=GREY)


@pytest.fixture(params=["lossless", "jpeg"])
def grey_view(request, monkeypatch):
    """This module registered as a kind (its one line in ``KIND_MODULES``), reading its frames
    stored losslessly or as JPEG."""
    view = replace(GREY, encoding=request.param)
    monkeypatch.setattr(sys.modules[__name__], "KIND", replace(KIND, view=view))
    monkeypatch.setattr(registry, "KIND_MODULES", (*registry.KIND_MODULES, __name__))
    registry.kinds.cache_clear()
    Greyness.seen.clear()
    yield view
    registry.kinds.cache_clear()


def test_keys_name_what_a_view_is():
    assert GREY.key == "112x112-gray-lossless" and FrameView(None, "rgb", "jpeg").key == "sampled-rgb-jpeg"
    with pytest.raises(ValueError):
        FrameView(None, "cmyk")


def test_the_frame_batch_gives_back_what_render_gives(grey_view, tmp_path):
    from workers.media.frame_batch import load_frames, write_frames
    from workers.media.store import LocalMediaStore
    from workers.processing.steps import scoring_frames
    from workers.video.sampling import read_sampled

    sampled = read_sampled(write_video(tmp_path / "v.mp4", seconds=3, size=(320, 180)), 1.0)
    store = LocalMediaStore(tmp_path / "store")
    with store.writer("frames/1.npz") as fh:
        write_frames(fh, sampled, registry.by_view([GreyTarget("g", 0.5, VerdictRule(0.0, 2))]))
    back = load_frames(store, "frames/1.npz", grey_view).frames
    rendered = scoring_frames(sampled.frames, grey_view)  # the in-process scan's frames
    assert [f.image.shape for f in back] == [(112, 112)] * 3 and back[0].image.dtype == np.uint8
    assert all(np.array_equal(a.image, b.image) for a, b in zip(back, rendered, strict=True))


def test_scan_and_pipeline_score_the_same_grey_pixels(grey_view, tmp_path):
    from workers.media.frame_batch import open_frames
    from workers.media.keys import frames_key, media_id, scores_key
    from workers.media.scores import decode_scores
    from workers.pipeline import stages, submit
    from workers.scan import Scanner
    from workers.settings import Settings
    from workers.storage.db import session_scope
    from workers.storage.models import Detection
    from workers.targets.bundle import save_target

    models = tmp_path / "models"
    save_target(GreyTarget("grey", 0.99, VerdictRule(0.0, 2)), models)  # never positive: (almost) every frame is scored
    video = write_video(tmp_path / "v.mp4", seconds=6, size=(320, 180))

    def settings(name: str) -> Settings:
        db = f"sqlite:///{tmp_path / f'{name}.db'}"
        return Settings(data_dir=tmp_path / name, models_dir=models, database_url=db, broker_url="")

    # The in-process scan.
    scan = settings("scan")
    assert [r.verdict for r in Scanner.for_names(scan, ["grey"]).scan_file(video)] == ["negative"]
    with session_scope(scan.resolved_database_url) as s:
        (detection,) = s.scalars(select(Detection)).all()
        scanned = [(f.frame_index, f.score, f.reused_from) for f in sorted(detection.frame_scores, key=lambda f: f.frame_index)]
    assert len(scanned) >= 4  # the early verdict may leave out the last frame

    # The pipeline's stages: the frame batch holds the grey view alone.
    ctx = stages.StageContext.from_settings(settings("pipeline"))
    with session_scope(ctx.db_url) as s:
        row = submit.new_video(str(video), ["grey"])
        s.add(row)
        s.flush()
        vid, media = row.id, media_id(row.job_id, row.id)
    assert stages.download(ctx, vid) and stages.extract_frames(ctx, vid)
    with open_frames(ctx.store, frames_key(media)) as batch:
        assert list(batch.members) == [grey_view.key]
    assert stages.score(ctx, vid)
    _specs, scores, total = decode_scores(ctx.store.get(scores_key(media)))
    assert total == 6
    assert [(s.index, s.score, s.reused_from) for s in scores["grey"]] == scanned
    assert {shape for shape, _ in Greyness.seen} == {(112, 112)} and {d for _, d in Greyness.seen} == {"uint8"}


def test_a_batch_written_before_views_is_read_as_its_two_views(tmp_path):
    """Format 2 (one ``backbone`` array and full-frame JPEGs): still read, as the classifier's
    and the face kind's views."""
    from workers.media.frame_batch import open_batch
    from workers.video.sampling import read_sampled

    sampled = read_sampled(write_video(tmp_path / "v.mp4", seconds=2, size=(320, 180)), 1.0)
    vgg, faces = registry.kind_of("classifier").view, registry.kind_of("face").view
    jpegs = [faces.encode(f.image) for f in sampled.frames]
    chunk = io.BytesIO()
    np.savez_compressed(
        chunk,
        indices=np.array([f.index for f in sampled.frames]),
        timestamps=np.array([f.timestamp for f in sampled.frames]),
        backbone=np.stack([vgg.encode(f.image) for f in sampled.frames]),
        jpeg=np.frombuffer(b"".join(jpegs), np.uint8),
        jpeg_ends=np.cumsum([len(j) for j in jpegs]),
    )
    path = tmp_path / "old.npz"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("chunk-00000.npz", chunk.getvalue())
        info = sampled.info
        manifest = {"format": 2, "frames": 2, "chunks": 1, "info": [info.fps, info.frame_count, info.width, info.height]}
        archive.writestr("batch.json", json.dumps({**manifest, "backbone": True, "images": True, "extra": {}}))
    with open_batch(path) as batch:
        for view in (vgg, faces):
            back = list(batch.frames(view))
            assert all(np.array_equal(a.image, view.render(b.image)) for a, b in zip(back, sampled.frames, strict=True))
