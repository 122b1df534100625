"""The answer reward heads (`answer_logits`, `answer_sigmoid`) and the strict winners'
demonstration term."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch

from mmrlhf.feedback.config import FeedbackConfig
from mmrlhf.feedback.preferences import PreferenceLabel, RankingLabel, RatingLabel
from mmrlhf.feedback.reward_model import (
    RewardEnsemble,
    RewardModel,
    RewardModelSpec,
    load_reward_model,
    save_reward_model,
)
from mmrlhf.feedback.rlhf import trainer_settings
from mmrlhf.feedback.rm_trainer import RewardModelTrainer, TrainerSettings, strict_winners
from mmrlhf.feedback.samples import stack_samples
from tests.rlhf.conftest import answer_head_spec, make_sample


def test_the_reward_is_the_mean_log_likelihood_of_the_response_tokens(
    answer_spec: RewardModelSpec,
) -> None:
    member = RewardEnsemble(answer_spec, seed=0).members[0].eval()
    sample = make_sample("a", seed=1)
    batch = stack_samples([sample, sample, sample])
    batch.response[0] = torch.tensor([3, 0])  # one token
    batch.response[1] = torch.tensor([3, 7])  # two tokens
    batch.response[2] = torch.tensor([0, 0])  # empty
    with torch.no_grad():
        features = member.features(batch.image, batch.prompt)
        log_p = torch.log_softmax(member.answer_head(features), -1)
        r = member(batch.image, batch.prompt, batch.response)
    assert r[0] == pytest.approx(float(log_p[0, 3]), abs=1e-6)
    assert r[1] == pytest.approx(float(log_p[1, 3] + log_p[1, 7]) / 2, abs=1e-6)
    # an empty response is the pad token's likelihood, not a free 0
    assert r[2] == pytest.approx(float(log_p[2, 0]), abs=1e-6)
    assert bool((r < 0).all())


def test_the_head_survives_a_checkpoint_and_bad_heads_are_named(
    tmp_path: Path, answer_spec: RewardModelSpec
) -> None:
    ens = RewardEnsemble(answer_spec, seed=2)
    save_reward_model(tmp_path / "rm", ens)
    loaded, meta = load_reward_model(tmp_path / "rm")
    batch = stack_samples([make_sample("a"), make_sample("b", seed=1, response=5)])
    assert meta["spec"]["head"] == "answer_logits"
    assert torch.allclose(loaded(batch), ens.eval()(batch))
    # checkpoints written before the head existed load as the compare head
    old = {k: v for k, v in answer_spec.to_dict().items() if k != "head"}
    assert RewardModelSpec.from_dict(old).head == "compare"
    with pytest.raises(ValueError, match="head must be one of"):
        RewardModelSpec(**{**answer_spec.to_dict(), "head": "logits"})


def test_strict_winners_skip_ties_soft_labels_and_tied_tops() -> None:
    labels = [
        PreferenceLabel("a", "b", 1.0),
        PreferenceLabel("c", "d", 0.0),
        PreferenceLabel("e", "f", 0.5),
        PreferenceLabel("g", "h", 0.8),
        RankingLabel(("i", "j", "k"), (1, 0, 2)),
        RankingLabel(("l", "m", "n"), (0, 0, 1)),
        RatingLabel("o", 1.0),
    ]
    assert strict_winners(labels) == ["a", "d", "j"]


def test_the_winner_term_adds_minus_the_winners_mean_reward(
    answer_spec: RewardModelSpec,
) -> None:
    samples = {f"e{i}": make_sample(f"e{i}", seed=i, response=3 + i) for i in range(4)}
    labels = [PreferenceLabel("e0", "e1", 1.0), PreferenceLabel("e2", "e3", 0.0),
              PreferenceLabel("e0", "e2", 0.5)]  # fmt: skip
    plain = RewardModelTrainer(RewardEnsemble(answer_spec, seed=0), TrainerSettings())
    weighted = RewardModelTrainer(
        RewardEnsemble(answer_spec, seed=0), TrainerSettings(winner_weight=0.5)
    )
    for trainer in (plain, weighted):
        trainer.add_labels(labels, samples)
    member = plain.ensemble.members[0]
    batch = stack_samples([samples["e0"], samples["e3"]])
    with torch.no_grad():
        winners = member(batch.image, batch.prompt, batch.response).mean()
        base = plain.loss(member, labels)
        got = weighted.loss(weighted.ensemble.members[0], labels)
    assert float(got) == pytest.approx(float(base - 0.5 * winners), abs=1e-5)


def test_the_winner_term_needs_the_answer_head(tiny_spec: RewardModelSpec) -> None:
    with pytest.raises(ValueError, match="answer heads"):
        RewardModelTrainer(RewardEnsemble(tiny_spec), TrainerSettings(winner_weight=1.0))
    with pytest.raises(ValueError, match="rm_winner_weight"):
        FeedbackConfig(source="reward_model", rm_winner_weight=1.0)
    with pytest.raises(ValueError, match="winner_weight must be >= 0"):
        TrainerSettings(winner_weight=-1.0)
    cfg = FeedbackConfig(source="reward_model", rm_head="answer_logits", rm_winner_weight=2.0)
    assert trainer_settings(cfg).winner_weight == 2.0


def test_the_winner_term_teaches_the_answer_to_a_scene(answer_spec: RewardModelSpec) -> None:
    """One scene, answer 3 beats 4 and 5 beats 6: the winner term also lifts 3 and 5 above
    answers no label names, which preferences alone leave where they were."""
    torch.manual_seed(0)
    samples = {
        f"{r}": make_sample(f"{r}", seed=0, response=r) for r in (3, 4, 5, 6, 7, 8)
    }
    labels = [PreferenceLabel("3", "4", 1.0), PreferenceLabel("6", "5", 0.0)]
    settings = TrainerSettings(winner_weight=1.0, min_steps=200, batch_size=2, lr=3e-3)
    trainer = RewardModelTrainer(RewardEnsemble(answer_spec, seed=0), settings)
    trainer.add_labels(labels, samples)
    trainer.train()
    r = trainer.rewards([samples[k] for k in ("3", "5", "7", "8")]).mean(0).numpy()
    assert np.all(r[:2, None] > r[None, 2:]), r
    assert np.exp(r[:2]).sum() > 0.9  # the winners hold most of the probability


def test_the_sigmoid_head_scores_each_token_on_its_own(sigmoid_spec: RewardModelSpec) -> None:
    """The reward is the mean log-odds of the response's tokens, read as log P(right) through
    a log-sigmoid."""
    member = RewardEnsemble(sigmoid_spec, seed=0).members[0].eval()
    batch = stack_samples([make_sample("a", seed=1)] * 3)
    batch.response[0] = torch.tensor([3, 0])
    batch.response[1] = torch.tensor([3, 7])
    batch.response[2] = torch.tensor([0, 0])
    with torch.no_grad():
        logits = member.answer_head(member.features(batch.image, batch.prompt))
        r = member(batch.image, batch.prompt, batch.response)
        log_p = member.log_prob_right(r)
    assert r[0] == pytest.approx(float(logits[0, 3]), abs=1e-6)
    assert r[1] == pytest.approx(float(logits[1, 3] + logits[1, 7]) / 2, abs=1e-6)
    assert r[2] == pytest.approx(float(logits[2, 0]), abs=1e-6)
    expected = [math.log(1.0 / (1.0 + math.exp(-float(x)))) for x in r]
    assert log_p.numpy() == pytest.approx(expected, abs=1e-6)
    # an untrained head starts every word near even odds, not near 1/vocabulary
    assert np.allclose(r.numpy(), 0.0, atol=0.1)
    cfg = FeedbackConfig(source="reward_model", rm_head="answer_sigmoid", rm_winner_weight=1.0)
    assert trainer_settings(cfg).winner_weight == 1.0


def test_the_sigmoid_head_leaves_unnamed_answers_above_the_wrong_ones(
    sigmoid_spec: RewardModelSpec,
) -> None:
    """One scene: 3 beats 4, 5 beats 6, and a tie says 4 and 6 are both bad. Answers no label
    names (7, 8) stay near probability 1/2: below the winners, above the losers, so a policy
    that maximises the reward still tries them before it repeats a known mistake."""
    torch.manual_seed(0)
    samples = {f"{r}": make_sample(f"{r}", seed=0, response=r) for r in (3, 4, 5, 6, 7, 8)}
    labels = [
        PreferenceLabel("3", "4", 1.0),
        PreferenceLabel("6", "5", 0.0),
        PreferenceLabel("4", "6", 0.5, tie="both_bad"),
    ]
    settings = TrainerSettings(winner_weight=1.0, min_steps=200, batch_size=3, lr=3e-3)
    trainer = RewardModelTrainer(RewardEnsemble(sigmoid_spec, seed=0), settings)
    trainer.add_labels(labels, samples)
    trainer.train()
    r = trainer.rewards([samples[k] for k in ("3", "5", "7", "8", "4", "6")]).mean(0).numpy()
    winners, unnamed, losers = (1.0 / (1.0 + np.exp(-x)) for x in (r[:2], r[2:4], r[4:]))
    assert winners.min() > 0.9, r
    assert losers.max() < 0.1, r
    assert np.all(np.abs(unnamed - 0.5) < 0.25), r


def test_the_softmax_winner_term_fits_every_episode_shown_right(
    sigmoid_spec: RewardModelSpec,
) -> None:
    """With `winners="judged_good"` a "both good" tie's episodes are demonstrations too, and
    `winner_softmax` fits them as the scene's answers against every other word: answers no
    label names sink below them, which the own-odds term (previous test) leaves at 1/2."""
    torch.manual_seed(0)
    samples = {f"{r}": make_sample(f"{r}", seed=0, response=r) for r in (3, 4, 7, 8)}
    labels = [PreferenceLabel("3", "4", 0.5, tie="both_good")]
    settings = TrainerSettings(
        winner_weight=1.0, winner_softmax=True, winners="judged_good", min_steps=200,
        batch_size=1, lr=3e-3,
    )  # fmt: skip
    trainer = RewardModelTrainer(RewardEnsemble(sigmoid_spec, seed=0), settings)
    assert trainer._winners(labels) == ["3", "4"]
    assert RewardModelTrainer(RewardEnsemble(sigmoid_spec, seed=0))._winners(labels) == []
    trainer.add_labels(labels, samples)
    trainer.train()
    member = trainer.ensemble.members[0].eval()
    batch = stack_samples([samples[k] for k in ("3", "4", "7", "8")])
    with torch.no_grad():
        log_lik = member.answer_log_likelihood(
            member.features(batch.image, batch.prompt), batch.response
        ).numpy()
    r = trainer.rewards([samples[k] for k in ("3", "4", "7", "8")]).mean(0).numpy()
    assert np.exp(log_lik[:2]).sum() > 0.9, log_lik  # the two shown right share the scene
    assert np.all(r[:2, None] > r[None, 2:] + 1.0), r
    assert np.all(r[2:] < 0.0), r  # unnamed answers below even odds


def test_the_winner_term_options_are_checked() -> None:
    with pytest.raises(ValueError, match="winners must be one of"):
        TrainerSettings(winners="all")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="rm_winner_weight=0 turns off"):
        FeedbackConfig(source="reward_model", rm_head="answer_sigmoid", rm_winner_softmax=True)
    with pytest.raises(ValueError, match="rm_winner_weight=0 turns off"):
        FeedbackConfig(source="reward_model", rm_head="answer_sigmoid", rm_winners="judged_good")
    cfg = FeedbackConfig(
        source="reward_model", rm_head="answer_sigmoid", rm_winner_weight=1.0,
        rm_winner_softmax=True, rm_winners="judged_good",
    )  # fmt: skip
    settings = trainer_settings(cfg)
    assert (settings.winner_softmax, settings.winners) == (True, "judged_good")
    compare = RewardEnsemble(answer_head_spec("compare"), seed=0).members[0]
    batch = stack_samples([make_sample("a")])
    with pytest.raises(ValueError, match="needs an answer head"):
        compare.answer_log_likelihood(compare.features(batch.image, batch.prompt), batch.response)


def test_the_winner_term_switches_at_the_final_refit(
    sigmoid_spec: RewardModelSpec, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`winner_term_from="final_refit"`: the strict own-odds term while labels come (refits on
    the way included), the softmax over judged-good episodes from the refit after the last
    label on, settling passes included."""
    calls: list[int] = []
    softmax = RewardModel.answer_log_likelihood

    def spy(
        self: RewardModel, features: torch.Tensor, response: torch.Tensor, *args: object
    ) -> torch.Tensor:
        calls.append(len(features))
        return softmax(self, features, response, *args)  # type: ignore[arg-type]

    monkeypatch.setattr(RewardModel, "answer_log_likelihood", spy)
    samples = {f"{r}": make_sample(f"{r}", seed=r, response=r) for r in (3, 4, 5, 6, 7, 8)}
    tie = PreferenceLabel("3", "4", 0.5, tie="both_good")
    settings = TrainerSettings(
        winner_weight=1.0, winner_softmax=True, winners="judged_good",
        winner_term_from="final_refit", refit_growth=2.0, refit_epochs=1.0, min_steps=2,
        max_steps=2, batch_size=4,
    )  # fmt: skip
    trainer = RewardModelTrainer(RewardEnsemble(sigmoid_spec, seed=0), settings)
    trainer.add_labels([tie, PreferenceLabel("5", "6", 1.0)], samples)
    trainer.set_anchor()
    assert trainer.train()["refit"] is True  # a refit, but labels may still come
    assert trainer.winner_form() == (False, "strict")
    assert trainer._winners([tie]) == [] and calls == []
    trainer.add_labels([PreferenceLabel("8", "7", 0.0)], samples)
    assert trainer.train(final=True)["refit"] is True
    assert trainer.final_refitted and trainer.winner_form() == (True, "judged_good")
    assert trainer._winners([tie]) == ["3", "4"] and calls
    fitted = len(calls)
    trainer.train()  # settling passes keep the final form
    assert len(calls) > fitted
    # "start" (the default) uses the settings' form from the first fit
    eager = RewardModelTrainer(
        RewardEnsemble(sigmoid_spec, seed=0),
        TrainerSettings(winner_weight=1.0, winner_softmax=True, winners="judged_good"),
    )
    assert eager.winner_form() == (True, "judged_good")


