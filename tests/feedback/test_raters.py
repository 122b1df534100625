"""Simulated raters: each one's distribution under fixed seeds, registry, reproducibility."""

from __future__ import annotations

import numpy as np
import pytest

from mmrlhf.feedback.config import FeedbackConfig
from mmrlhf.feedback.raters import (
    RATERS,
    BinaryRater,
    ClickRater,
    DwellRater,
    MistakeRater,
    MyopicRater,
    NoisyRater,
    OracleRater,
    PanelRater,
    RatingRater,
    SkippingRater,
    agrees,
    make_rater,
    register_rater,
)
from mmrlhf.feedback.records import Label

N = 4000


def rewards(rater, rec, n: int = N) -> np.ndarray:
    """Rewards of `n` ratings of the same record (NaN for no label)."""
    out = []
    for _ in range(n):
        label = rater.rate(rec)
        out.append(np.nan if label is None else label.reward)
    return np.asarray(out)


def test_oracle_is_the_score(record) -> None:
    for s in (0.0, 0.3, 1.0):
        label = OracleRater(seed=0).rate(record(s))
        assert label == Label(reward=s, kind="score", raw=s, rater="oracle")


def test_noisy_mean_and_std(record) -> None:
    r = rewards(NoisyRater(sigma=0.2, seed=1), record(0.5))
    assert abs(r.mean() - 0.5) < 0.015
    # Clipping at 0 and 1 trims a few percent off the std of 0.2.
    assert 0.18 < r.std() < 0.21
    assert r.min() >= 0.0 and r.max() <= 1.0


def test_noisy_clips_to_unit_interval(record) -> None:
    r = rewards(NoisyRater(sigma=1.0, seed=2), record(1.0), n=500)
    assert r.min() >= 0.0 and r.max() <= 1.0
    assert (r == 1.0).mean() > 0.4  # half the noise is above 1 and clips there


def test_noisy_with_sigma_and_epsilon(record) -> None:
    r = rewards(NoisyRater(sigma=0.1, epsilon=0.25, seed=3), record(1.0))
    flipped = (r < 0.5).mean()
    assert abs(flipped - 0.25) < 0.025


@pytest.mark.parametrize("epsilon", [0.1, 0.3])
def test_mistake_flip_rate(record, epsilon: float) -> None:
    r = rewards(MistakeRater(epsilon=epsilon, seed=4), record(1.0))
    assert set(np.unique(r)) <= {0.0, 1.0}
    assert abs((r == 0.0).mean() - epsilon) < 0.02


def test_skip_rate(record) -> None:
    r = rewards(SkippingRater(OracleRater(), skip_prob=0.3, seed=5), record(0.7))
    assert abs(np.isnan(r).mean() - 0.3) < 0.02
    assert np.all(r[~np.isnan(r)] == 0.7)


def test_myopic_weights_toward_the_end(record) -> None:
    rec = record(0.0, step_scores=[1.0, 0.0, 0.0])
    # weights gamma^(T-1-t) = [0.25, 0.5, 1]
    assert MyopicRater(gamma=0.5).rate(rec).reward == pytest.approx(0.25 / 1.75)
    assert MyopicRater(gamma=1.0).rate(rec).reward == pytest.approx(1 / 3)
    assert MyopicRater(gamma=0.0).rate(rec).reward == 0.0  # last step only = oracle
    late = record(1.0, step_scores=[0.0, 0.0, 1.0])
    assert MyopicRater(gamma=0.5).rate(late).reward == pytest.approx(1 / 1.75)


def test_myopic_without_step_scores_uses_final_score(record) -> None:
    assert MyopicRater(gamma=0.5).rate(record(0.4, step_scores=[])).reward == 0.4


def test_binary_threshold(record) -> None:
    rater = BinaryRater(threshold=0.6)
    assert [rater.rate(record(s)).reward for s in (0.0, 0.59, 0.6, 1.0)] == [0, 0, 1, 1]
    assert rater.rate(record(0.9)).kind == "binary"


def test_rating_stars_and_mapping(record) -> None:
    rater = RatingRater(levels=5)
    labels = [rater.rate(record(s)) for s in (0.0, 0.5, 1.0)]
    assert [lb.raw for lb in labels] == [1, 3, 5]
    assert [lb.reward for lb in labels] == [0.0, 0.5, 1.0]
    noisy = RatingRater(levels=5, sigma=0.3, seed=6)
    means = [rewards(noisy, record(s), n=1000).mean() for s in (0.1, 0.5, 0.9)]
    assert means[0] < means[1] < means[2]


def test_click_rate_rises_with_score(record) -> None:
    rater = ClickRater(low=0.05, high=0.95, seed=7)
    rates = [rewards(rater, record(s)).mean() for s in (0.0, 0.5, 1.0)]
    assert rates[0] < rates[1] < rates[2]
    for got, want in zip(rates, (0.05, 0.5, 0.95), strict=True):
        assert abs(got - want) < 0.025


