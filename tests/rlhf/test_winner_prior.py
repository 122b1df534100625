"""Logit adjustment of the softmax winner term (`TrainerSettings.winner_prior_adjust`)."""

from __future__ import annotations

import math

import pytest
import torch

from mmrlhf.feedback.config import FeedbackConfig
from mmrlhf.feedback.preferences import PreferenceLabel
from mmrlhf.feedback.reward_model import RewardEnsemble, RewardModelSpec
from mmrlhf.feedback.rlhf import trainer_settings
from mmrlhf.feedback.rm_trainer import RewardModelTrainer, TrainerSettings
from mmrlhf.feedback.samples import stack_samples
from tests.rlhf.conftest import VOCAB, make_sample


def _settings(adjust: float) -> TrainerSettings:
    return TrainerSettings(
        winner_weight=1.0, winner_softmax=True, winners="judged_good", min_steps=150,
        batch_size=4, lr=3e-3, winner_prior_adjust=adjust,
    )  # fmt: skip


def test_the_prior_counts_the_winners_per_prompt(sigmoid_spec: RewardModelSpec) -> None:
    """Prompt 1's winners said 3, 3 and 4; prompt 2's said 5: log((c + 1/V) / (n + 1))."""
    samples = {
        "a": make_sample("a", prompt=1, response=3, seed=1),
        "b": make_sample("b", prompt=1, response=7, seed=2),
        "c": make_sample("c", prompt=1, response=3, seed=3),
        "d": make_sample("d", prompt=1, response=4, seed=4),
        "e": make_sample("e", prompt=2, response=5, seed=5),
        "f": make_sample("f", prompt=2, response=6, seed=6),
    }
    labels = [
        PreferenceLabel("a", "b", 1.0),  # a right, b wrong
        PreferenceLabel("c", "d", 0.5, tie="both_good"),
        PreferenceLabel("e", "f", 1.0),
    ]
    trainer = RewardModelTrainer(RewardEnsemble(sigmoid_spec, seed=0), _settings(1.0))
    trainer.add_labels(labels, samples)
    prior = trainer.winner_log_prior("judged_good")
    one, two = prior[samples["a"].prompt_key], prior[samples["e"].prompt_key]
    assert one.shape == (VOCAB,)
    assert one[3].item() == pytest.approx(math.log((2 + 1 / VOCAB) / 4))
    assert one[4].item() == pytest.approx(math.log((1 + 1 / VOCAB) / 4))
    assert one[7].item() == pytest.approx(math.log((1 / VOCAB) / 4))  # b lost: not a winner
    assert two[5].item() == pytest.approx(math.log((1 + 1 / VOCAB) / 2))
    assert float(torch.exp(one).sum()) == pytest.approx(1.0)
    strict = trainer.winner_log_prior("strict")  # the tie's episodes are not strict winners
    assert strict[samples["a"].prompt_key][3].item() == pytest.approx(
        math.log((1 + 1 / VOCAB) / 2)
    )


def test_the_adjusted_fit_leaves_the_prompts_prior_out_of_the_reward(
    sigmoid_spec: RewardModelSpec,
) -> None:
    """Every winner of prompt 1 answered 3, on eight different images. Fitted plainly, the
    reward learns "prompt 1 means 3" and rates 3 high on an image it never saw; with the
    prior given to the winner term's softmax, only the preferences and judgements (which
    the adjustment leaves as they are) raise it."""
    samples = {}
    labels = []
    for i in range(8):
        samples[f"w{i}"] = make_sample(f"w{i}", prompt=1, response=3, seed=i)
        samples[f"l{i}"] = make_sample(f"l{i}", prompt=1, response=4 + i, seed=100 + i)
        labels.append(PreferenceLabel(f"w{i}", f"l{i}", 1.0))
    fresh = [make_sample("new", prompt=1, response=3, seed=999)]
    rewards = {}
    for adjust in (0.0, 1.0):
        torch.manual_seed(0)
        trainer = RewardModelTrainer(RewardEnsemble(sigmoid_spec, seed=0), _settings(adjust))
        trainer.add_labels(labels, samples)
        before = float(trainer.rewards(fresh).mean())
        trainer.train()
        rewards[adjust] = float(trainer.rewards(fresh).mean()) - before
    assert rewards[0.0] > rewards[1.0] + 0.5, rewards


def test_the_winner_term_adds_the_scaled_log_prior_to_the_logits(
    sigmoid_spec: RewardModelSpec,
) -> None:
    """The loss with tau = 0.5 minus the loss without it is the winners' mean
    log softmax(l)[a] - log softmax(l + 0.5 log pi)[a], from the head's own logits."""
    samples = {
        "a": make_sample("a", prompt=1, response=3, seed=1),
        "b": make_sample("b", prompt=1, response=7, seed=2),
        "c": make_sample("c", prompt=1, response=3, seed=3),
        "d": make_sample("d", prompt=1, response=4, seed=4),
    }
    labels = [PreferenceLabel("a", "b", 1.0), PreferenceLabel("c", "d", 0.5, tie="both_good")]
    plain = RewardModelTrainer(RewardEnsemble(sigmoid_spec, seed=0), _settings(0.0))
    adjusted = RewardModelTrainer(RewardEnsemble(sigmoid_spec, seed=0), _settings(0.5))
    for trainer in (plain, adjusted):
        trainer.add_labels(labels, samples)
    member = adjusted.ensemble.members[0].eval()
    prior = adjusted.winner_log_prior("judged_good")[samples["a"].prompt_key]
    with torch.no_grad():
        gap = adjusted.loss(member, labels) - plain.loss(plain.ensemble.members[0].eval(), labels)
        batch = stack_samples([samples[w] for w in ("a", "c", "d")])
        logits = member.answer_head(member.features(batch.image, batch.prompt))
        answers = torch.tensor([3, 3, 4])
        raw = torch.log_softmax(logits, -1)[torch.arange(3), answers]
        shifted = torch.log_softmax(logits + 0.5 * prior, -1)[torch.arange(3), answers]
    assert float(gap) == pytest.approx(float((raw - shifted).mean()), abs=1e-5)


def test_the_adjustment_is_checked() -> None:
    with pytest.raises(ValueError, match="winner_prior_adjust must be >= 0"):
        TrainerSettings(winner_prior_adjust=-1.0)
    with pytest.raises(ValueError, match="needs winner_softmax=True"):
        TrainerSettings(winner_weight=1.0, winner_prior_adjust=1.0)
    with pytest.raises(ValueError, match="needs rm_winner_softmax=true"):
        FeedbackConfig(
            source="reward_model", rm_head="answer_sigmoid", rm_winner_weight=1.0,
            rm_winner_prior_adjust=1.0,
        )  # fmt: skip
    cfg = FeedbackConfig(
        source="reward_model", rm_head="answer_sigmoid", rm_winner_weight=1.0,
        rm_winner_softmax=True, rm_winner_prior_adjust=0.5,
    )  # fmt: skip
    assert trainer_settings(cfg).winner_prior_adjust == 0.5
