"""The policy's probability floor: a mixture with the uniform distribution."""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import pytest
import torch
from pydantic import ValidationError
from ray.rllib.core.columns import Columns

from mmrlhf.models import ModelConfig, MultimodalModel
from mmrlhf.models.heads import PolicyValueHeads
from tests.models.conftest import N_ACTIONS, make_obs_space


def test_every_action_keeps_its_share_and_the_greedy_action_stays() -> None:
    torch.manual_seed(0)
    plain = PolicyValueHeads(8, 8, 5, (16,))
    floored = PolicyValueHeads(8, 8, 5, (16,), floor=0.2)
    floored.load_state_dict(plain.state_dict())
    with torch.no_grad():
        plain.policy[-1].weight.mul_(500.0)  # a near-deterministic policy
        floored.policy[-1].weight.mul_(500.0)
        features = torch.randn(64, 8)
        raw, mixed = plain.logits(features), floored.logits(features)
    p = torch.softmax(raw, -1)
    q = mixed.exp()  # already log-probabilities
    assert torch.allclose(q.sum(-1), torch.ones(64), atol=1e-5)
    assert torch.allclose(q, 0.8 * p + 0.2 / 5, atol=1e-6)
    assert float(q.min()) >= 0.2 / 5 - 1e-7 and float(p.min()) < 1e-6
    assert torch.equal(raw.argmax(-1), mixed.argmax(-1))
    for bad in (-0.1, 1.0):
        with pytest.raises(ValueError, match="policy floor"):
            PolicyValueHeads(8, 8, 5, (16,), floor=bad)


def test_the_model_samples_and_trains_with_the_floor(batch: dict[str, Any]) -> None:
    torch.manual_seed(0)
    cfg = ModelConfig(embed_dim=32, hidden_sizes=(32,), policy_floor=0.5)
    model = MultimodalModel(
        observation_space=make_obs_space(),
        action_space=gym.spaces.Discrete(N_ACTIONS),
        model_config=cfg.to_rllib(),
    )
    for out in (model.forward_exploration(batch), model.forward_train(batch)):
        probs = torch.softmax(out[Columns.ACTION_DIST_INPUTS].detach(), -1)
        assert float(probs.min()) >= 0.5 / N_ACTIONS - 1e-6
    loss = -model.forward_train(batch)[Columns.ACTION_DIST_INPUTS][:, 0].mean()
    loss.backward()  # gradients flow through the mixture
    assert model.output.policy[-1].weight.grad is not None
    with pytest.raises(ValidationError, match="policy_floor"):
        ModelConfig(policy_floor=1.0)