def test_dwell_grows_with_quality(record) -> None:
    rater = DwellRater(min_s=2.0, max_s=30.0, noise=0.3, seed=8)
    dwell = {s: np.mean([rater.rate(record(s)).raw for _ in range(N)]) for s in (0.0, 0.5, 1.0)}
    # The log-normal noise has mean one: mean dwell matches the noiseless value.
    assert dwell[0.0] == pytest.approx(2.0, rel=0.03)
    assert dwell[0.5] == pytest.approx(16.0, rel=0.03)
    assert dwell[1.0] == pytest.approx(30.0, rel=0.03)
    r = rewards(rater, record(0.5))
    assert 0.4 < r.mean() < 0.6 and r.min() >= 0 and r.max() <= 1
    assert rater.rate(record(0.5)).kind == "dwell"


def test_panel_mean_averages_member_noise(record) -> None:
    members = [NoisyRater(sigma=s, seed=i) for i, s in enumerate((0.1, 0.2, 0.3))]
    r = rewards(PanelRater(members, aggregate="mean"), record(0.5))
    assert abs(r.mean() - 0.5) < 0.01
    # std of the mean of three independent noises: sqrt(.01 + .04 + .09) / 3 = 0.125
    assert abs(r.std() - 0.125) < 0.01


def test_panel_majority_beats_single_rater(record) -> None:
    eps = 0.2
    single = rewards(MistakeRater(epsilon=eps, seed=10), record(1.0))
    members = [MistakeRater(epsilon=eps, seed=20 + i) for i in range(3)]
    panel = rewards(PanelRater(members, aggregate="majority"), record(1.0))
    # A majority of 3 is wrong w.p. 3 eps^2 (1 - eps) + eps^3 = 0.104.
    assert abs((panel == 0.0).mean() - 0.104) < 0.02
    assert (panel == 0.0).mean() < (single == 0.0).mean() - 0.05


def test_panel_majority_tie_and_all_skip(record) -> None:
    up, down = OracleRater(), MistakeRater(epsilon=1.0)
    assert PanelRater([up, down], aggregate="majority").rate(record(1.0)).reward == 0.5
    skipping = SkippingRater(OracleRater(), skip_prob=1.0)
    assert PanelRater([skipping, skipping]).rate(record(1.0)) is None


def test_agreement_same_side_of_half() -> None:
    assert agrees(0.9, 1.0) and agrees(0.1, 0.0) and agrees(0.5, 0.7)
    assert not agrees(0.4, 1.0) and not agrees(0.6, 0.0)


def test_same_seed_same_labels_other_stream_differs(record) -> None:
    cfg = FeedbackConfig(rater="noisy", sigma=0.3, seed=11)
    a = rewards(cfg.make_rater(stream=1), record(0.5), n=50)
    b = rewards(cfg.make_rater(stream=1), record(0.5), n=50)
    c = rewards(cfg.make_rater(stream=2), record(0.5), n=50)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)


def test_registry_builds_every_rater(record) -> None:
    assert {
        "oracle", "noisy", "mistake", "skip", "myopic", "binary", "rating", "click", "dwell",
        "panel",
    } <= set(RATERS)  # fmt: skip
    for name in RATERS:
        label = FeedbackConfig(rater=name, skip_prob=0.0).make_rater().rate(record(1.0))
        assert label is not None and 0.0 <= label.reward <= 1.0, name


def test_config_defaults_for_mistake_and_skip(record) -> None:
    mistake = FeedbackConfig(rater="mistake").make_rater()
    assert isinstance(mistake, MistakeRater) and mistake.epsilon == 0.1
    skip = FeedbackConfig(rater="skip").make_rater()
    assert isinstance(skip, SkippingRater) and skip.skip_prob == 0.2
    # skip_prob wraps any rater
    wrapped = FeedbackConfig(rater="binary", skip_prob=0.5).make_rater()
    assert isinstance(wrapped, SkippingRater) and isinstance(wrapped.inner, BinaryRater)
    assert isinstance(FeedbackConfig(rater="noisy").make_rater(), NoisyRater)


def test_make_rater_unknown_name_lists_registered() -> None:
    with pytest.raises(ValueError, match="registered raters:.*oracle"):
        make_rater("psychic", FeedbackConfig())


def test_register_rater_rejects_duplicates() -> None:
    with pytest.raises(ValueError, match="already registered"):
        register_rater("oracle")(lambda p, s: OracleRater(seed=s))


@pytest.mark.parametrize(
    ("factory", "match"),
    [
        (lambda: NoisyRater(sigma=-1), "sigma"),
        (lambda: NoisyRater(epsilon=2), "epsilon"),
        (lambda: MyopicRater(gamma=1.5), "gamma"),
        (lambda: RatingRater(levels=1), "levels"),
        (lambda: ClickRater(low=0.9, high=0.1), "low"),
        (lambda: DwellRater(min_s=5, max_s=5), "min_s"),
        (lambda: PanelRater([]), "at least one"),
    ],
)
def test_bad_parameters_raise(factory, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        factory()
