"""PPO (RLlib new API stack) trains MultimodalModel on the real env, locally and remotely."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from ray.rllib.algorithms.ppo import PPOConfig
from ray.rllib.core.columns import Columns
from ray.rllib.core.rl_module.rl_module import RLModule

from mmrlhf.models import ModelConfig, MultimodalModel, MultimodalPPOLearner, model_spec
from mmrlhf.models.learner import CONTRASTIVE_LOSS_KEY, WEIGHT_DECAY_CONFIG

envs = pytest.importorskip("mmrlhf.envs", reason="the env package is not there yet")

pytestmark = pytest.mark.ray

ENV_CONFIG = {"task": "vqa"}


def _ppo_config(cfg: ModelConfig, num_env_runners: int) -> PPOConfig:
    return (
        PPOConfig()
        .environment("MyMultimodalEnv", env_config=ENV_CONFIG)
        .env_runners(num_env_runners=num_env_runners, num_envs_per_env_runner=1)
        .rl_module(rl_module_spec=model_spec(cfg))
        .learners(learner_class=MultimodalPPOLearner)
        .training(train_batch_size=128, minibatch_size=64, num_epochs=1, lr=3e-4)
        .debugging(seed=0)
    )


def _env_batch(n: int = 6) -> dict[str, Any]:
    env = envs.MyMultimodalEnv(ENV_CONFIG)
    obs = [env.reset(seed=i)[0] for i in range(n)]
    return {
        Columns.OBS: {
            key: torch.from_numpy(np.stack([o[key] for o in obs])) for key in ("image", "text")
        }
    }


def _train_twice(algo: Any) -> list[dict[str, Any]]:
    results = [algo.train() for _ in range(2)]
    for result in results:
        learner = result["learners"]["default_policy"]
        assert math.isfinite(float(learner["total_loss"]))
        assert math.isfinite(float(learner["vf_loss"]))
        # vqa episodes are one step: PPO's artificial bootstrap rows are dropped before the
        # minibatches (DropBootstrapRows), so each epoch trains on the env steps sampled.
        sampled = result["env_runners"]["num_env_steps_sampled"]
        assert learner["num_module_steps_trained"] == sampled * algo.config.num_epochs
    assert results[-1]["env_runners"]["num_env_steps_sampled_lifetime"] >= 256
    return results


def test_ppo_local_env_runner_trains_and_checkpoints(ray_session: None, tmp_path: Path) -> None:
    algo = _ppo_config(ModelConfig(), num_env_runners=0).build_algo()
    try:
        _train_twice(algo)
        module = algo.get_module()
        assert isinstance(module, MultimodalModel)
        algo.save_to_path(tmp_path)
        # The documented path of the module inside an algorithm checkpoint.
        module_dir = tmp_path / "learner_group" / "learner" / "rl_module" / "default_policy"
        restored = RLModule.from_checkpoint(module_dir)
        batch = _env_batch()
        torch.testing.assert_close(
            restored.forward_inference(batch)[Columns.ACTION_DIST_INPUTS],
            module.forward_inference(batch)[Columns.ACTION_DIST_INPUTS],
        )
    finally:
        algo.stop()


def test_ppo_remote_env_runner_value_trunk_contrastive_loss_and_frozen_text(
    ray_session: None,
) -> None:
    cfg = ModelConfig(
        fusion="cross_attention", share_encoders=False, contrastive_weight=0.1, freeze_text=True
    )
    algo = _ppo_config(cfg, num_env_runners=1).build_algo()
    try:
        before = algo.learner_group.get_weights()["default_policy"]
        results = _train_twice(algo)
        contrastive = [r["learners"]["default_policy"][CONTRASTIVE_LOSS_KEY] for r in results]
        assert all(math.isfinite(float(c)) and float(c) > 0 for c in contrastive)
        # The remote EnvRunner's module is inference-only (no value trunk) and holds the
        # learner's latest weights.
        runner_state = algo.env_runner_group.foreach_env_runner(
            lambda runner: runner.module.get_state(),
            local_env_runner=False,
        )[0]
        learner_state = algo.learner_group.get_weights()["default_policy"]
        assert any(k.startswith("value_encoder") for k in learner_state)
        assert not any(k.startswith("value_encoder") for k in runner_state)
        for key, value in runner_state.items():
            np.testing.assert_array_equal(value, learner_state[key], err_msg=key)
        # The frozen text backbone did not move; the image encoder did.
        for prefix, moved in (("text_encoder.backbone.", False), ("image_encoder.", True)):
            keys = [k for k in before if k.startswith(prefix)]
            changed = [not np.array_equal(before[k], learner_state[k]) for k in keys]
            assert keys and (any(changed) if moved else not any(changed)), prefix
    finally:
        algo.stop()


def test_weight_decay_switches_the_optimizer_to_adamw(ray_session: None) -> None:
    config = _ppo_config(ModelConfig(), num_env_runners=0)
    algo = config.learners(learner_config_dict={WEIGHT_DECAY_CONFIG: 0.05}).build_algo()
    try:
        optimizer = algo.learner_group._learner.get_optimizer("default_policy")
        assert isinstance(optimizer, torch.optim.AdamW)
        assert optimizer.param_groups[0]["weight_decay"] == 0.05
        _train_twice(algo)
    finally:
        algo.stop()
    plain = _ppo_config(ModelConfig(), num_env_runners=0).build_algo()
    try:
        optimizer = plain.learner_group._learner.get_optimizer("default_policy")
        assert type(optimizer) is torch.optim.Adam
    finally:
        plain.stop()
