"""OverlappedPPO: the next batch samples during the update, with exactly one update of lag."""

from __future__ import annotations

import math

import pytest
from ray.rllib.algorithms.ppo import PPO

from mmrlhf.config import ExperimentConfig
from mmrlhf.models.learner import PROXIMAL_RHO_CONFIG, SAMPLED_VALUES_CONFIG
from mmrlhf.models.proximal_policy import IS_WEIGHT_MEAN_KEY
from mmrlhf.trainers.overlapped_ppo import SAMPLE_TAG, OverlappedPPO
from mmrlhf.trainers.ppo import build_ppo_config


def test_overlap_sampling_selects_the_algorithm_and_decoupled_ppo(
    tiny_cfg: ExperimentConfig,
) -> None:
    on = build_ppo_config(tiny_cfg.with_overrides({"training.overlap_sampling": True}))
    assert on.algo_class is OverlappedPPO
    assert on.learner_config_dict[PROXIMAL_RHO_CONFIG] == 1.0
    # Lagged batches hold values of older weights: GAE must compute its own.
    assert on.learner_config_dict[SAMPLED_VALUES_CONFIG] is False
    off = build_ppo_config(tiny_cfg)
    assert off.algo_class is PPO
    assert off.learner_config_dict[PROXIMAL_RHO_CONFIG] == 0.0
    assert off.learner_config_dict[SAMPLED_VALUES_CONFIG] is True
    # Nothing to overlap with when the driver samples.
    local = tiny_cfg.with_overrides(
        {"training.overlap_sampling": True, "training.num_env_runners": 0}
    )
    assert build_ppo_config(local).algo_class is PPO


def _weights_seq_nos(cfg: ExperimentConfig, iterations: int) -> tuple[list[int], int]:
    """The EnvRunner's weights version behind each iteration's batch, and samples in flight."""
    algo = build_ppo_config(cfg).build_algo()
    versions = []
    try:
        for _ in range(iterations):
            result = algo.train()
            learner = result["learners"]["default_policy"]
            assert math.isfinite(float(learner["total_loss"]))
            # Decoupled PPO's importance weights are logged where batches lag the Learner.
            if cfg.training.overlap_sampling:
                assert 0.0 < learner[IS_WEIGHT_MEAN_KEY] <= 1.0
            else:
                assert IS_WEIGHT_MEAN_KEY not in learner
            assert result["env_runners"]["num_env_steps_sampled"] >= cfg.training.train_batch_size
            versions.append(int(result["env_runners"]["weights_seq_no"]))
        in_flight = algo.env_runner_group.num_in_flight_async_reqs(SAMPLE_TAG)
    finally:
        algo.stop()
    return versions, in_flight


@pytest.mark.ray
def test_batches_lag_one_update_and_the_next_one_is_in_flight(
    ray_session: None, tiny_cfg: ExperimentConfig
) -> None:
    plain, plain_in_flight = _weights_seq_nos(tiny_cfg, 4)
    overlapped, in_flight = _weights_seq_nos(
        tiny_cfg.with_overrides({"training.overlap_sampling": True}), 4
    )
    # Plain PPO samples iteration k with the weights of update k-1; overlapped PPO with those of
    # update k-2 (its batch was sent before update k-1), never older.
    assert plain == [plain[0] + k for k in range(4)]
    assert overlapped[:2] == [plain[0], plain[0]]
    assert overlapped[2:] == [plain[0] + 1, plain[0] + 2]
    assert plain_in_flight == 0
    assert in_flight == 1
