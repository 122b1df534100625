"""Batched gradient clipping and finiteness checks agree with RLlib's per-tensor code."""

from __future__ import annotations

import pytest
import torch
from ray.rllib.utils.torch_utils import clip_gradients as rllib_clip_gradients

from mmrlhf.config import ExperimentConfig
from mmrlhf.models.gradients import all_finite, clip_gradients, global_norm
from mmrlhf.trainers.ppo import build_ppo_config


def _grads(scale: float) -> dict[int, torch.Tensor]:
    gen = torch.Generator().manual_seed(0)
    shapes = [(3, 4), (7,), (2, 2, 5), (1,)]
    return {i: torch.randn(s, generator=gen) * scale for i, s in enumerate(shapes)}


@pytest.mark.parametrize("scale", [1e-3, 1.0, 50.0])
def test_global_norm_clipping_matches_rllibs(scale: float) -> None:
    ours, theirs = _grads(scale), _grads(scale)
    norm = clip_gradients(ours, grad_clip=0.5, grad_clip_by="global_norm")
    their_norm = rllib_clip_gradients(theirs, grad_clip=0.5, grad_clip_by="global_norm")
    torch.testing.assert_close(norm, their_norm)
    for key in ours:
        torch.testing.assert_close(ours[key], theirs[key])
    assert float(global_norm(list(ours.values()))) <= 0.5 + 1e-5


def test_other_modes_and_no_clip_are_rllibs() -> None:
    ours, theirs = _grads(10.0), _grads(10.0)
    clip_gradients(ours, grad_clip=0.5, grad_clip_by="value")
    rllib_clip_gradients(theirs, grad_clip=0.5, grad_clip_by="value")
    assert all(torch.equal(ours[k], theirs[k]) for k in ours)
    untouched = _grads(10.0)
    assert clip_gradients(untouched, grad_clip=None) is None
    assert all(torch.equal(untouched[k], _grads(10.0)[k]) for k in untouched)


def test_non_finite_gradients_are_detected_and_clipped_as_rllib_does() -> None:
    grads = _grads(1.0)
    assert all_finite(list(grads.values()))
    for bad in (float("nan"), float("inf")):
        ours, theirs = _grads(1.0), _grads(1.0)
        ours[2][0, 0, 0] = theirs[2][0, 0, 0] = bad
        assert not all_finite(list(ours.values()))
        norm = clip_gradients(ours, grad_clip=0.5, grad_clip_by="global_norm")
        their_norm = rllib_clip_gradients(theirs, grad_clip=0.5, grad_clip_by="global_norm")
        torch.testing.assert_close(norm, their_norm, equal_nan=True)
        for key in ours:
            torch.testing.assert_close(ours[key], theirs[key], equal_nan=True)


@pytest.mark.ray
def test_learner_steps_foreach_optimizers_and_zeroes_a_nan_gradient(
    ray_session: None, tiny_cfg: ExperimentConfig
) -> None:
    """The fast path steps the optimizer; a NaN gradient takes RLlib's path (set to zero)."""
    cfg = tiny_cfg.with_overrides({"training.num_env_runners": 0})
    algo = build_ppo_config(cfg).build_algo()
    try:
        learner = algo.learner_group._learner
        (optimizer,) = [opt for _, opt in learner.get_optimizers_for_module("default_policy")]
        assert all(group["foreach"] for group in optimizer.param_groups)
        params = learner._params
        before = {ref: p.detach().clone() for ref, p in params.items()}
        grads = {ref: torch.full_like(p, 0.1) for ref, p in params.items()}
        learner.apply_gradients(grads)
        assert all(not torch.equal(params[ref], before[ref]) for ref in params)
        first = next(iter(params))
        grads = {ref: torch.zeros_like(p) for ref, p in params.items()}
        grads[first] = torch.full_like(params[first], float("nan"))
        learner.apply_gradients(grads)
        assert torch.isfinite(params[first]).all()
        assert torch.equal(params[first].grad, torch.zeros_like(params[first]))
    finally:
        algo.stop()
