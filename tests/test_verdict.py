from hypothesis import given
from hypothesis import strategies as st

from workers.verdict import FrameScore, VerdictRule, frames_to_decide, is_decided, verdict_for

THIRD = VerdictRule(1 / 3, 1)


def scores(values):
    return [FrameScore(i, float(i), v) for i, v in enumerate(values)]


def test_tutorial_rule_one_third():
    assert THIRD.needed(18) == 6
    assert THIRD.needed(61) == 21
    v = verdict_for(scores([0.9] * 6 + [0.1] * 12), 0.5, THIRD)
    assert v.positive and v.positive_frames == 6 and v.positive_timestamps == [0, 1, 2, 3, 4, 5]
    assert not verdict_for(scores([0.9] * 5 + [0.1] * 13), 0.5, THIRD).positive
    # Biden.mp4 in the tutorial: 4 false positives of 61 frames -> negative.
    assert not verdict_for(scores([0.9] * 4 + [0.1] * 57), 0.5, THIRD).positive


def test_face_rule_min_frames():
    rule = VerdictRule(0.0, 2)
    assert not verdict_for(scores([0.8] + [0.0] * 99), 0.5, rule).positive
    assert verdict_for(scores([0.8, 0.7] + [0.0] * 98), 0.5, rule).positive


def test_empty_video_is_negative_and_best_frame_is_max():
    assert not verdict_for([], 0.5, VerdictRule(0.0, 0)).positive
    v = verdict_for(scores([0.2, 0.9, 0.4]), 0.5, THIRD)
    assert v.best.index == 1 and v.best.score == 0.9


@given(
    st.lists(st.floats(0, 1), min_size=1, max_size=40),
    st.floats(0, 1),
    st.integers(1, 5),
)
def test_early_verdict_never_changes_the_verdict(values, fraction, min_frames):
    rule = VerdictRule(fraction, min_frames)
    full = verdict_for(scores(values), 0.5, rule)
    for k in range(len(values) + 1):
        prefix = scores(values[:k])
        positives = sum(s.score >= 0.5 for s in prefix)
        if is_decided(rule, len(values), k, positives):
            early = verdict_for(prefix, 0.5, rule, total_frames=len(values))
            assert early.positive == full.positive
            assert early.frames == len(values) and early.scored_frames == k
            break


@given(
    st.integers(0, 40),
    st.floats(0, 1),
    st.integers(0, 5),
    st.data(),
)
def test_frames_to_decide_is_the_fewest_frames_that_can_decide(total, fraction, min_frames, data):
    rule = VerdictRule(fraction, min_frames)
    scored = data.draw(st.integers(0, total))
    positive = data.draw(st.integers(0, scored))
    k = frames_to_decide(rule, total, scored, positive)
    assert (k == 0) == is_decided(rule, total, scored, positive)
    if k:
        assert k <= total - scored
        # After k frames, all positive or all negative, it is decided; after k - 1 it is not, either way.
        assert is_decided(rule, total, scored + k, positive + k) or is_decided(rule, total, scored + k, positive)
        assert not is_decided(rule, total, scored + k - 1, positive + k - 1)
        assert not is_decided(rule, total, scored + k - 1, positive)
