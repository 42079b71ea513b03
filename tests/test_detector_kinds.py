"""Detector kinds are plugins: each kind module declares a ``DetectorKind`` and the
registry lists it in one line. A kind added that way (here: a test module standing in
for a new kind) is saved and loaded as a bundle, gets its extractor from the settings,
is scored with the others, and says which view of a frame it reads."""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from workers.detect import registry
from workers.detect.base import Extractor, Target
from workers.detect.kind import DetectorKind
from workers.detect.scoring import score_frames
from workers.detect.views import FrameView
from workers.errors import BadTarget
from workers.settings import Settings
from workers.targets.bundle import load_target, save_target, summary
from workers.verdict import FrameScore, VerdictRule
from workers.video.sampling import Frame


class Redness(Extractor):
    key = "redness"

    def __init__(self, gain: float) -> None:
        super().__init__()
        self.gain = gain

    def _load(self) -> None:
        pass

    @property
    def identity(self) -> dict:
        return {"gain": self.gain}

    def extract(self, images):
        return [self.gain * float(img[..., 0].mean()) / 255 for img in images]


class RedTarget(Target):
    kind = "red"
    extractor_key = Redness.key

    def check_extractor(self, extractor) -> None:
        pass

    def score(self, extracted, indices, timestamps):
        return [FrameScore(int(i), float(t), float(v)) for i, t, v in zip(indices, timestamps, extracted)]

    def config(self) -> dict:
        return {}

    def save_artifacts(self, folder: Path) -> None:
        (Path(folder) / "red.txt").write_text("red\n")

    @classmethod
    def from_bundle(cls, meta, folder):
        if not (Path(folder) / "red.txt").is_file():
            raise FileNotFoundError("missing red.txt")
        return cls(meta["name"], float(meta["threshold"]), VerdictRule.from_dict(meta["rule"]))

    def fingerprint(self) -> bytes:
        return b"red"


@dataclass(frozen=True)
class RedSettings:
    gain: float

    @classmethod
    def from_settings(cls, settings, overrides) -> "RedSettings":
        return cls(gain=2.0 if overrides.get("weights") == "double" else 1.0)


KIND = DetectorKind(key="red", target=RedTarget, settings=RedSettings.from_settings,
                    extractor=lambda s: Redness(s.gain), view=FrameView((8, 8)), options=frozenset({"weights"}))


@pytest.fixture()
def red_kind(monkeypatch):
    """This module registered as a kind: its one line in ``KIND_MODULES``."""
    monkeypatch.setattr(registry, "KIND_MODULES", (*registry.KIND_MODULES, __name__))
    registry.kinds.cache_clear()
    yield sys.modules[__name__].KIND
    registry.kinds.cache_clear()


def test_the_registry_lists_face_and_classifier():
    assert set(registry.kinds()) == {"classifier", "face"}
    assert registry.kind_of("face").view == FrameView(None, "rgb", "jpeg")  # as sampled
    assert registry.kind_of("classifier").view == FrameView((224, 224), "rgb", "lossless")
    assert registry.kind_of("face").extractor_key == "faces" and registry.kind_of("classifier").extractor_key == "vgg16"
    with pytest.raises(BadTarget, match="unknown target kind 'sketch'"):
        registry.kind_of("sketch")


def test_a_new_kind_is_one_module_and_one_registration_line(red_kind, tmp_path):
    target = RedTarget("stop-sign", 0.5, VerdictRule(0.0, 2))
    save_target(target, tmp_path)
    loaded = load_target(tmp_path, "stop-sign")
    assert (type(loaded), loaded.version, loaded.rule) == (RedTarget, target.version, VerdictRule(0.0, 2))
    assert summary(tmp_path, "stop-sign")["kind"] == "red"

    extractor = registry.make_extractor("redness", Settings(), weights="double")
    assert extractor.identity == {"gain": 2.0}
    red, blue = np.zeros((8, 8, 3), np.uint8), np.zeros((8, 8, 3), np.uint8)
    red[..., 0] = 255
    frames = [Frame(i, float(i), img) for i, img in enumerate([red, blue, red])]
    outcome = score_frames(frames, [loaded], {"redness": extractor}, early_verdict=False)["stop-sign"]
    assert [s.score for s in outcome.scores] == [2.0, 0.0, 2.0] and outcome.verdict.positive

    face_like = type("Face", (), {"kind": "face"})()  # grouped by the view their kind reads: it says so itself
    assert registry.by_view([loaded, face_like, "red"]) == {FrameView((8, 8)): [loaded, "red"], registry.kind_of("face").view: [face_like]}
    # A command's options reach only the kind that declares them (--backbone-weights: not the face kind).
    assert registry.kind_of("face").options == frozenset() and "weights" in registry.kind_of("classifier").options


def test_an_unregistered_kind_is_a_damaged_bundle_error(tmp_path, red_kind):
    save_target(RedTarget("stop-sign", 0.5, VerdictRule(0.0, 2)), tmp_path)
    registry.kinds.cache_clear()
    registry.KIND_MODULES = registry.KIND_MODULES[:-1]  # undone by monkeypatch
    with pytest.raises(BadTarget, match=r"stop-sign: unknown target kind 'red'"):
        load_target(tmp_path, "stop-sign")
