"""The distributed RLHF loop in a real RLlib run (shared Ray session; about a minute).

Two remote EnvRunners score every episode with the newest reward model they have and send
episodes to the RewardModelHub; after each iteration the hub asks for preference labels,
trains and publishes a new version. Once the label budget is spent the versions stop, and
every EnvRunner must end up scoring with the last one. The KL penalty toward the initial
policy is switched on too and must show up in the learner results.
"""

from __future__ import annotations

import math
from typing import Any

import pytest
import ray
from ray.rllib.algorithms.ppo import PPOConfig

import mmrlhf.envs  # noqa: F401  (registers "MyMultimodalEnv" with RLlib)
from mmrlhf.callbacks import apply_feedback
from mmrlhf.callbacks.feedback import RM_VERSION, RM_VERSION_MIN
from mmrlhf.feedback.config import FeedbackConfig
from mmrlhf.models import ModelConfig, MultimodalPPOLearner, model_spec
from mmrlhf.models.learner import KL_COEFF_KEY, KL_KEY
from tests.rlhf.conftest import TINY_RM
from tests.tiny import SHAPE_VQA_ENV

pytestmark = pytest.mark.ray

ENV_CONFIG = SHAPE_VQA_ENV
TINY_MODEL = ModelConfig(
    text_encoder="bag", image_encoder="cnn", embed_dim=16, cnn_channels=(8,), cnn_grid=2,
    hidden_sizes=(16,),
)  # fmt: skip
BUDGET = 24


def runner_versions(algo: Any) -> list[int]:
    """The reward-model version each remote EnvRunner's callback scores with."""

    def version(runner: Any) -> int:
        return max((c._rm.version for c in runner._callbacks if getattr(c, "_rm", None)),
                   default=-1)  # fmt: skip

    return algo.env_runner_group.foreach_env_runner(version, local_env_runner=False)


def test_two_env_runners_use_the_newest_published_reward_model(ray_session: None) -> None:
    feedback = FeedbackConfig(
        enabled=True,
        source="reward_model",
        env_weight=0.0,
        label_budget=BUDGET,
        queries_per_iter=8,
        rm_min_steps=3,
        rm_max_steps=5,
        rm_send_fraction=1.0,
        rm_send_block=8,
        rm_sync_every=4,
        kl_coeff=0.05,
        hub_name="test-rlhf-loop",
        **TINY_RM,
    )
    config = (
        PPOConfig()
        .environment("MyMultimodalEnv", env_config=ENV_CONFIG)
        .rl_module(rl_module_spec=model_spec(TINY_MODEL))
        .env_runners(num_env_runners=2, num_envs_per_env_runner=1)
        .learners(learner_class=MultimodalPPOLearner)
        .training(train_batch_size_per_learner=64, minibatch_size=32, num_epochs=1, lr=1e-3)
        .debugging(seed=0)
    )
    algo = apply_feedback(config, feedback).build_algo()
    hub = ray.get_actor(feedback.rm_hub_actor_name())
    try:
        results = []
        for _ in range(12):
            results.append(algo.train())
            stats = results[-1]["feedback"]
            spent = stats["labels"] >= BUDGET
            env_runners = results[-1]["env_runners"]
            if spent and env_runners.get(RM_VERSION_MIN) == ray.get(hub.version.remote()) >= 2:
                break
        final = ray.get(hub.stats.remote())
        # the hub published at least two versions, and stopped when the labels ran out
        assert final["rm_version"] >= 2
        assert final["labels"] == BUDGET and final["labels_remaining"] == 0
        assert final["env_runners_sending"] == [1, 2]
        # Pair accuracy is measured on strict preferences only: labels that were all ties
        # (both episodes equally right or wrong) leave it undefined (nan).
        if final["ties"] < final["labels"]:
            assert math.isfinite(final["rm_accuracy"]), final
        # every EnvRunner scores with the newest version
        last = results[-1]["env_runners"]
        assert last[RM_VERSION] == last[RM_VERSION_MIN] == final["rm_version"]
        assert runner_versions(algo) == [final["rm_version"]] * 2
        assert math.isfinite(last["feedback/rm_reward_mean"])
        # versions went up over the run as seen by the runners
        seen = [r["env_runners"].get(RM_VERSION, 0) for r in results]
        assert seen == sorted(seen) and seen[0] < seen[-1]
        learner = results[-1]["learners"]["default_policy"]
        assert learner[KL_COEFF_KEY] == pytest.approx(0.05)
        assert learner[KL_KEY] >= 0.0
    finally:
        algo.stop()
