"""Decoupled PPO: the clip centred on the Learner's policy, lagged samples importance-weighted."""

from __future__ import annotations

import math

import gymnasium as gym
import pytest
import torch
from ray.rllib.core.columns import Columns
from ray.rllib.evaluation.postprocessing import Postprocessing
from ray.rllib.utils.metrics.metrics_logger import MetricsLogger

from mmrlhf.models import ModelConfig, MultimodalModel
from mmrlhf.models.proximal_policy import (
    IS_WEIGHT_MEAN_KEY,
    IS_WEIGHT_TRUNCATED_KEY,
    ProximalPolicyCorrection,
    decoupled_columns,
)
from tests.models.conftest import N_ACTIONS, make_batch, make_obs_space

ADV = Postprocessing.ADVANTAGES


def test_weights_are_the_probability_ratio_truncated_at_rho_max() -> None:
    prox = torch.log(torch.tensor([0.5, 0.2, 0.3]))
    behaviour = torch.log(torch.tensor([0.25, 0.4, 0.3]))
    advantages = torch.tensor([1.0, -2.0, 3.0])
    weighted, weights = decoupled_columns(prox, behaviour, advantages, rho_max=1.0)
    torch.testing.assert_close(weights, torch.tensor([1.0, 0.5, 1.0]))
    torch.testing.assert_close(weighted, torch.tensor([1.0, -1.0, 3.0]))
    _, loose = decoupled_columns(prox, behaviour, advantages, rho_max=4.0)
    torch.testing.assert_close(loose, torch.tensor([2.0, 0.5, 1.0]))


def test_the_weight_passes_through_ppos_clipped_surrogate() -> None:
    """PPO's loss on (prox logp, w * A) is the decoupled objective w * min(r A, clip(r) A)."""
    eps = 0.2
    logp = torch.log(torch.tensor([0.9, 0.1, 0.5, 0.35]))
    prox = torch.log(torch.tensor([0.6, 0.3, 0.5, 0.3]))
    behaviour = torch.log(torch.tensor([0.5, 0.6, 0.25, 0.3]))
    advantages = torch.tensor([1.0, 1.0, -1.0, 2.0])
    weighted, w = decoupled_columns(prox, behaviour, advantages, rho_max=1.0)

    def surrogate(old: torch.Tensor, adv: torch.Tensor) -> torch.Tensor:
        ratio = torch.exp(logp - old)
        return torch.minimum(ratio * adv, ratio.clamp(1 - eps, 1 + eps) * adv)

    torch.testing.assert_close(surrogate(prox, weighted), w * surrogate(prox, advantages))


def _module_and_batch() -> tuple[dict[str, MultimodalModel], dict]:
    torch.manual_seed(0)
    module = MultimodalModel(
        observation_space=make_obs_space(),
        action_space=gym.spaces.Discrete(N_ACTIONS),
        model_config=ModelConfig(embed_dim=32, hidden_sizes=(32,)).to_rllib(),
    )
    batch = make_batch(make_obs_space(), batch_size=6)
    logits = module.forward_inference(batch)[Columns.ACTION_DIST_INPUTS]
    dist = module.get_train_action_dist_cls().from_logits(logits)
    actions = torch.tensor([0, 1, 2, 3, 4, 5])
    batch[Columns.ACTIONS] = actions
    batch[Columns.ACTION_LOGP] = dist.logp(actions)
    batch[Columns.ACTION_DIST_INPUTS] = torch.zeros_like(logits)
    batch[ADV] = torch.linspace(-1.0, 1.0, 6)
    return {"default_policy": module}, batch


def test_samples_of_the_learners_own_policy_pass_unchanged() -> None:
    modules, batch = _module_and_batch()
    advantages, logp = batch[ADV].clone(), batch[Columns.ACTION_LOGP].clone()
    metrics = MetricsLogger()
    out = ProximalPolicyCorrection(rho_max=1.0)(
        rl_module=modules, batch={"default_policy": batch}, episodes=[], metrics=metrics
    )["default_policy"]
    torch.testing.assert_close(out[ADV], advantages)
    torch.testing.assert_close(out[Columns.ACTION_LOGP], logp)
    # PPO's optional KL term now compares with the proximal policy's logits.
    assert out[Columns.ACTION_DIST_INPUTS].abs().sum() > 0
    assert metrics.peek(("default_policy", IS_WEIGHT_MEAN_KEY)) == pytest.approx(1.0)
    assert metrics.peek(("default_policy", IS_WEIGHT_TRUNCATED_KEY)) == 0.0


def test_lagged_samples_are_reweighted_toward_the_learners_policy() -> None:
    modules, batch = _module_and_batch()
    prox_logp = batch[Columns.ACTION_LOGP].clone()
    # The sampling policy was twice as likely to take rows 0-2's actions, half as likely 3-5's.
    shift = torch.tensor([1.0, 1.0, 1.0, -1.0, -1.0, -1.0]) * math.log(2.0)
    batch[Columns.ACTION_LOGP] = prox_logp + shift
    advantages = batch[ADV].clone()
    metrics = MetricsLogger()
    out = ProximalPolicyCorrection(rho_max=1.0)(
        rl_module=modules, batch={"default_policy": batch}, episodes=[], metrics=metrics
    )["default_policy"]
    torch.testing.assert_close(out[Columns.ACTION_LOGP], prox_logp)
    expected = advantages * torch.tensor([0.5, 0.5, 0.5, 1.0, 1.0, 1.0])
    torch.testing.assert_close(out[ADV], expected)
    assert metrics.peek(("default_policy", IS_WEIGHT_MEAN_KEY)) == pytest.approx(0.75)
    assert metrics.peek(("default_policy", IS_WEIGHT_TRUNCATED_KEY)) == pytest.approx(0.5)


def test_rho_max_must_be_positive() -> None:
    with pytest.raises(ValueError, match="rho_max must be > 0"):
        ProximalPolicyCorrection(rho_max=0.0)