def test_the_final_refit_switch_is_checked() -> None:
    base = {
        "source": "reward_model", "rm_head": "answer_sigmoid", "rm_winner_weight": 1.0,
        "label_budget": 100,
    }  # fmt: skip
    with pytest.raises(ValueError, match="winner_term_from must be one of"):
        TrainerSettings(winner_term_from="later")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="nothing to switch to"):
        FeedbackConfig(**base, rm_winner_term_from="final_refit", rm_refit_growth=2.0)
    with pytest.raises(ValueError, match="needs refits"):
        FeedbackConfig(**base, rm_winner_term_from="final_refit", rm_winner_softmax=True)
    with pytest.raises(ValueError, match="and a label_budget"):
        FeedbackConfig(
            **{**base, "label_budget": None}, rm_winner_term_from="final_refit",
            rm_winner_softmax=True, rm_refit_growth=2.0,
        )  # fmt: skip
    cfg = FeedbackConfig(
        **base, rm_winner_term_from="final_refit", rm_winner_softmax=True, rm_refit_growth=2.0
    )
    assert trainer_settings(cfg).winner_term_from == "final_refit"
    # the same settings with the oracle rater as the source (bench_rlhf.py's oracle run of
    # rlhf_vqa.yaml): no reward model, no budget, nothing to check
    FeedbackConfig(
        **{**base, "source": "rater", "label_budget": None}, rater="oracle",
        rm_winner_term_from="final_refit", rm_winner_softmax=True, rm_refit_growth=2.0,
    )  # fmt: skip
