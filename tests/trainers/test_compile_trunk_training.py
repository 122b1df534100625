"""PPO trains with `model.compile_trunk`: sampling and the Learner run the compiled trunk."""

from __future__ import annotations

import math

import pytest

from mmrlhf.config import ExperimentConfig
from mmrlhf.trainers.metrics import summarize
from mmrlhf.trainers.ppo import build_ppo_config


@pytest.mark.ray
def test_ppo_trains_with_a_compiled_trunk(
    ray_session: None, tiny_cfg: ExperimentConfig
) -> None:
    """Multi-step caption episodes in the driver: the live rows per step vary, so the
    sampling trunk sees several batch sizes, besides the Learner's minibatches."""
    cfg = tiny_cfg.with_overrides(
        {"env.task": "caption", "training.num_env_runners": 0, "model.compile_trunk": True}
    )
    algo = build_ppo_config(cfg).build_algo()
    try:
        for _ in range(2):
            result = algo.train()
        row = summarize(result)
        loss = result["learners"]["default_policy"]["total_loss"]
        sampler = algo.env_runner_group.local_env_runner.module
        learner = algo.learner_group._learner.module["default_policy"].unwrapped()
    finally:
        algo.stop()
    assert row["env_steps"] >= 2 * cfg.training.train_batch_size
    assert math.isfinite(float(loss))
    for module in (sampler, learner):
        assert "_compiled_trunk" in module.__dict__
        assert module._trunk is not module._run_trunk
