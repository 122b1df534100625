"""Contrastive pretraining of the reward model on unlabelled episodes (semi-supervised RLHF)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from mmrlhf.feedback.config import FeedbackConfig
from mmrlhf.feedback.pairs import random_episodes
from mmrlhf.feedback.reward_model import RewardEnsemble, RewardModelSpec
from mmrlhf.feedback.rlhf import RLHFState
from mmrlhf.feedback.rm_trainer import RewardModelTrainer, TrainerSettings
from mmrlhf.feedback.samples import EpisodeSample, stack_samples
from mmrlhf.trainers.reward_model import train_reward_model
from tests.rlhf.conftest import IMAGE, PROMPT_LEN, TINY_RM, make_sample

# Four flat colours; the prompt names the colour of its image (token 1 + colour index).
COLOURS = np.array([[220, 40, 40], [40, 190, 60], [40, 80, 220], [230, 210, 40]], np.uint8)


def named_colour_samples(n: int, seed: int) -> list[EpisodeSample]:
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        c = int(rng.integers(len(COLOURS)))
        noise = rng.integers(-20, 21, (IMAGE, IMAGE, 3))
        image = np.clip(COLOURS[c].astype(int) + noise, 0, 255).astype(np.uint8)
        prompt = np.zeros(PROMPT_LEN, np.int64)
        prompt[:2] = [1 + c, 9]
        out.append(EpisodeSample(f"s{seed}-{i}", image, prompt, np.zeros(2, np.int64), 0.0))
    return out


def retrieval_accuracy(trainer: RewardModelTrainer, samples: list[EpisodeSample]) -> float:
    """How often each member's image embedding is closest to its own colour's prompt."""
    batch = stack_samples(samples)
    prompts = torch.zeros(len(COLOURS), PROMPT_LEN, dtype=torch.long)
    prompts[:, 0] = torch.arange(1, len(COLOURS) + 1)
    prompts[:, 1] = 9
    truth = batch.prompt[:, 0] - 1
    hits = []
    with torch.no_grad():
        for member in trainer.ensemble.members:
            image, _ = member.embeddings(batch.image, batch.prompt)
            _, text = member.embeddings(batch.image[: len(COLOURS)], prompts)
            sims = torch.nn.functional.normalize(image, dim=-1) @ torch.nn.functional.normalize(
                text, dim=-1
            ).T
            hits.append((sims.argmax(dim=-1) == truth).float().mean())
    return float(torch.stack(hits).mean())


def test_pretraining_teaches_the_encoders_what_prompts_name(tiny_spec: RewardModelSpec) -> None:
    trainer = RewardModelTrainer(
        RewardEnsemble(tiny_spec, seed=0), TrainerSettings(lr=3e-3, contrastive_batch=32)
    )
    heads = {k: v.clone() for k, v in trainer.ensemble.state_dict().items() if ".head." in k}
    unlabeled, held_out = named_colour_samples(256, seed=1), named_colour_samples(128, seed=2)
    before = retrieval_accuracy(trainer, held_out)
    first = trainer.pretrain(unlabeled, 5)["contrastive_loss"]
    last = trainer.pretrain(unlabeled, 75)["contrastive_loss"]
    after = retrieval_accuracy(trainer, held_out)
    assert last < first
    assert after >= 0.9 > before + 0.3
    assert trainer.pretrain_steps == 80 and trainer.steps == 0  # no label steps counted
    # Only the encoders learn: the reward heads get no gradient, so not even weight decay.
    for k, v in trainer.ensemble.state_dict().items():
        if ".head." in k:
            assert torch.equal(v, heads[k]), k


def test_pretraining_needs_two_episodes_and_a_valid_batch(tiny_spec: RewardModelSpec) -> None:
    trainer = RewardModelTrainer(RewardEnsemble(tiny_spec, seed=0))
    with pytest.raises(ValueError, match="needs >= 2 episodes, got 1"):
        trainer.pretrain([make_sample("a")], 1)
    with pytest.raises(ValueError, match="contrastive_batch >= 2"):
        TrainerSettings(contrastive_batch=1)
    with pytest.raises(ValueError, match="contrastive_temperature > 0"):
        TrainerSettings(contrastive_temperature=0.0)


def test_state_spreads_pretraining_over_steps_once_the_pool_is_full_enough(
    tiny_spec: RewardModelSpec,
) -> None:
    cfg = FeedbackConfig(
        enabled=True, source="reward_model", rm_pretrain_steps=5, rm_pretrain_per_iter=2,
        rm_pretrain_min_pool=10, rm_contrastive_batch=4, queries_per_iter=0, **TINY_RM,
    )  # fmt: skip
    state = RLHFState(cfg)
    state.add_episodes([make_sample(f"a{i}", seed=i) for i in range(8)], tiny_spec)
    state.step(1)
    assert state.stats()["rm_pretrain_steps"] == 0  # 8 < 10 episodes: wait for more
    done = []
    for it in range(2, 6):
        state.add_episodes([make_sample(f"{it}-{i}", seed=i) for i in range(4)])
        state.step(it)
        done.append(state.stats()["rm_pretrain_steps"])
    assert done == [2, 4, 5, 5]
    assert np.isfinite(state.stats()["rm_contrastive_loss"])
    assert state.version == 0  # no labels yet: nothing to publish


def test_offline_training_pretrains_on_pairs_and_extra_episodes(tmp_path: Path) -> None:
    env = {"task": "vqa", "image_size": 16, "num_objects": 1, "question_types": ["color"]}
    extra = random_episodes(env, 6, seed=2, response_len=2)
    assert len({s.episode_id for s in extra}) == 6
    assert all(s.image.shape == (16, 16, 3) for s in extra)
    cfg = FeedbackConfig(rm_pretrain_steps=3, rm_contrastive_batch=8, rm_min_steps=1,
                         rm_max_steps=1, **TINY_RM)  # fmt: skip
    summary = train_reward_model(env, tmp_path / "rm", feedback=cfg, n_pairs=4, rounds=1,
                                 unlabeled=6)  # fmt: skip
    assert summary["pretrain_steps"] == 3 and summary["pairs"] == 4


def test_a_loaded_checkpoint_keeps_its_pretraining_count(
    tmp_path: Path, tiny_spec: RewardModelSpec
) -> None:
    cfg = FeedbackConfig(
        enabled=True, source="reward_model", rm_pretrain_steps=3, rm_pretrain_per_iter=3,
        rm_pretrain_min_pool=4, rm_contrastive_batch=4, queries_per_iter=2, rm_min_steps=1,
        rm_max_steps=1, rm_save_dir=str(tmp_path / "rm"), **TINY_RM,
    )  # fmt: skip
    state = RLHFState(cfg)
    state.add_episodes([make_sample(f"e{i}", score=i / 7, seed=i) for i in range(8)], tiny_spec)
    state.step(1)
    assert state.version == 1 and state.stats()["rm_pretrain_steps"] == 3
    resumed = RLHFState(cfg.model_copy(update={"rm_checkpoint": str(tmp_path / "rm")}))
    assert resumed.stats()["rm_pretrain_steps"] == 3
    resumed.add_episodes([make_sample(f"n{i}", seed=i) for i in range(8)])
    resumed.pretrain_round()
    assert resumed.stats()["rm_pretrain_steps"] == 3  # nothing left to do
