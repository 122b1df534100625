"""Ties that say "both bad" / "both good": the label, the rater, the loss and the config."""

from __future__ import annotations

import math

import pytest
import torch

from mmrlhf.feedback.config import FeedbackConfig
from mmrlhf.feedback.losses import binary_loss, bradley_terry_loss, log_prob_binary_loss
from mmrlhf.feedback.preferences import (
    BinaryLabel,
    PreferenceLabel,
    PreferenceRater,
    RatingLabel,
    absolute_outcomes,
)
from mmrlhf.feedback.reward_model import RewardEnsemble, RewardModelSpec
from mmrlhf.feedback.rlhf import RLHFState, make_spec
from mmrlhf.feedback.rm_trainer import RewardModelTrainer, TrainerSettings
from mmrlhf.feedback.samples import stack_samples
from tests.rlhf.conftest import IMAGE, PROMPT_LEN, TINY_RM, VOCAB, make_sample


def test_the_log_prob_binary_loss_is_the_bernoulli_likelihood_of_p() -> None:
    log_p = torch.log(torch.tensor([0.2, 0.9, 0.5]))
    target = torch.tensor([0.0, 1.0, 0.0])
    want = -(math.log(0.8) + math.log(0.9) + math.log(0.5)) / 3
    assert float(log_prob_binary_loss(log_p, target)) == pytest.approx(want, rel=1e-5)
    # tiny probabilities stay exact (no 1 - p round-off) and a certain answer stays finite
    tiny = torch.tensor([-30.0])
    assert float(log_prob_binary_loss(tiny, torch.zeros(1))) == pytest.approx(math.exp(-30.0))
    assert math.isfinite(float(log_prob_binary_loss(torch.zeros(1), torch.zeros(1))))


def test_a_tie_quality_needs_a_tie_and_a_known_value() -> None:
    assert PreferenceLabel("a", "b", 0.5, tie="both_bad").tie == "both_bad"
    with pytest.raises(ValueError, match="needs a tie"):
        PreferenceLabel("a", "b", 1.0, tie="both_bad")
    with pytest.raises(ValueError, match="must be one of"):
        PreferenceLabel("a", "b", 0.5, tie="meh")  # type: ignore[arg-type]


def test_absolute_outcomes_name_both_episodes_of_a_marked_tie_only() -> None:
    assert absolute_outcomes(PreferenceLabel("a", "b", 0.5, tie="both_bad")) == [
        ("a", False), ("b", False)]  # fmt: skip
    assert absolute_outcomes(PreferenceLabel("a", "b", 0.5, tie="both_good")) == [
        ("a", True), ("b", True)]  # fmt: skip
    assert absolute_outcomes(PreferenceLabel("a", "b", 0.5)) == []
    assert absolute_outcomes(PreferenceLabel("a", "b", 1.0)) == []
    assert absolute_outcomes(BinaryLabel("a", False)) == []


class _Ep:
    def __init__(self, episode_id: str, score: float) -> None:
        self.episode_id, self.score = episode_id, score


def test_the_rater_marks_ties_by_its_thresholds_and_keeps_its_random_stream() -> None:
    marked = PreferenceRater(tie_margin=0.15, both_bad=0.2, both_good=0.8, seed=3)
    plain = PreferenceRater(tie_margin=0.15, seed=3)
    # (score a, score b, mark): ties within 0.15; bad when both <= 0.2, good when both >= 0.8
    cases = [(0.0, 0.0, "both_bad"), (0.2, 0.1, "both_bad"), (0.3, 0.2, None),
             (0.9, 0.8, "both_good"), (0.8, 0.7, None), (0.5, 0.5, None),
             (0.1, 0.9, None)]  # fmt: skip
    for s_a, s_b, want in cases:
        got = marked.compare(_Ep("a", s_a), _Ep("b", s_b))
        base = plain.compare(_Ep("a", s_a), _Ep("b", s_b))
        assert got is not None and base is not None
        assert got.tie == want, (s_a, s_b)
        assert got.p_a == base.p_a  # the marks change nothing else
    with pytest.raises(ValueError, match="both_bad"):
        PreferenceRater(both_bad=0.5, both_good=0.5)


def test_marked_ties_add_a_binary_term_for_each_episode(
    answer_spec: RewardModelSpec, tiny_spec: RewardModelSpec
) -> None:
    samples = {f"e{i}": make_sample(f"e{i}", seed=i, response=3 + i) for i in range(4)}
    labels = [PreferenceLabel("e0", "e1", 1.0), PreferenceLabel("e2", "e3", 0.5, tie="both_bad")]
    for spec, judge in ((answer_spec, log_prob_binary_loss), (tiny_spec, binary_loss)):
        trainer = RewardModelTrainer(RewardEnsemble(spec, seed=0), TrainerSettings())
        trainer.add_labels(labels, samples)
        member = trainer.ensemble.members[0]
        with torch.no_grad():
            r = member(*vars(stack_samples([samples[f"e{i}"] for i in range(4)])).values())
            got = trainer.loss(member, labels)
        prefs = bradley_terry_loss(r[[0, 2]], r[[1, 3]], torch.tensor([1.0, 0.5]))
        judged = judge(r[[2, 3]], torch.zeros(2))
        # kinds weighted by their share: 2 preferences, 2 judged episodes
        assert float(got) == pytest.approx(float(prefs * 0.5 + judged * 0.5), abs=1e-5)


def test_binary_labels_on_the_answer_head_use_its_probability(
    answer_spec: RewardModelSpec,
) -> None:
    samples = {"e0": make_sample("e0", response=4), "e1": make_sample("e1", seed=1)}
    labels = [BinaryLabel("e0", True), BinaryLabel("e1", False), RatingLabel("e0", 1.0)]
    trainer = RewardModelTrainer(RewardEnsemble(answer_spec, seed=0), TrainerSettings())
    trainer.add_labels(labels[:2], samples)
    member = trainer.ensemble.members[0]
    with torch.no_grad():
        r = member(*vars(stack_samples([samples["e0"], samples["e1"]])).values())
        got = trainer.loss(member, labels[:2])
    assert float(got) == pytest.approx(
        float(log_prob_binary_loss(r, torch.tensor([1.0, 0.0]))), abs=1e-6
    )


def test_the_hub_counts_marked_ties_and_the_config_checks_the_thresholds() -> None:
    with pytest.raises(ValueError, match="preference_both_bad"):
        FeedbackConfig(preference_both_bad=0.6, preference_both_good=0.4)
    cfg = FeedbackConfig(enabled=True, source="reward_model", preference_both_bad=0.0,
                         preference_both_good=1.0, initial_queries=6, queries_per_iter=0,
                         **TINY_RM)  # fmt: skip
    state = RLHFState(cfg)
    assert (state.rater.both_bad, state.rater.both_good) == (0.0, 1.0)
    state.ensure_model(make_spec(cfg, image_size=IMAGE, prompt_len=PROMPT_LEN, vocab_size=VOCAB))
    # every episode has the same prompt and score 0: every pair is a "both bad" tie
    state.add_episodes([make_sample(f"e{i}", seed=i) for i in range(12)])
    assert state.label_round(1) == 6
    stats = state.stats()
    assert stats["ties"] == stats["both_bad"] == 6 and stats["both_good"] == 0
