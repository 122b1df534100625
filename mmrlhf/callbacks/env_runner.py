"""`SeedOnceEnvRunner`: RLlib's single-agent EnvRunner without the repeated re-seeding.

RLlib 2.60's `SingleAgentEnvRunner` resets its envs with `seed=config.seed` whenever
`_needs_initial_reset` is set, and `sample(num_episodes=...)` sets it again after every call.
Under `batch_mode="complete_episodes"` (which feedback needs; `apply_feedback` sets it) every
`sample()` is such a call, so with a fixed seed every call restarts the envs from the same
seed and replays the same episodes: on one-step tasks like vqa the policy (and a reward model
fed from the EnvRunners) sees the same `num_envs_per_env_runner` scenes over and over, reports
near-perfect training accuracy and fails on fresh episodes. This subclass passes the seed
only to the first reset of each env object, so a run stays reproducible and keeps drawing new
episodes.
"""

from __future__ import annotations

import logging
from typing import Any

from ray.rllib.env.single_agent_env_runner import SingleAgentEnvRunner
from ray.rllib.utils.annotations import override

logger = logging.getLogger(__name__)


class SeedOnceEnvRunner(SingleAgentEnvRunner):
    """`SingleAgentEnvRunner` that seeds each env object once (see the module docstring)."""

    @override(SingleAgentEnvRunner)
    def _try_env_reset(
        self, *, seed: int | None = None, options: dict | None = None
    ) -> tuple[Any, Any]:
        if seed is not None:
            if getattr(self, "_seeded_env", None) is self.env:
                seed = None  # already seeded: continue its random stream
            else:
                # A new env object (first reset, or recreated after a failure) gets the seed.
                self._seeded_env = self.env
        return super()._try_env_reset(seed=seed, options=options)
