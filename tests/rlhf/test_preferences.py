"""Simulated preference rater (Boltzmann, mistakes, ties, skips, rankings) and label types."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pytest

from mmrlhf.feedback.preferences import (
    BinaryLabel,
    PreferenceLabel,
    PreferenceRater,
    RankingLabel,
    RatingLabel,
    from_rater_label,
    label_cost,
    pairwise_outcomes,
)
from mmrlhf.feedback.records import Label


@dataclass(frozen=True)
class Ep:
    episode_id: str
    score: float


def test_perfectly_rational_rater_prefers_higher_score_and_ties_equal() -> None:
    rater = PreferenceRater(beta=math.inf, seed=0)
    label = rater.compare(Ep("a", 0.2), Ep("b", 0.9))
    assert label == PreferenceLabel("a", "b", 0.0)
    assert rater.compare(Ep("a", 1.0), Ep("b", 0.0)).p_a == 1.0
    assert rater.compare(Ep("a", 0.4), Ep("b", 0.4)).p_a == 0.5


def test_boltzmann_preference_rate_matches_sigmoid() -> None:
    rater = PreferenceRater(beta=2.0, seed=1)
    wins = [rater.compare(Ep("a", 1.0), Ep("b", 0.0)).p_a for _ in range(4000)]
    expected = 1 / (1 + math.exp(-2.0))  # 0.881
    assert np.mean(wins) == pytest.approx(expected, abs=0.025)
    assert rater.p_first(1.0, 0.0) == pytest.approx(expected)


def test_tie_margin_epsilon_and_skip() -> None:
    rater = PreferenceRater(beta=math.inf, tie_margin=0.15, seed=0)
    assert rater.compare(Ep("a", 0.5), Ep("b", 0.6)).p_a == 0.5
    assert rater.compare(Ep("a", 0.5), Ep("b", 0.7)).p_a == 0.0
    # epsilon = 1: every answer a coin flip, however clear the difference
    noisy = PreferenceRater(beta=math.inf, epsilon=1.0, seed=0)
    answers = [noisy.compare(Ep("a", 1.0), Ep("b", 0.0)).p_a for _ in range(2000)]
    assert np.mean(answers) == pytest.approx(0.5, abs=0.04) and set(answers) == {0.0, 1.0}
    skipper = PreferenceRater(skip_prob=0.3, seed=0)
    skipped = [skipper.compare(Ep("a", 1.0), Ep("b", 0.0)) is None for _ in range(2000)]
    assert np.mean(skipped) == pytest.approx(0.3, abs=0.04)


def test_ranking_orders_by_score_with_ties_and_counts_k_minus_1() -> None:
    rater = PreferenceRater(beta=math.inf, seed=0)
    items = [Ep("w1", 0.0), Ep("best", 1.0), Ep("w2", 0.0), Ep("mid", 0.5)]
    label = rater.rank(items)
    assert isinstance(label, RankingLabel)
    ranks = dict(zip(label.episodes, label.ranks, strict=True))
    assert ranks["best"] == 0 and ranks["mid"] == 1 and ranks["w1"] == ranks["w2"] == 2
    assert label_cost(label) == 3 and label_cost(PreferenceLabel("a", "b", 1.0)) == 1
    pairs = pairwise_outcomes(label)
    assert ("best", "mid") in pairs and ("mid", "w1") in pairs
    assert ("w1", "w2") not in pairs and ("w2", "w1") not in pairs  # ties give no pair
    assert len(pairs) == 5


def test_boltzmann_ranking_puts_best_first_at_plackett_luce_rate() -> None:
    rater = PreferenceRater(beta=1.0, seed=3)
    items = [Ep("a", 1.0), Ep("b", 0.0), Ep("c", 0.5)]
    firsts = [rater.rank(items).ranks[0] == 0 for _ in range(3000)]
    expected = math.e / (math.e + 1 + math.exp(0.5))
    assert np.mean(firsts) == pytest.approx(expected, abs=0.03)


def test_same_seed_same_answers_and_fixed_draws() -> None:
    def answers(seed: int) -> list[float]:
        rater = PreferenceRater(beta=1.0, skip_prob=0.2, seed=seed)
        out = []
        for i in range(50):
            label = rater.compare(Ep("a", (i % 3) / 2), Ep("b", 0.5))
            out.append(-1.0 if label is None else label.p_a)
        return out

    assert answers(5) == answers(5)
    assert answers(5) != answers(6)


def test_label_validation_and_conversion() -> None:
    with pytest.raises(ValueError):
        PreferenceLabel("a", "a", 1.0)
    with pytest.raises(ValueError):
        PreferenceLabel("a", "b", 1.5)
    with pytest.raises(ValueError):
        RankingLabel(("a",), (0,))
    with pytest.raises(ValueError):
        RatingLabel("a", 2.0)
    assert from_rater_label("e", Label(1.0, "click", 1.0, "click")) == BinaryLabel(
        "e", True, source="click"
    )
    assert from_rater_label("e", Label(0.75, "rating", 4.0, "rating")) == RatingLabel(
        "e", 0.75, source="rating"
    )
