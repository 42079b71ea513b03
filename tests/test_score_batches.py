"""Forward passes shared by several videos: every video scored exactly as alone
(fake models for the scheduling; the real VGG16 and the seed videos for the
claim that a frame's features do not depend on the other frames of its pass)."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from tests.pipeline_support import same_scores
from tests.score_batches_support import small_trump  # noqa: F401  (fixture)
from tests.test_scoring import THIRD, Bright, MeanBrightness, frames_of
from workers.detect.scoring import VideoScoring, collect_scores, collect_scores_of
from workers.detect.shared_passes import SharedPasses
from workers.verdict import VerdictRule

ANY = VerdictRule(0.0, 1)  # one positive frame decides


def _videos():
    """Videos of different lengths and kinds: decided early, never decided, with repeats."""
    return [
        frames_of([220, 230, 240, 250] * 10),  # positive at once for "any": decided after its first chunk
        frames_of([10, 20, 30, 40] * 9, noise=2),  # never positive: scored to the end
        frames_of([100] * 5 + [200] * 3 + [100] * 20, noise=0.5),  # near-duplicates reuse scores
        frames_of([50, 240] * 7),
        frames_of([]),  # no frames
        frames_of([30] * 3),
    ]


def _targets():
    return [Bright("b", 0.5, THIRD), Bright("any", 0.9, ANY)]


@pytest.mark.parametrize("early", [True, False])
@pytest.mark.parametrize("per_pass", [2, 3, 6])
def test_shared_passes_give_each_video_its_own_scores(early, per_pass):
    alone = [collect_scores(f, _targets(), {"vgg16": MeanBrightness()}, 4, early, duplicate_tolerance=1.0) for f in _videos()]
    model = MeanBrightness()
    videos = [VideoScoring(f, _targets(), 4, early, None, 1.0) for f in _videos()]
    together = collect_scores_of(videos, {"vgg16": model}, videos_per_pass=per_pass)
    assert together == alone
    assert max(model.batches) > 4  # passes really carried several videos' chunks
    if early:  # the positive video stopped after one chunk while the others went on
        assert len(together[0]["any"]) == 4 and len(together[1]["any"]) == 36
    assert any(s.reused_from is not None for s in together[2]["b"])


def test_a_pass_takes_one_chunk_of_each_video_at_most():
    model = MeanBrightness()
    videos = [VideoScoring(frames_of([10] * n, noise=3), [Bright("b", 0.5, THIRD)], 4, False) for n in (12, 12, 12)]
    collect_scores_of(videos, {"vgg16": model}, videos_per_pass=2)
    # 2 videos per pass (8 frames) until the first two end; then the third alone
    assert model.batches == [8, 8, 8, 4, 4, 4]


def test_on_batch_counts_every_frame_once_for_each_video():
    counted = []
    for frames in _videos():
        seen = []
        collect_scores(frames, _targets(), {"vgg16": MeanBrightness()}, 4, True, seen.append, 1.0)
        counted.append(sum(seen))
    assert counted == [len(f) for f in _videos()]


def _submit_all(passes: SharedPasses, videos, extractors) -> list:
    results: list = [None] * len(videos)
    errors: list = [None] * len(videos)

    def run(i):
        try:
            results[i] = passes.collect_scores(videos[i], _targets(), extractors, early_verdict=True, duplicate_tolerance=1.0)
        except Exception as exc:  # noqa: BLE001
            errors[i] = exc

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(videos))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    return results, errors


def test_threads_share_passes_and_get_their_own_scores():
    model = MeanBrightness()
    passes = SharedPasses(max_frames=16, batch_size=4, wait_seconds=0.05)
    results, errors = _submit_all(passes, _videos(), {"vgg16": model})
    assert errors == [None] * len(_videos())
    alone = [collect_scores(f, _targets(), {"vgg16": MeanBrightness()}, 4, True, duplicate_tolerance=1.0) for f in _videos()]
    assert results == alone  # every frame scored once, with its own scores
    # Which chunks share a pass depends on thread timing; what holds whatever it is: a pass
    # is one forward pass (passes that ran no model are not counted), and each takes a chunk
    # of at least one video, so there are no more passes than chunks.
    assert passes.stats.passes == len(model.batches) and passes.stats.frames == sum(model.batches)
    assert len(model.batches) <= sum(-(-len(f) // 4) for f in _videos())


def test_a_pass_that_is_not_full_waits_for_an_expected_video():
    model = MeanBrightness()
    passes = SharedPasses(max_frames=8, batch_size=4, wait_seconds=5.0)
    second_ready = threading.Event()
    out = {}

    def second():
        passes.expect()
        second_ready.set()
        threading.Event().wait(0.3)  # opening its frames
        out["second"] = passes.collect_scores(frames_of([10] * 4, noise=3), [Bright("b", 0.5, THIRD)], {"vgg16": model}, early_verdict=False)

    thread = threading.Thread(target=second)
    thread.start()
    second_ready.wait(5)
    # expect() is per thread: this thread's video goes first and waits for the other one
    out["first"] = passes.collect_scores(frames_of([20] * 4, noise=3), [Bright("b", 0.5, THIRD)], {"vgg16": model}, early_verdict=False)
    thread.join(10)
    assert model.batches == [8]  # one pass carried both
    assert len(out["first"]["b"]) == len(out["second"]["b"]) == 4


def test_a_lone_video_waits_for_nothing():
    model = MeanBrightness()
    passes = SharedPasses(max_frames=64, batch_size=4, wait_seconds=60.0)  # would time the test out if it waited
    scores = passes.collect_scores(frames_of([10] * 10, noise=3), [Bright("b", 0.5, THIRD)], {"vgg16": model}, early_verdict=False)
    assert len(scores["b"]) == 10 and model.batches == [4, 4, 2]


def test_a_video_whose_frames_fail_fails_alone():
    def broken():
        yield from frames_of([10] * 3, noise=3)
        raise OSError("frame batch truncated")

    model = MeanBrightness()
    passes = SharedPasses(max_frames=16, batch_size=2, wait_seconds=0.0)
    good = passes.submit(VideoScoring(frames_of([10] * 9, noise=3), [Bright("b", 0.5, THIRD)], 2, False), {"vgg16": model})
    bad = passes.submit(VideoScoring(broken(), [Bright("b", 0.5, THIRD)], 2, False, total=9), {"vgg16": model})
    with pytest.raises(OSError, match="truncated"):
        bad.result(30)
    assert len(good.result(30)["b"]) == 9


class Exploding(MeanBrightness):
    def extract(self, images):
        raise RuntimeError("out of GPU memory")


def test_a_failing_model_fails_the_videos_of_its_pass_and_the_thread_goes_on():
    passes = SharedPasses(max_frames=8, batch_size=4, wait_seconds=0.0)
    first = passes.submit(VideoScoring(frames_of([10] * 4, noise=3), [Bright("b", 0.5, THIRD)], 4, False), {"vgg16": Exploding()})
    with pytest.raises(RuntimeError, match="GPU memory"):
        first.result(30)
    second = passes.submit(VideoScoring(frames_of([10] * 4, noise=3), [Bright("b", 0.5, THIRD)], 4, False), {"vgg16": MeanBrightness()})
    assert len(second.result(30)["b"]) == 4


# --- the real VGG16 on the seed videos ------------------------------------------------------


@pytest.mark.seed
def test_seed_videos_score_identically_alone_and_together(seed_target, seed_dir):
    """The same float32 scores (within ``SCORE_TOLERANCE``: bit for bit on most CPUs) and the
    same frames scored and reused: per video (chunks of 16) and in passes of up to 64 frames
    mixing the seed videos and generated ones."""
    from workers.detect.backbone import VIEW
    from workers.processing.steps import scoring_frames
    from workers.video.sampling import open_sampled

    target, backbone = seed_target
    videos = []
    for path in [seed_dir / "Trump.mp4", seed_dir / "Biden.mp4", seed_dir / "Biden.mp4"]:
        with open_sampled(path, 1.0, 1280) as (_reader, frames):
            videos.append(scoring_frames(frames, VIEW))
    videos[2] = videos[2][::-1]  # another "video": the same frames, other neighbours in every pass
    # Every frame scored (no early verdict): the claim is about the model's passes; the early
    # verdict's chunking in shared passes is tested above with fake models, at no CPU cost.
    alone = [collect_scores(v, [target], {"vgg16": backbone}, 16, False, duplicate_tolerance=1.0) for v in videos]
    shared = [VideoScoring(v, [target], 16, False, None, 1.0) for v in videos]
    together = collect_scores_of(shared, {"vgg16": backbone}, videos_per_pass=4)
    for a, b in zip(alone, together, strict=True):
        assert same_scores([(s.index, s.reused_from, s.score) for s in a["trump"]], [(s.index, s.reused_from, s.score) for s in b["trump"]])
    # and the verdicts are the tutorial's
    positive = sum(s.score >= target.threshold for s in together[0]["trump"])
    assert positive >= 1


@pytest.fixture(scope="module")
def seed_target(small_trump, seed_weights):
    from workers.detect.backbone import VGG16Backbone
    from workers.targets.bundle import load_target

    return load_target(small_trump, "trump"), VGG16Backbone(str(seed_weights), "torch", precision="float32")


def test_videos_per_pass_never_mixes_up_frames_of_equal_index():
    """Frames of different videos share indices: each gets its own frame's score."""
    model = MeanBrightness()
    a, b = frames_of([250] * 4), frames_of([5] * 4)
    out = collect_scores_of([VideoScoring(a, [Bright("b", 0.5, THIRD)], 4, False), VideoScoring(b, [Bright("b", 0.5, THIRD)], 4, False)],
                            {"vgg16": model}, videos_per_pass=2)
    assert model.batches == [8]
    assert [round(s.score, 3) for s in out[0]["b"]] == [round(250 / 255, 3)] * 4
    assert [round(s.score, 3) for s in out[1]["b"]] == [round(5 / 255, 3)] * 4
    assert np.allclose([s.index for s in out[0]["b"]], [s.index for s in out[1]["b"]])


def test_only_a_score_only_worker_on_one_device_runs_videos_in_threads():
    from workers.services.worker_plan import score_threads
    from workers.settings import Settings

    settings = Settings(score_videos_in_flight=4)
    assert score_threads(["score"], None, [], settings) == 4
    assert score_threads(["score"], None, ["0"], settings) == 4
    assert score_threads(["score"], 16, [], settings) == 16
    assert score_threads(["score"], 1, [], settings) is None  # one video at a time: prefork, as before
    assert score_threads(["score"], None, ["0", "1"], settings) is None  # one process per GPU
    assert score_threads(["cpu", "score"], None, [], settings) is None
    assert score_threads(["score"], None, [], Settings(score_videos_in_flight=1)) is None
