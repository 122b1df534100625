"""`model.compile_trunk`: the trunk through torch.compile computes what the eager one does."""

from __future__ import annotations

import pickle

import gymnasium as gym
import torch
from ray.rllib.core.columns import Columns

from mmrlhf.models import ModelConfig, MultimodalModel
from tests.models.conftest import N_ACTIONS, make_batch, make_obs_space


def _pair(**kwargs: object) -> tuple[MultimodalModel, MultimodalModel]:
    """An eager and a compiled model with the same weights."""
    space, actions = make_obs_space(), gym.spaces.Discrete(N_ACTIONS)
    models = []
    for compiled in (False, True):
        torch.manual_seed(0)
        cfg = ModelConfig(embed_dim=32, hidden_sizes=(32,), compile_trunk=compiled, **kwargs)
        models.append(
            MultimodalModel(
                observation_space=space, action_space=actions, model_config=cfg.to_rllib()
            )
        )
    return models[0], models[1]


def test_default_trunk_is_eager() -> None:
    eager, compiled = _pair()
    assert eager._trunk == eager._run_trunk
    assert compiled._trunk != compiled._run_trunk


def test_compiled_trunk_matches_eager_forward_and_gradients() -> None:
    eager, compiled = _pair(fusion="factored_attention", factored_residual=True)
    batch = make_batch(make_obs_space(), batch_size=8)
    for model in (eager, compiled):
        out = model.forward_train(batch)
        loss = out[Columns.ACTION_DIST_INPUTS].logsumexp(-1).mean() + model.compute_values(
            batch, embeddings=out[Columns.EMBEDDINGS]
        ).pow(2).mean()
        loss.backward()
    train_e, train_c = eager.forward_train(batch), compiled.forward_train(batch)
    torch.testing.assert_close(
        train_c[Columns.ACTION_DIST_INPUTS], train_e[Columns.ACTION_DIST_INPUTS],
        rtol=1e-4, atol=1e-5,
    )  # fmt: skip
    for (name, p_e), p_c in zip(eager.named_parameters(), compiled.parameters(), strict=True):
        if p_e.grad is not None:
            torch.testing.assert_close(p_c.grad, p_e.grad, rtol=1e-3, atol=1e-5, msg=name)
    # Sampling runs without grad (another graph) and on another batch size.
    small = make_batch(make_obs_space(), batch_size=3, seed=1)
    torch.testing.assert_close(
        compiled.forward_exploration(small)[Columns.ACTION_DIST_INPUTS],
        eager.forward_exploration(small)[Columns.ACTION_DIST_INPUTS],
        rtol=1e-4, atol=1e-5,
    )  # fmt: skip


def test_compiled_model_pickles_and_the_copy_compiles_its_own() -> None:
    _, compiled = _pair()
    batch = make_batch(make_obs_space(), batch_size=4)
    before = compiled.forward_inference(batch)[Columns.ACTION_DIST_INPUTS]
    copy = pickle.loads(pickle.dumps(compiled))
    assert "_compiled_trunk" in compiled.__dict__ and "_compiled_trunk" not in copy.__dict__
    torch.testing.assert_close(copy.forward_inference(batch)[Columns.ACTION_DIST_INPUTS], before)
