"""Image-contrasted rewards (`feedback.contrast`): the prompt baseline, its use and transport."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from pydantic import ValidationError

from mmrlhf.feedback.audit import greedy_answers
from mmrlhf.feedback.config import FeedbackConfig
from mmrlhf.feedback.contrast import (
    PromptBaseline,
    contrasted_rewards,
    ensemble_per_word,
    load_prompt_baseline,
)
from mmrlhf.feedback.reward_model import (
    PublishedRewardModel,
    RewardEnsemble,
    RewardModelSpec,
    save_reward_model,
)
from mmrlhf.feedback.rlhf import RLHFState
from mmrlhf.feedback.samples import EpisodeSample, stack_samples
from mmrlhf.feedback.scoring import RewardScorer
from tests.rlhf.conftest import TINY_RM, VOCAB, make_sample


def _samples(prompt: int, n: int, seed0: int, response: int = 3) -> list[EpisodeSample]:
    """n episodes of one prompt on n images, right and wrong in turn."""
    return [make_sample(f"p{prompt}-{seed0 + i}", float(i % 2), prompt=prompt,
                        response=response, seed=seed0 + i) for i in range(n)]  # fmt: skip


def _hub_config(**overrides: object) -> FeedbackConfig:
    """A tiny sigmoid-head hub with the contrast on, one training step per publication."""
    return FeedbackConfig(
        enabled=True, source="reward_model", rm_head="answer_sigmoid", rm_min_steps=1,
        rm_max_steps=1, rm_image_contrast=1.0, rm_contrast_images=8, **TINY_RM, **overrides,
    )  # fmt: skip


def test_the_baseline_is_each_prompts_mean_over_its_distinct_images(
    sigmoid_spec: RewardModelSpec,
) -> None:
    ens = RewardEnsemble(sigmoid_spec, seed=0)
    one = _samples(1, 5, seed0=0)
    # A repeated image counts once; prompt 2 has too few distinct images for a baseline.
    repeat = make_sample("again", prompt=1, response=9, seed=4)
    two = _samples(2, 2, seed0=100)
    baseline = PromptBaseline.fit(ens, [*one, repeat, *two], weight=1.0, min_images=3)
    assert set(baseline.table) == {one[0].prompt_key}
    expected = ensemble_per_word(ens, one).mean(dim=1)
    assert baseline.table[one[0].prompt_key].shape == (2, VOCAB)
    torch.testing.assert_close(baseline.table[one[0].prompt_key], expected)
    # At most max_images, the most recent first.
    capped = PromptBaseline.fit(ens, one, weight=1.0, min_images=2, max_images=2)
    torch.testing.assert_close(
        capped.table[one[0].prompt_key], ensemble_per_word(ens, one[-2:]).mean(dim=1)
    )


def test_contrasted_rewards_subtract_the_baseline_per_token_and_member(
    sigmoid_spec: RewardModelSpec,
) -> None:
    ens = RewardEnsemble(sigmoid_spec, seed=1)
    pool = _samples(1, 6, seed0=0)
    baseline = PromptBaseline.fit(ens, pool, weight=0.5, min_images=2)
    base = baseline.table[pool[0].prompt_key]  # (members, V)
    two_words = EpisodeSample("two", pool[0].image, pool[0].prompt_ids,
                              np.array([4, 7], np.int64), 0.0)  # fmt: skip
    elsewhere = make_sample("other prompt", prompt=2, response=5, seed=50)  # no baseline
    got = contrasted_rewards(ens, [two_words, elsewhere], baseline)
    per_word = ensemble_per_word(ens, [two_words, elsewhere])
    want_two = ((per_word[:, 0, 4] - 0.5 * base[:, 4]) + (per_word[:, 0, 7] - 0.5 * base[:, 7])) / 2
    torch.testing.assert_close(got[:, 0], want_two)
    torch.testing.assert_close(got[:, 1], per_word[:, 1, 5])
    # Without a baseline the rewards are the ensemble's own.
    plain = contrasted_rewards(ens, [two_words, elsewhere], PromptBaseline())
    torch.testing.assert_close(plain, ens.eval()(stack_samples([two_words, elsewhere])))


def test_with_weight_one_every_answer_averages_zero_over_the_baselines_images(
    sigmoid_spec: RewardModelSpec,
) -> None:
    """What the prompt alone predicts is gone: over the images the baseline averaged, the
    contrasted reward of any answer has mean zero, however the model rates it."""
    ens = RewardEnsemble(sigmoid_spec, seed=2)
    images = _samples(1, 8, seed0=10)
    baseline = PromptBaseline.fit(ens, images, weight=1.0, min_images=8)
    for answer in (3, 11, 17):
        answered = [
            EpisodeSample(s.episode_id, s.image, s.prompt_ids, np.array([answer, 0]), 0.0)
            for s in images
        ]
        rewards = contrasted_rewards(ens, answered, baseline)
        assert rewards.mean(dim=1).abs().max() < 1e-5
        assert rewards.abs().max() > 1e-4  # images still differ


def test_checkpoints_and_published_models_carry_the_baseline(
    tmp_path: Path, sigmoid_spec: RewardModelSpec
) -> None:
    ens = RewardEnsemble(sigmoid_spec, seed=0)
    pool = _samples(1, 4, seed0=0)
    baseline = PromptBaseline.fit(ens, pool, weight=1.0, min_images=4)
    save_reward_model(tmp_path / "with", ens, prompt_baseline=baseline.to_state())
    save_reward_model(tmp_path / "without", ens)
    loaded = load_prompt_baseline(tmp_path / "with")
    assert loaded.weight == 1.0 and loaded.active
    torch.testing.assert_close(loaded.table[pool[0].prompt_key], baseline.table[pool[0].prompt_key])
    assert not load_prompt_baseline(tmp_path / "without").active
    with pytest.raises(ValueError, match="table maps prompt keys"):
        PromptBaseline.from_state({"weight": 1.0, "table": [1, 2]})

    scorer = RewardScorer(clip=50.0, prior_count=1)
    scorer.load(PublishedRewardModel(1, sigmoid_spec.to_dict(), ens.weights(),
                                     prompt_baseline=baseline.to_state()))  # fmt: skip
    _, raw, std = scorer.score(pool[0])
    rewards = contrasted_rewards(ens, [pool[0]], baseline)[:, 0]
    assert raw == pytest.approx(float(rewards.mean()), abs=1e-6)
    assert std == pytest.approx(float(rewards.std(unbiased=False)), abs=1e-6)


def test_greedy_answers_rank_the_contrasted_rewards(sigmoid_spec: RewardModelSpec) -> None:
    """A baseline that makes one answer cheap everywhere puts it on top of every scene."""
    from mmrlhf.envs import MyMultimodalEnv

    env = MyMultimodalEnv({"task": "vqa", "image_size": 16, "max_text_len": 6})
    spec = RewardModelSpec(**{**sigmoid_spec.to_dict(), "vocab_size": env.tokenizer.vocab_size})
    ens = RewardEnsemble(spec, seed=0)
    obs, _ = env.reset(seed=60_000)
    truth = env.tokenizer.encode(str(env.step(0)[4]["ground_truth"]), 1)[0]
    key = EpisodeSample("k", obs["image"], obs["text"], np.zeros(2, np.int64), 0.0).prompt_key
    table = torch.zeros(len(ens), spec.vocab_size)
    table[:, truth] = -1e3  # the right answer's baseline: far below every other word's
    report = greedy_answers(env, ens, episodes=1, baseline=PromptBaseline(1.0, {key: table}))
    assert report.accuracy == 1.0


def test_reward_model_eval_reports_the_contrasted_and_the_plain_ceiling(tmp_path: Path) -> None:
    from mmrlhf.envs import MyMultimodalEnv
    from mmrlhf.feedback.rlhf import make_spec
    from mmrlhf.feedback.samples import encode_response
    from mmrlhf.trainers.reward_model import evaluate_reward_model

    env_cfg = {"task": "vqa", "num_objects": 1, "question_types": ["color"], "image_size": 16}
    env = MyMultimodalEnv(env_cfg)
    cfg = FeedbackConfig(enabled=True, source="reward_model", rm_head="answer_sigmoid", **TINY_RM)
    spec = make_spec(cfg, image_size=16, prompt_len=env.cfg.max_text_len,
                     vocab_size=env.tokenizer.vocab_size)  # fmt: skip
    ens = RewardEnsemble(spec, seed=3)
    pool = []
    for ep in range(40):
        obs, _ = env.reset(seed=ep)
        info = env.step(0)[4]
        response = encode_response(env.tokenizer, str(info["response"]), spec.response_len)
        pool.append(EpisodeSample(str(ep), obs["image"], obs["text"], response, 0.0))
    baseline = PromptBaseline.fit(ens, pool, weight=1.0, min_images=4)
    assert baseline.active
    save_reward_model(tmp_path / "rm", ens, prompt_baseline=baseline.to_state())
    metrics = evaluate_reward_model(tmp_path / "rm", env_cfg, 10, greedy_episodes=12)
    fresh = MyMultimodalEnv(env_cfg)
    contrasted = greedy_answers(fresh, ens, episodes=12, baseline=baseline).to_dict()
    plain = greedy_answers(fresh, ens, episodes=12).to_dict()
    assert metrics["greedy"]["mean_rank"] == pytest.approx(contrasted["mean_rank"])
    assert metrics["greedy_plain"]["mean_rank"] == pytest.approx(plain["mean_rank"])
    assert contrasted["mean_rank"] != pytest.approx(plain["mean_rank"])


def test_the_hub_publishes_a_baseline_once_the_pool_has_the_images(
    sigmoid_spec: RewardModelSpec,
) -> None:
    state = RLHFState(_hub_config(queries_per_iter=4, rm_contrast_min_images=6))
    state.add_episodes(_samples(1, 4, seed0=0), sigmoid_spec)
    state.step(1)
    first = state.latest(0)
    assert first is not None and first.prompt_baseline == {}  # 4 images: too few
    state.add_episodes(_samples(1, 4, seed0=200), sigmoid_spec)
    state.step(2)
    second = state.latest(1)
    assert second is not None
    baseline = PromptBaseline.from_state(second.prompt_baseline)
    assert baseline.weight == 1.0 and len(baseline.table) == 1
    # The published normalisation is of the contrasted rewards.
    ens = second.build()
    rewards = contrasted_rewards(ens, state.pool.samples(), baseline).mean(dim=0)
    assert second.norm_mean == pytest.approx(float(rewards.mean()), abs=1e-5)


def test_from_the_final_refit_the_contrast_waits_for_the_budget_to_be_spent(
    sigmoid_spec: RewardModelSpec,
) -> None:
    state = RLHFState(_hub_config(
        queries_per_iter=3, initial_queries=3, label_budget=9, rm_refit_growth=100.0,
        rm_refit_epochs=1.0, rm_contrast_from="final_refit", rm_contrast_min_images=4,
    ))  # fmt: skip
    contrasted, remaining = [], []
    for it in range(1, 5):
        state.add_episodes(_samples(1, 8, seed0=10 * it), sigmoid_spec)
        state.step(it)
        published = state.latest(0)
        assert published is not None
        contrasted.append(bool(published.prompt_baseline))
        remaining.append(state.stats()["labels_remaining"])
    # The step that spends the budget brings the final refit, and the contrast with it.
    spent = remaining.index(0)
    assert spent > 0 and contrasted == [i >= spent for i in range(4)]
    assert state.stats()["rm_final_refitted"] == 1


def test_contrast_settings_are_checked() -> None:
    with pytest.raises(ValidationError, match="rm_image_contrast.*answer head"):
        FeedbackConfig(enabled=True, source="reward_model", rm_image_contrast=1.0)
    with pytest.raises(ValidationError, match="rm_contrast_min_images"):
        FeedbackConfig(enabled=True, source="reward_model", rm_head="answer_sigmoid",
                       rm_image_contrast=1.0, rm_contrast_images=4, rm_contrast_min_images=8)
    with pytest.raises(ValidationError, match="rm_contrast_from='final_refit' needs refits"):
        FeedbackConfig(enabled=True, source="reward_model", rm_head="answer_sigmoid",
                       rm_image_contrast=1.0, rm_contrast_from="final_refit", label_budget=10)
    with pytest.raises(ValueError, match="min_images"):
        PromptBaseline.fit(RewardEnsemble(RewardModelSpec(16, 6, 2, VOCAB, {}), seed=0), [],
                           weight=1.0, min_images=0)
