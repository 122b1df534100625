"""GAE's value pass reuses the values the EnvRunners computed while acting, and gets the same
advantages as encoding the batch again."""

from __future__ import annotations

from typing import Any

import pytest
import torch
from ray.rllib.core.columns import Columns
from ray.rllib.evaluation.postprocessing import Postprocessing

from mmrlhf.config import ExperimentConfig
from mmrlhf.trainers.ppo import build_ppo_config
from tests.tiny import learner_batch


def _learner_batch(learner: Any, episodes: list[Any], reuse: bool) -> dict[str, Any]:
    learner.module["default_policy"].unwrapped().reuse_sampled_values = reuse
    return learner_batch(learner, episodes)


@pytest.mark.ray
@pytest.mark.parametrize("task", ["vqa", "caption"])
def test_reused_values_give_the_advantages_of_a_fresh_value_pass(
    ray_session: None, tiny_cfg: ExperimentConfig, task: str
) -> None:
    """After real updates (the EnvRunner's weights re-synced), one-step vqa and multi-step
    caption (chunked episodes, whose bootstrap rows still need a forward pass) agree."""
    cfg = tiny_cfg.with_overrides({"env.task": task, "training.num_env_runners": 1})
    algo = build_ppo_config(cfg).build_algo()
    try:
        for _ in range(2):
            algo.train()
        learner = algo.learner_group._learner
        assert learner.module["default_policy"].unwrapped().reuse_sampled_values
        (episodes,) = algo.env_runner_group.foreach_env_runner(
            lambda runner: runner.sample(), local_env_runner=False
        )
        assert all(Columns.VF_PREDS in e.extra_model_outputs for e in episodes)
        reused = _learner_batch(learner, episodes, reuse=True)
        fresh = _learner_batch(learner, episodes, reuse=False)
    finally:
        algo.stop()
    for key in (Postprocessing.VALUE_TARGETS, Postprocessing.ADVANTAGES):
        torch.testing.assert_close(reused[key], fresh[key], rtol=1e-4, atol=1e-4)
