"""One PPO iteration on MyMultimodalEnv through RLlib's registry, with a minimal RLModule.

The real policy network is `mmrlhf.models.MultimodalModel`; this module is deliberately tiny so
the test checks only that the env plugs into RLlib (registry name, Dict spaces, env_config).
"""

from __future__ import annotations

from typing import Any

import pytest
import torch
from torch import nn

pytestmark = pytest.mark.ray

from ray.rllib.core.columns import Columns  # noqa: E402
from ray.rllib.core.rl_module.apis import ValueFunctionAPI  # noqa: E402
from ray.rllib.core.rl_module.rl_module import RLModuleSpec  # noqa: E402
from ray.rllib.core.rl_module.torch import TorchRLModule  # noqa: E402
from ray.rllib.utils.annotations import override  # noqa: E402


class TinyModule(TorchRLModule, ValueFunctionAPI):
    """Mean colour of the image + bag of words of the text -> logits and value."""

    @override(TorchRLModule)
    def setup(self) -> None:
        vocab = int(self.observation_space["text"].high.max()) + 1
        self.embed = nn.EmbeddingBag(vocab, 16, mode="mean", padding_idx=0)
        self.body = nn.Sequential(nn.Linear(16 + 3, 32), nn.Tanh())
        self.pi = nn.Linear(32, self.action_space.n)
        self.vf = nn.Linear(32, 1)

    def _features(self, batch: dict[str, Any]) -> torch.Tensor:
        obs = batch[Columns.OBS]
        image = obs["image"].float().mean(dim=(1, 2)) / 255.0
        return self.body(torch.cat([self.embed(obs["text"].long()), image], dim=-1))

    @override(TorchRLModule)
    def _forward(self, batch: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
        return {Columns.ACTION_DIST_INPUTS: self.pi(self._features(batch))}

    @override(ValueFunctionAPI)
    def compute_values(self, batch: dict[str, Any], embeddings: Any = None) -> torch.Tensor:
        return self.vf(self._features(batch)).squeeze(-1)


@pytest.mark.parametrize("task", ["vqa", "caption"])
def test_one_ppo_iteration(ray_session: None, task: str) -> None:
    from ray.rllib.algorithms.ppo import PPOConfig

    import mmrlhf  # noqa: F401  (registers "MyMultimodalEnv")

    config = (
        PPOConfig()
        .environment("MyMultimodalEnv", env_config={"task": task, "image_size": 32})
        .env_runners(num_env_runners=0, rollout_fragment_length=64)
        .training(train_batch_size_per_learner=64, minibatch_size=32, num_epochs=1)
        .rl_module(rl_module_spec=RLModuleSpec(module_class=TinyModule))
    )
    algo = config.build_algo()
    try:
        result = algo.train()
    finally:
        algo.stop()
    runners = result["env_runners"]
    assert runners["num_env_steps_sampled"] >= 64
    assert runners["num_episodes"] > 0
