"""Reward-model ensemble, checkpoints, publication, running normalisation, evaluation."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch

from mmrlhf.feedback.config import FeedbackConfig
from mmrlhf.feedback.pairs import load_pairs, oracle_pairs, save_pairs
from mmrlhf.feedback.preferences import PreferenceLabel
from mmrlhf.feedback.reward_model import (
    PublishedRewardModel,
    RewardEnsemble,
    RewardModelSpec,
    load_reward_model,
    save_reward_model,
)
from mmrlhf.feedback.rlhf import RLHFState
from mmrlhf.feedback.samples import EpisodePool, stack_samples
from mmrlhf.feedback.scoring import RewardScorer, RunningMeanStd
from mmrlhf.trainers.reward_model import evaluate_reward_model, make_pairs
from tests.rlhf.conftest import TINY_RM, make_sample


def test_ensemble_shapes_seeding_and_uncertainty(tiny_spec: RewardModelSpec) -> None:
    batch = stack_samples([make_sample(f"e{i}", seed=i) for i in range(5)])
    ens = RewardEnsemble(tiny_spec, seed=3)
    assert ens(batch).shape == (2, 5)
    mean, std = ens.predict(batch)
    assert mean.shape == std.shape == (5,) and bool((std >= 0).all())
    same = RewardEnsemble(tiny_spec, seed=3)
    assert torch.equal(same(batch), ens(batch))
    assert not torch.equal(RewardEnsemble(tiny_spec, seed=4)(batch), ens(batch))
    # the response matters: same image and prompt, another answer, another reward
    other = stack_samples([make_sample(f"e{i}", seed=i, response=5) for i in range(5)])
    assert not torch.allclose(ens(other), ens(batch))


def test_checkpoint_round_trip(tmp_path: Path, tiny_spec: RewardModelSpec) -> None:
    ens = RewardEnsemble(tiny_spec, seed=1)
    save_reward_model(tmp_path / "rm", ens, version=4, norm=(0.5, 2.0), extra={"labels": 9})
    loaded, meta = load_reward_model(tmp_path / "rm")
    batch = stack_samples([make_sample("a"), make_sample("b", seed=1)])
    assert torch.allclose(loaded(batch), ens.eval()(batch))
    assert meta["version"] == 4 and meta["norm"] == [0.5, 2.0] and meta["labels"] == 9
    with pytest.raises(FileNotFoundError):
        load_reward_model(tmp_path / "missing")


def test_running_mean_std_and_prior() -> None:
    stats = RunningMeanStd()
    for x in [1.0, 2.0, 3.0, 4.0]:
        stats.update(x)
    assert stats.mean == pytest.approx(2.5) and stats.var == pytest.approx(1.25)
    stats.reset(mean=10.0, std=2.0, count=3)
    stats.update(14.0)  # (3 * 10 + 14) / 4 = 11
    assert stats.mean == pytest.approx(11.0)
    assert stats.normalize(11.0 + 100 * stats.std, clip=5.0) == 5.0


def test_scorer_loads_only_newer_versions_and_normalises(tiny_spec: RewardModelSpec) -> None:
    ens = RewardEnsemble(tiny_spec, seed=0)
    scorer = RewardScorer(clip=5.0, prior_count=10)
    assert not scorer.ready
    with pytest.raises(RuntimeError):
        scorer.score(make_sample("x"))
    v1 = PublishedRewardModel(2, tiny_spec.to_dict(), ens.weights(), norm_mean=0.0, norm_std=1.0)
    assert scorer.load(v1) and scorer.version == 2
    older = PublishedRewardModel(1, tiny_spec.to_dict(), ens.weights())
    assert not scorer.load(older) and scorer.version == 2
    reward, raw, std = scorer.score(make_sample("x"))
    expected_raw = float(ens.predict(stack_samples([make_sample("x")]))[0][0])
    assert raw == pytest.approx(expected_raw, abs=1e-6) and std >= 0
    # prior of 10 at mean 0, std 1, then one observation `raw`
    assert scorer.stats.count == 11 and reward == pytest.approx(
        (raw - scorer.stats.mean) / scorer.stats.std
    )


def test_state_publishes_versions_and_measures_held_out_accuracy(
    tiny_spec: RewardModelSpec,
) -> None:
    cfg = FeedbackConfig(enabled=True, source="reward_model", queries_per_iter=8,
                         rm_min_steps=5, rm_max_steps=5, **TINY_RM)  # fmt: skip
    state = RLHFState(cfg)
    assert state.latest() is None and state.step(1)["version"] == 0  # no model, no episodes
    for it in range(1, 4):
        state.add_episodes(
            [make_sample(f"{it}-{i}", score=float(i % 2), seed=i) for i in range(30)], tiny_spec
        )
        out = state.step(it)
        assert out["published"] and out["version"] == it
    published = state.latest(0)
    assert published is not None and published.version == 3 and state.latest(3) is None
    assert published.labels == 24 and published.norm_std > 0
    stats = state.stats()
    assert stats["labels"] == 24 and stats["rm_version"] == 3 and stats["queries"] == 24
    assert 0.0 <= stats["rm_accuracy"] <= 1.0 and math.isfinite(stats["rm_loss"])
    with pytest.raises(ValueError, match="spec"):
        state.ensure_model(RewardModelSpec(**{**tiny_spec.to_dict(), "image_size": 8}))


def test_pool_keeps_the_most_recent() -> None:
    pool = EpisodePool(3)
    pool.add([make_sample(f"e{i}") for i in range(5)])
    assert [s.episode_id for s in pool.samples()] == ["e2", "e3", "e4"]
    assert "e0" not in pool and pool.received == 5
    with pytest.raises(ValueError):
        EpisodePool(0)


def test_pairs_file_and_evaluate_reward_model(tmp_path: Path, tiny_spec: RewardModelSpec) -> None:
    env = {"task": "vqa", "image_size": 16, "num_objects": 1, "question_types": ("shape",)}
    samples, labels = oracle_pairs(env, 6, seed=3, response_len=2)
    assert all(isinstance(lab, PreferenceLabel) and lab.p_a in (0.0, 1.0) for lab in labels)
    by_id = {s.episode_id: s for s in samples}
    for lab in labels:  # same scene and question, different scores
        a, b = by_id[lab.a], by_id[lab.b]
        assert np.array_equal(a.image, b.image) and np.array_equal(a.prompt_ids, b.prompt_ids)
        assert (a.score > b.score) == (lab.p_a == 1.0)
    path = save_pairs(tmp_path / "pairs.npz", samples, labels)
    loaded_samples, loaded_labels = load_pairs(path)
    assert [lab.p_a for lab in loaded_labels] == [lab.p_a for lab in labels]
    assert len(loaded_samples) == 12

    from mmrlhf.envs import MyMultimodalEnv

    vocab = MyMultimodalEnv(env).tokenizer.vocab_size
    spec = RewardModelSpec(**{**tiny_spec.to_dict(), "prompt_len": 32, "vocab_size": vocab})
    save_reward_model(tmp_path / "rm", RewardEnsemble(spec), version=2)
    from_file = evaluate_reward_model(tmp_path / "rm", path, n_pairs=4)
    assert from_file["pairs"] == 4 and 0.0 <= from_file["preference_accuracy"] <= 1.0
    assert from_file["version"] == 2
    made = make_pairs(env, tmp_path / "more.npz", n_pairs=5, response_len=2)
    assert made["pairs"] == 5
    from_env = evaluate_reward_model(tmp_path / "rm", env, n_pairs=5)
    assert from_env["pairs"] == 5
    swap = evaluate_reward_model(tmp_path / "rm", env, n_pairs=5, distractor="swap")
    assert swap["pairs"] == 5 and swap["distractor"] == "swap"


def test_swap_pairs_answer_the_same_question_for_another_image() -> None:
    from mmrlhf.envs.scenes import COLORS, SHAPES

    env = {"task": "vqa", "image_size": 16, "num_objects": 2, "question_types": ("color", "shape")}
    samples, labels = oracle_pairs(env, 20, seed=5, response_len=2, distractor="swap")
    by_id = {s.episode_id: s for s in samples}
    for lab in labels:
        better, worse = (lab.a, lab.b) if lab.p_a == 1.0 else (lab.b, lab.a)
        right, wrong = by_id[better], by_id[worse]
        assert np.array_equal(right.image, wrong.image) and right.prompt == wrong.prompt
        assert (right.score, wrong.score) == (1.0, 0.0)
        # The wrong answer is a sensible one: the same kind of word as the right answer.
        kind = COLORS if right.response in COLORS else SHAPES
        assert right.response in kind and wrong.response in kind
        assert wrong.response != right.response
    # Position carries no signal: the better answer comes first about half the time.
    assert 5 <= sum(lab.p_a == 1.0 for lab in labels) <= 15
    with pytest.raises(ValueError, match="distractor must be one of"):
        oracle_pairs(env, 2, distractor="other")  # type: ignore[arg-type]
