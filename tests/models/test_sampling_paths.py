"""The cheap sampling paths of MultimodalModel: finished rows skipped, eval mode kept."""

from __future__ import annotations

from typing import Any

import pytest
import torch
from ray.rllib.core.columns import Columns
from ray.rllib.env.single_agent_episode import SingleAgentEpisode

from mmrlhf.models.finished_rows import FINISHED, MarkFinishedEpisodes
from tests.models.conftest import N_ACTIONS, make_batch, make_obs_space
from tests.models.test_multimodal import build


def with_finished(batch: dict[str, Any], finished: list[bool]) -> dict[str, Any]:
    return {**batch, FINISHED: torch.tensor(finished)}


@pytest.mark.parametrize("method", ["forward_exploration", "forward_inference"])
def test_finished_rows_get_zero_logits_and_live_rows_are_unchanged(method: str) -> None:
    model = build()
    batch = make_batch(make_obs_space(), batch_size=5)
    full = getattr(model, method)(batch)[Columns.ACTION_DIST_INPUTS]
    out = getattr(model, method)(with_finished(batch, [False, True, False, True, True]))
    logits = out[Columns.ACTION_DIST_INPUTS]
    assert logits.shape == (5, N_ACTIONS)
    torch.testing.assert_close(logits[[0, 2]], full[[0, 2]])
    assert (logits[[1, 3, 4]] == 0).all()


def test_all_finished_skips_the_encoders(monkeypatch: pytest.MonkeyPatch) -> None:
    model = build()
    batch = make_batch(make_obs_space(), batch_size=3)

    def fail(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("encoded a batch whose episodes had all ended")

    monkeypatch.setattr(model, "encode", fail)
    out = model.forward_exploration(with_finished(batch, [True, True, True]))
    assert (out[Columns.ACTION_DIST_INPUTS] == 0).all()


def test_sampling_leaves_eval_mode_and_training_switches_back() -> None:
    model = build()
    batch = make_batch(make_obs_space(), batch_size=2)
    model.train()
    model.forward_exploration(batch)
    assert not model.training and not any(m.training for m in model.modules())
    model.forward_train(batch)
    assert model.training and all(m.training for m in model.modules())
    model.forward_inference(batch)
    assert not model.training


def episode(done: bool) -> SingleAgentEpisode:
    space = make_obs_space()
    obs = space.sample()
    ep = SingleAgentEpisode(observation_space=space)
    ep.add_env_reset(observation=obs)
    if done:
        ep.add_env_step(observation=obs, action=0, reward=1.0, terminated=True)
    return ep


def test_connector_marks_finished_episodes_in_batch_order() -> None:
    episodes = [episode(False), episode(True), episode(False)]
    batch = MarkFinishedEpisodes()(rl_module=None, batch={}, episodes=episodes)
    marks = [v for values in batch[FINISHED].values() for v in values]
    assert marks == [False, True, False]


def test_gae_value_pass_skips_bootstrap_rows_after_termination() -> None:
    model = build()
    batch = make_batch(make_obs_space(), batch_size=6)
    full = model.compute_values(batch)
    # Episodes: [0, 1 | 2 extra] terminated, [3 | 4 extra] truncated, [5] a real row.
    gae_batch = {
        **batch,
        Columns.LOSS_MASK: torch.tensor([True, True, False, True, False, True]),
        Columns.TERMINATEDS: torch.tensor([False, True, False, False, False, False]),
    }
    values = model.compute_values(gae_batch)
    torch.testing.assert_close(values[[0, 1, 3, 4, 5]], full[[0, 1, 3, 4, 5]])
    assert values[2] == 0  # never used: GAE multiplies it by (1 - terminated)


def test_sampling_returns_the_values_of_the_same_features() -> None:
    """With a shared trunk, acting also runs the value head: GAE can reuse the result."""
    model = build()
    batch = make_batch(make_obs_space(), batch_size=4)
    out = model.forward_exploration(with_finished(batch, [False, True, False, False]))
    expected = model.compute_values(batch)
    torch.testing.assert_close(out[Columns.VF_PREDS][[0, 2, 3]], expected[[0, 2, 3]])
    assert out[Columns.VF_PREDS][1] == 0
    assert Columns.VF_PREDS not in model.forward_inference(batch)
    # A separate value trunk does not exist on EnvRunners: nothing to reuse.
    separate = build(share_encoders=False, inference_only=True)
    assert Columns.VF_PREDS not in separate.forward_exploration(batch)


def test_gae_value_pass_reuses_sampled_values_and_encodes_only_needed_bootstraps(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    model = build()
    batch = make_batch(make_obs_space(), batch_size=6)
    full = model.compute_values(batch)
    sampled = torch.tensor([10.0, 11.0, 0.0, 13.0, 0.0, 15.0])  # bootstrap rows: copies
    gae_batch = {
        **batch,
        Columns.VF_PREDS: sampled,
        Columns.LOSS_MASK: torch.tensor([True, True, False, True, False, True]),
        Columns.TERMINATEDS: torch.tensor([False, True, False, False, False, False]),
    }
    # Off (the default): every needed row is encoded, sampled values are ignored.
    off = model.compute_values(gae_batch)
    torch.testing.assert_close(off[[0, 1, 3, 4, 5]], full[[0, 1, 3, 4, 5]])
    model.reuse_sampled_values = True
    encoded: list[int] = []
    encode = model.encode
    monkeypatch.setattr(
        model, "encode", lambda rows, **kw: encoded.append(len(rows[Columns.OBS]["text"]))
        or encode(rows, **kw),
    )
    on = model.compute_values(gae_batch)
    torch.testing.assert_close(on[[0, 1, 3, 5]], sampled[[0, 1, 3, 5]])
    torch.testing.assert_close(on[4], full[4])  # a truncated episode's bootstrap: encoded
    assert on[2] == 0
    assert encoded == [1]  # one forward pass, over that one row
