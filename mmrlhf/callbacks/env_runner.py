"""`CompleteEpisodesEnvRunner`: RLlib's single-agent EnvRunner, fixed for complete episodes.

Feedback needs `batch_mode="complete_episodes"` (`apply_feedback` sets it and installs this
runner). In that mode RLlib 2.60's `SingleAgentEnvRunner` has two problems:

1. Re-seeding. It resets its envs with `seed=config.seed` whenever `_needs_initial_reset`
   is set, and `sample(num_episodes=...)` sets it again after every call, so with a fixed
   seed every call replays the same episodes: on one-step tasks like vqa the policy (and a
   reward model fed from the EnvRunners) sees the same `num_envs_per_env_runner` scenes
   over and over, reports near-perfect training accuracy and fails on fresh episodes. This
   runner passes the seed only to the first reset of each env object, so a run stays
   reproducible and keeps drawing new episodes.
2. Tiny sample calls. Without arguments, `sample()` returns just `num_envs_per_env_runner`
   episodes, so the algorithm calls it again and again until the batch is full: 64 calls
   for a 512-step vqa batch with 8 envs, each paying an env reset, a metrics reduction and,
   on a remote EnvRunner, a Ray round trip (it more than doubled vqa's sampling time). This
   runner fills its share of the batch (`rollout_fragment_length * num_envs` env steps) in
   one call, asking for as many complete episodes as the mean episode length so far says.
3. Reset-only passes. Gymnasium's vector envs reset a finished env on the *next* `step()`
   call, so on one-step tasks (vqa, retrieval) every other pass of RLlib's sampling loop
   only steps envs that reset: it still runs the connectors both ways and a module call
   (whose rows `models/finished_rows.py` already leaves uncomputed). While every episode so
   far has been one step long, this runner asks RLlib's loop for one episode per env at a
   time instead; each such call starts with one vector reset and ends after one step pass.
"""

from __future__ import annotations

import logging
import math
from typing import Any

from ray.rllib.env.single_agent_env_runner import SingleAgentEnvRunner
from ray.rllib.env.single_agent_episode import SingleAgentEpisode
from ray.rllib.utils.annotations import override

logger = logging.getLogger(__name__)


class CompleteEpisodesEnvRunner(SingleAgentEnvRunner):
    """`SingleAgentEnvRunner` that seeds each env once and samples its whole share of a
    complete-episodes batch per `sample()` call (see the module docstring)."""

    _episodes_seen: int = 0
    _steps_seen: int = 0

    @override(SingleAgentEnvRunner)
    def sample(
        self,
        *,
        num_timesteps: int | None = None,
        num_episodes: int | None = None,
        explore: bool | None = None,
        random_actions: bool = False,
        force_reset: bool = False,
    ) -> list[SingleAgentEpisode]:
        """RLlib's `sample`; with no counts under complete_episodes, at least
        `rollout_fragment_length * num_envs` env steps of complete episodes."""
        if (
            num_timesteps is not None
            or num_episodes is not None
            or self.config.batch_mode != "complete_episodes"
        ):
            return super().sample(
                num_timesteps=num_timesteps, num_episodes=num_episodes, explore=explore,
                random_actions=random_actions, force_reset=force_reset,
            )  # fmt: skip
        target = self.config.get_rollout_fragment_length(self.worker_index) * self.num_envs
        episodes: list[SingleAgentEpisode] = []
        steps = 0
        while steps < target:
            if self._episodes_seen:
                mean_len = self._steps_seen / self._episodes_seen
                wanted = max(self.num_envs, math.ceil((target - steps) / mean_len))
            else:
                wanted = self.num_envs  # learn the episode length first
            batch = super().sample(
                num_episodes=wanted, explore=explore, random_actions=random_actions
            )
            got = sum(len(e) for e in batch)
            self._episodes_seen += len(batch)
            self._steps_seen += got
            episodes.extend(batch)
            steps += got
        return episodes

    @override(SingleAgentEnvRunner)
    def _sample(
        self,
        *,
        num_timesteps: int | None = None,
        num_episodes: int | None = None,
        explore: bool,
        random_actions: bool = False,
        force_reset: bool = False,
    ) -> list[SingleAgentEpisode]:
        """RLlib's loop; complete one-step episodes are sampled one pass per call (item 3 of
        the module docstring)."""
        one_step = self._episodes_seen > 0 and self._steps_seen == self._episodes_seen
        if num_episodes is None or not one_step or num_episodes <= self.num_envs:
            return super()._sample(
                num_timesteps=num_timesteps, num_episodes=num_episodes, explore=explore,
                random_actions=random_actions, force_reset=force_reset,
            )  # fmt: skip
        episodes: list[SingleAgentEpisode] = []
        while len(episodes) < num_episodes:
            episodes += super()._sample(
                num_episodes=self.num_envs, explore=explore, random_actions=random_actions
            )
        return episodes

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
