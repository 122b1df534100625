"""A crashed EnvRunner is restarted and training goes on without losing an iteration."""

from __future__ import annotations

import pytest

from mmrlhf.config import ExperimentConfig
from mmrlhf.trainers.ppo import build_ppo_config

pytestmark = pytest.mark.ray


@pytest.mark.parametrize("overlap", [False, True], ids=["ppo", "overlapped"])
def test_killing_an_env_runner_does_not_stop_training(
    ray_session: None, tiny_cfg: ExperimentConfig, overlap: bool
) -> None:
    import ray

    cfg = tiny_cfg.with_overrides(
        {
            "training.num_env_runners": 2,
            "training.num_cpus_per_env_runner": 0.5,
            # Overlapped: the victim dies with a sample() in flight.
            "training.overlap_sampling": overlap,
        }
    )
    algo = build_ppo_config(cfg).build_algo()
    results = []
    try:
        results.append(algo.train())
        runners = algo.env_runner_group
        victim_id = runners.healthy_worker_ids()[0]
        # A crash, not a retirement: Ray restarts the actor (max_restarts), RLlib re-syncs it.
        ray.kill(runners._worker_manager._actors[victim_id], no_restart=False)
        while len(results) < 25:
            results.append(algo.train())  # samples on the survivor meanwhile
            if runners.num_healthy_remote_workers() == 2 and len(results) > 2:
                break
        restarts = runners.num_remote_worker_restarts()
        healthy = runners.num_healthy_remote_workers()
    finally:
        algo.stop()
    assert restarts >= 1 and healthy == 2
    assert [r["training_iteration"] for r in results] == list(range(1, len(results) + 1))
    assert all(r["env_runners"]["num_env_steps_sampled"] > 0 for r in results)
