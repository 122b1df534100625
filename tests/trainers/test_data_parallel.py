"""PPO with two Learner actors (data parallel): each takes half the batch, weights stay equal."""

from __future__ import annotations

from typing import Any

import pytest
import torch

from mmrlhf.config import load_config
from tests.conftest import TINY

pytestmark = pytest.mark.ray


def _weights(learner: Any) -> dict[str, torch.Tensor]:
    module = learner.module["default_policy"].unwrapped()
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


def _each_learner(algo: Any) -> list[dict[str, torch.Tensor]]:
    return [result.get() for result in algo.learner_group.foreach_learner(_weights)]


def test_two_learners_split_the_batch_and_stay_in_step(ray_session: None) -> None:
    from mmrlhf.trainers.ppo import build_ppo_config

    cfg = load_config(
        None,
        [*TINY, "training.num_env_runners=0", "training.num_learners=2", "training.num_epochs=2"],
    )
    algo = build_ppo_config(cfg).build_algo()
    try:
        before = _each_learner(algo)
        result = algo.train()
        after = _each_learner(algo)
        assert len(after) == 2
        # Averaged gradients: both Learners took the same step from the same start.
        for name, value in after[0].items():
            torch.testing.assert_close(value, after[1][name], msg=name)
        assert any(not torch.equal(after[0][k], before[0][k]) for k in after[0])
        # Together they trained on the whole batch, every epoch.
        sampled = result["env_runners"]["num_env_steps_sampled"]
        assert sampled == cfg.training.train_batch_size == 64  # the total, not per Learner
        trained = result["learners"]["default_policy"]["num_module_steps_trained"]
        assert trained == sampled * 2
        # The driver's sampling module has the Learners' weights.
        local = algo.get_module().state_dict()
        for name, value in after[0].items():
            torch.testing.assert_close(local[name], value, msg=name)
    finally:
        algo.stop()
