"""PPO's artificial bootstrap rows: added only where GAE reads them, dropped after GAE."""

from __future__ import annotations

import copy
from typing import Any

import numpy as np
import pytest
import torch
from ray.rllib.connectors.learner.add_one_ts_to_episodes_and_truncate import (
    AddOneTsToEpisodesAndTruncate,
)
from ray.rllib.core.columns import Columns
from ray.rllib.env.single_agent_episode import SingleAgentEpisode
from ray.rllib.evaluation.postprocessing import Postprocessing

from mmrlhf.config import ExperimentConfig
from mmrlhf.models.bootstrap_rows import AddBootstrapTimesteps, DropBootstrapRows
from mmrlhf.trainers.ppo import build_ppo_config
from tests.tiny import learner_batch

ADV = Postprocessing.ADVANTAGES


def test_drops_masked_rows_of_every_column_and_restandardises_advantages() -> None:
    mask = torch.tensor([True, False, True, False, True, False])
    batch = {
        "default_policy": {
            Columns.OBS: {"image": torch.arange(6)[:, None].repeat(1, 3), "text": torch.arange(6)},
            Columns.ACTIONS: torch.tensor([5, 0, 6, 0, 7, 0]),
            ADV: torch.tensor([1.0, 9.0, 2.0, -9.0, 3.0, 0.0]),
            Columns.LOSS_MASK: mask,
            "scalar": 3.0,
        }
    }
    out = DropBootstrapRows()(rl_module=None, batch=batch, episodes=[])["default_policy"]
    assert Columns.LOSS_MASK not in out
    assert out[Columns.OBS]["text"].tolist() == [0, 2, 4]
    assert out[Columns.OBS]["image"].shape == (3, 3)
    assert out[Columns.ACTIONS].tolist() == [5, 6, 7]
    torch.testing.assert_close(out[ADV], torch.tensor([-1.0, 0.0, 1.0]) * 1.5**0.5)
    assert out["scalar"] == 3.0


def test_an_all_real_mask_is_dropped_and_advantages_are_left_alone() -> None:
    adv = torch.tensor([1.0, 2.0])
    batch = {"p": {ADV: adv, Columns.LOSS_MASK: torch.tensor([True, True])}}
    out = DropBootstrapRows()(rl_module=None, batch=batch, episodes=[])["p"]
    assert Columns.LOSS_MASK not in out and out[ADV] is adv
    unmasked = {"p": {ADV: adv}}
    assert DropBootstrapRows()(rl_module=None, batch=unmasked, episodes=[])["p"][ADV] is adv


class _Flat:
    """Stands in for a non-stateful RLModule (all the piece asks of it)."""

    def is_stateful(self) -> bool:
        return False


def _episode(steps: int, terminated: bool, truncated: bool = False) -> SingleAgentEpisode:
    return SingleAgentEpisode(
        observations=list(range(steps + 1)),
        actions=list(range(steps)),
        rewards=[1.0] * steps,
        terminated=terminated,
        truncated=truncated,
        len_lookback_buffer=0,
    )


def _columns(batch: dict[str, Any], episode: SingleAgentEpisode) -> list[list[bool]]:
    columns = (Columns.LOSS_MASK, Columns.TERMINATEDS, Columns.TRUNCATEDS)
    return [list(batch[col][(episode.id_,)]) for col in columns]


def test_terminated_episodes_get_no_phantom_step_the_others_get_rllibs() -> None:
    episodes = [_episode(1, True), _episode(3, True), _episode(2, False, True), _episode(2, False)]
    theirs = copy.deepcopy(episodes)
    ours_batch: dict[str, Any] = {}
    AddBootstrapTimesteps()(rl_module=_Flat(), batch=ours_batch, episodes=episodes, shared_data={})
    their_batch: dict[str, Any] = {}
    AddOneTsToEpisodesAndTruncate()(
        rl_module=_Flat(), batch=their_batch, episodes=theirs, shared_data={}
    )
    # Terminated: unchanged length, every row real, the last one terminal.
    assert [len(e) for e in episodes] == [1, 3, 3, 3]
    assert _columns(ours_batch, episodes[0]) == [[True], [True], [False]]
    assert _columns(ours_batch, episodes[1]) == [[True] * 3, [False, False, True], [False] * 3]
    # Truncated episodes and ongoing chunks: exactly what RLlib's piece writes.
    for ours, rllib in zip(episodes[2:], theirs[2:], strict=True):
        assert ours.id_ == rllib.id_ and ours.is_truncated and rllib.is_truncated
        assert _columns(ours_batch, ours) == _columns(their_batch, rllib)
        assert ours.get_observations(-1) == rllib.get_observations(-1)


def _pipeline_batches(learner: Any, episodes: list[Any]) -> tuple[dict, dict]:
    """The Learner's batch for `episodes`, with our piece and with RLlib's in its place."""
    rllib = copy.deepcopy(learner._learner_connector)
    rllib.insert_before(AddBootstrapTimesteps, AddOneTsToEpisodesAndTruncate())
    rllib.remove(AddBootstrapTimesteps)
    return learner_batch(learner, episodes), learner_batch(learner, episodes, rllib)


@pytest.mark.ray
@pytest.mark.parametrize("task", ["vqa", "caption"])
def test_the_train_batch_is_rllibs_without_the_unused_rows(
    ray_session: None, tiny_cfg: ExperimentConfig, task: str
) -> None:
    """One-step vqa (all terminated) and caption (chunks that go on, whose bootstrap rows
    still get a value): the same rows, advantages and value targets as RLlib's pipeline."""
    cfg = tiny_cfg.with_overrides({"env.task": task, "training.num_env_runners": 0})
    algo = build_ppo_config(cfg).build_algo()
    try:
        algo.train()
        learner = algo.learner_group._learner
        pieces = [type(piece) for piece in learner._learner_connector.connectors]
        assert AddBootstrapTimesteps in pieces and AddOneTsToEpisodesAndTruncate not in pieces
        episodes = algo.env_runner_group.local_env_runner.sample()
        ours, theirs = _pipeline_batches(learner, episodes)
    finally:
        algo.stop()
    if task == "caption":
        assert not all(e.is_terminated for e in episodes)  # bootstrap rows were needed
    assert set(ours) == set(theirs)
    rows = sum(len(e) for e in episodes)
    for key in (Columns.ACTIONS, Columns.ACTION_LOGP, Postprocessing.VALUE_TARGETS):
        assert ours[key].shape[0] == rows
        torch.testing.assert_close(ours[key], theirs[key], rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(
        ours[Postprocessing.ADVANTAGES], theirs[Postprocessing.ADVANTAGES], rtol=1e-4, atol=1e-4
    )
    for name, obs in ours[Columns.OBS].items():
        np.testing.assert_array_equal(np.asarray(obs), np.asarray(theirs[Columns.OBS][name]))
