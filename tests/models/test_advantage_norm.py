"""Per-minibatch advantage standardisation (`training.advantage_norm=minibatch`)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch
from ray.rllib.core.columns import Columns
from ray.rllib.evaluation.postprocessing import Postprocessing

from mmrlhf.envs import MyMultimodalEnv
from mmrlhf.models import ModelConfig, MultimodalPPOLearner, model_spec
from mmrlhf.models.advantages import standardize_advantages
from mmrlhf.models.learner import ADVANTAGE_NORM_CONFIG


def test_standardize_over_all_rows() -> None:
    adv = torch.tensor([1.0, 2.0, 3.0, 6.0])
    out = standardize_advantages(adv)
    assert out.mean().item() == pytest.approx(0.0, abs=1e-6)
    assert out.std(unbiased=False).item() == pytest.approx(1.0, abs=1e-6)
    # Hand-computed: mean 3, population std sqrt(14/4).
    assert out[3].item() == pytest.approx(3.0 / (14.0 / 4.0) ** 0.5, rel=1e-6)


def test_standardize_over_masked_rows_leaves_the_others() -> None:
    adv = torch.tensor([1.0, 3.0, 100.0, -50.0])
    mask = torch.tensor([True, True, False, False])
    out = standardize_advantages(adv, mask)
    assert out[:2].tolist() == pytest.approx([-1.0, 1.0])
    assert out[2:].tolist() == [100.0, -50.0]


def test_equal_advantages_become_zeros_and_an_empty_mask_changes_nothing() -> None:
    assert standardize_advantages(torch.full((5,), 7.0)).tolist() == [0.0] * 5
    adv = torch.tensor([1.0, 2.0])
    assert standardize_advantages(adv, torch.tensor([False, False])).tolist() == [1.0, 2.0]


def _algo(norm: str | None) -> Any:
    from ray.rllib.algorithms.ppo import PPOConfig

    extra = {} if norm is None else {ADVANTAGE_NORM_CONFIG: norm}
    return (
        PPOConfig()
        .environment("MyMultimodalEnv", env_config={"task": "vqa"})
        .env_runners(num_env_runners=0, num_envs_per_env_runner=1)
        .rl_module(rl_module_spec=model_spec(ModelConfig()))
        .learners(learner_class=MultimodalPPOLearner, learner_config_dict=extra)
        .training(train_batch_size=32, minibatch_size=16, num_epochs=1)
        .debugging(seed=0)
        .build_algo()
    )


def _loss(algo: Any, advantages: torch.Tensor) -> float:
    """The learner's loss on a fixed batch of vqa observations with these advantages."""
    env = MyMultimodalEnv({"task": "vqa"})
    obs = [env.reset(seed=i)[0] for i in range(len(advantages))]
    learner = algo.learner_group._learner
    module = learner.module["default_policy"].unwrapped()
    batch: dict[str, Any] = {
        Columns.OBS: {
            key: torch.from_numpy(np.stack([o[key] for o in obs])) for key in ("image", "text")
        }
    }
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        logits = module.forward_train(batch)[Columns.ACTION_DIST_INPUTS]
    actions = torch.randint(0, logits.shape[-1], (len(advantages),), generator=generator)
    batch.update(
        {
            Columns.ACTIONS: actions,
            # An older policy than the module, so the clip is active on some rows.
            Columns.ACTION_DIST_INPUTS: logits + torch.randn(logits.shape, generator=generator),
            Columns.ACTION_LOGP: torch.log_softmax(logits, -1)[range(len(actions)), actions]
            + 0.3 * torch.randn(len(actions), generator=generator),
            Postprocessing.ADVANTAGES: advantages,
            Postprocessing.VALUE_TARGETS: torch.zeros(len(advantages)),
        }
    )
    with torch.no_grad():
        loss = learner.compute_loss_for_module(
            module_id="default_policy",
            config=learner.config.get_config_for_module("default_policy"),
            batch=batch,
            fwd_out=module.forward_train(batch),
        )
    return float(loss)


@pytest.mark.ray
def test_minibatch_mode_trains_on_standardised_advantages(ray_session: None) -> None:
    advantages = torch.randn(12, generator=torch.Generator().manual_seed(1))
    shifted = 5.0 * advantages + 3.0
    standardised = standardize_advantages(advantages)
    minibatch, plain = _algo("minibatch"), _algo(None)
    try:
        # Invariant to the advantages' offset and scale: the loss standardises them itself.
        assert _loss(minibatch, shifted) == pytest.approx(_loss(minibatch, advantages), rel=1e-5)
        # ... and it is PPO's loss on the standardised advantages.
        assert _loss(minibatch, advantages) == pytest.approx(_loss(plain, standardised), rel=1e-5)
        # RLlib's default (batch) leaves the minibatch's advantages as they come.
        assert _loss(plain, shifted) != pytest.approx(_loss(plain, advantages), rel=1e-3)
        minibatch.train()
    finally:
        minibatch.stop()
        plain.stop()


@pytest.mark.ray
def test_an_unknown_mode_names_the_allowed_ones(ray_session: None) -> None:
    with pytest.raises(ValueError, match="'batch', 'minibatch'"):
        _algo("episode")
