"""Scoring several targets over a video's frames: batching, early verdict and
the reuse of near-duplicate frames' scores (pure logic, fake models)."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from workers.detect.backbone import resize_frame
from workers.detect.base import Extractor, Target
from workers.detect.scoring import collect_scores, frame_signature, score_frames
from workers.verdict import FrameScore, VerdictRule
from workers.video.sampling import Frame


class MeanBrightness(Extractor):
    """Stands in for VGG16: one number per image, and a record of every batch."""

    key = "vgg16"

    def __init__(self) -> None:
        super().__init__()
        self.batches: list[int] = []

    def _load(self) -> None:
        pass

    @property
    def identity(self) -> dict:
        return {}

    def extract(self, images):
        self.batches.append(len(images))
        return np.array([img.mean() / 255 for img in images])


class Bright(Target):
    kind = "classifier"
    extractor_key = "vgg16"

    def check_extractor(self, extractor) -> None:
        pass

    def score(self, extracted, indices, timestamps):
        return [FrameScore(i, t, float(v)) for i, t, v in zip(indices, timestamps, extracted)]

    def config(self) -> dict:
        return {}

    def save_artifacts(self, folder) -> None:
        pass

    @classmethod
    def from_bundle(cls, meta, folder):
        raise NotImplementedError

    def fingerprint(self) -> bytes:
        return b""


THIRD = VerdictRule(1 / 3, 1)


def frames_of(levels, noise=None, size=(96, 64)) -> list[Frame]:
    """One flat grey frame per level (0-255), with optional per-frame noise."""
    rng = np.random.default_rng(0)
    out = []
    for i, level in enumerate(levels):
        img = np.full((size[1], size[0], 3), level, np.float32)
        if noise:
            img += rng.uniform(-noise, noise, img.shape)
        out.append(Frame(i * 30, float(i), np.clip(img, 0, 255).astype(np.uint8)))
    return out


def test_near_identical_frames_reuse_the_last_scored_frames_scores():
    frames = frames_of([200, 200, 201, 40, 40, 200], noise=0.4)
    model = MeanBrightness()
    scores = collect_scores(frames, [Bright("b", 0.5, THIRD)], {"vgg16": model}, batch_size=16,
                            early_verdict=False, duplicate_tolerance=1.0)["b"]
    assert [s.reused_from for s in scores] == [None, 0, 0, None, 90, None]
    assert model.batches == [3]  # frames 0, 3 and 5 went through the model
    assert scores[1].score == scores[0].score and scores[1].index == 30 and scores[1].timestamp == 1.0
    # Tolerance 0: every frame is scored.
    model = MeanBrightness()
    scores = collect_scores(frames, [Bright("b", 0.5, THIRD)], {"vgg16": model}, early_verdict=False)["b"]
    assert model.batches == [6] and all(s.reused_from is None for s in scores)


def test_reuse_is_measured_against_the_scored_frame_so_slow_drift_is_caught():
    # Each frame is about 0.6 brighter than the previous: within the tolerance of its
    # neighbour, but a frame only takes the score of one at most the tolerance away.
    frames = [Frame(i, float(i), np.full((8, 8, 3), 100 + (6 * i) // 10, np.uint8)) for i in range(12)]
    scores = collect_scores(frames, [Bright("b", 0.5, THIRD)], {"vgg16": MeanBrightness()},
                            early_verdict=False, duplicate_tolerance=1.0)["b"]
    assert sum(s.reused_from is None for s in scores) >= 4
    for s in scores:
        if s.reused_from is not None:
            assert abs(float(frames[s.index].image.mean()) - float(frames[s.reused_from].image.mean())) <= 1.0


def test_batches_are_filled_with_frames_that_need_scoring():
    frames = frames_of([10, 10, 10, 60, 110, 110, 160, 210, 210, 250])
    model = MeanBrightness()
    collect_scores(frames, [Bright("b", 0.5, THIRD)], {"vgg16": model}, batch_size=2,
                   early_verdict=False, duplicate_tolerance=1.0)
    assert model.batches == [2, 2, 2]  # 6 distinct frames of 10


def test_signature_of_a_full_frame_equals_its_backbone_copys():
    full = np.random.default_rng(1).integers(0, 255, (720, 1280, 3), dtype=np.uint8)
    assert np.array_equal(frame_signature(full), frame_signature(resize_frame(full)))


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.tuples(st.integers(0, 255), st.integers(1, 4)), min_size=1, max_size=12),
    st.booleans(),
)
def test_exact_repeats_change_no_score_and_no_verdict(runs, early):
    """Frames repeated exactly get exactly the scores they would have had."""
    levels = [level for level, count in runs for _ in range(count)]
    frames = frames_of(levels, size=(16, 16))
    target = Bright("b", 0.5, THIRD)
    every = score_frames(frames, [target], {"vgg16": MeanBrightness()}, 4, False)["b"]
    model = MeanBrightness()
    reused = score_frames(frames, [target], {"vgg16": model}, 4, early, None, 0.5)["b"]
    assert reused.verdict.positive == every.verdict.positive
    n = len(reused.scores)
    assert [s.score for s in reused.scores] == [s.score for s in every.scores[:n]]
    assert sum(model.batches) == n - reused.verdict.reused_frames


def test_early_verdict_sends_only_the_frames_that_could_decide():
    # 18 frames, 1/3 rule: 6 positives decide. The first pass takes 6 frames, not 16.
    model = MeanBrightness()
    scores = collect_scores(frames_of([250] * 18), [Bright("b", 0.5, THIRD)], {"vgg16": model}, batch_size=16)["b"]
    assert model.batches == [6] and len(scores) == 6
    # A negative one is decided by 13 negatives; each pass takes what could decide it:
    # 6 (could all be positive), 6 (could still all be), then the 1 that leaves too few.
    model = MeanBrightness()
    scores = collect_scores(frames_of([5] * 18), [Bright("b", 0.5, THIRD)], {"vgg16": model}, batch_size=16)["b"]
    assert model.batches == [6, 6, 1] and len(scores) == 13
    # Without the early verdict every frame goes through, in full batches.
    model = MeanBrightness()
    collect_scores(frames_of([250] * 18), [Bright("b", 0.5, THIRD)], {"vgg16": model}, batch_size=16, early_verdict=False)
    assert model.batches == [16, 2]
