"""`CompleteEpisodesEnvRunner`: RLlib's single-agent EnvRunner, fixed for complete episodes.

Feedback needs `batch_mode="complete_episodes"` (`apply_feedback` sets it and installs this
runner). In that mode RLlib 2.60's `SingleAgentEnvRunner` has four problems:

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
   That pass is this runner's own (`_one_step_pass`), not RLlib's loop, which after the
   step also runs the env-to-module connectors on the finished episodes' last observations
   and creates a new episode (with its `on_episode_created` callbacks) for every env: work
   the next pass's reset throws away. If an episode outlives its first step, the pass keeps
   the finished ones, drops the rest (as RLlib drops the unfinished episodes at the end of
   every complete-episodes `sample()` call) and the runner goes back to RLlib's loop.
4. Metrics of episodes no window keeps. `get_metrics` logs nine windowed values per finished
   episode (length, return, duration, their min and max), windows of
   `metrics_num_episodes_for_smoothing / num_env_runners` values; a 512-episode vqa batch
   logged 4,608 values of which the windows kept the last 100 episodes'. This runner logs
   only the episodes the windows keep, which gives the same metrics.
"""

from __future__ import annotations

import logging
import math
from typing import Any

from ray.rllib.core.columns import Columns
from ray.rllib.env.env_runner import ENV_STEP_FAILURE
from ray.rllib.env.single_agent_env_runner import SingleAgentEnvRunner
from ray.rllib.env.single_agent_episode import SingleAgentEpisode
from ray.rllib.utils.annotations import override
from ray.rllib.utils.metrics import (
    MODULE_TO_ENV_CONNECTOR,
    RLMODULE_INFERENCE_TIMER,
    WEIGHTS_SEQ_NO,
)
from ray.rllib.utils.spaces.space_utils import unbatch

logger = logging.getLogger(__name__)


class CompleteEpisodesEnvRunner(SingleAgentEnvRunner):
    """`SingleAgentEnvRunner` that seeds each env once and samples its whole share of a
    complete-episodes batch per `sample()` call (see the module docstring)."""

    _episodes_seen: int = 0
    _steps_seen: int = 0
    _longer_seen: bool = False  # an episode outlived its first step in a one-step pass

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
        one_step = (
            self._episodes_seen > 0
            and self._steps_seen == self._episodes_seen
            and not self._longer_seen
        )
        if num_episodes is None or not one_step or num_episodes < self.num_envs:
            return super()._sample(
                num_timesteps=num_timesteps, num_episodes=num_episodes, explore=explore,
                random_actions=random_actions, force_reset=force_reset,
            )  # fmt: skip
        episodes: list[SingleAgentEpisode] = []
        while len(episodes) < num_episodes:
            if self._longer_seen:
                return episodes + super()._sample(
                    num_episodes=num_episodes - len(episodes), explore=explore,
                    random_actions=random_actions,
                )  # fmt: skip
            episodes += self._one_step_pass(explore=explore, random_actions=random_actions)
        return episodes

    def _one_step_pass(
        self, *, explore: bool, random_actions: bool = False
    ) -> list[SingleAgentEpisode]:
        """Reset every env, act once, step once: the episodes that ended (all of them on a
        one-step task), with RLlib's callbacks, timers and metrics (item 3 of the module
        docstring)."""
        self._reset_envs_and_episodes(explore)  # new episodes, reset, connectors, callbacks
        self._needs_initial_reset = True  # as RLlib's loop leaves it after counted episodes
        episodes = self._ongoing_episodes
        to_module = self._cached_to_module
        self._cached_to_module = None
        if random_actions:
            to_env = {Columns.ACTIONS: self.env.action_space.sample()}
        else:
            with self.metrics.log_time(RLMODULE_INFERENCE_TIMER):
                if explore:
                    runners = self.config.num_env_runners or 1
                    t = self.num_env_steps_sampled_lifetime // runners * runners
                    to_env = self.module.forward_exploration(to_module, t=t)
                else:
                    to_env = self.module.forward_inference(to_module)
            to_env = self._module_to_env(
                rl_module=self.module, batch=to_env, episodes=episodes, explore=explore,
                shared_data=self._shared_data, metrics=self.metrics,
                metrics_prefix_key=(MODULE_TO_ENV_CONNECTOR,),
            )  # fmt: skip
        actions = to_env.pop(Columns.ACTIONS)
        results = self._try_env_step(to_env.pop(Columns.ACTIONS_FOR_ENV, actions))
        if results == ENV_STEP_FAILURE:
            return []  # RLlib's loop resets and goes on; the caller's next pass resets
        observations, rewards, terminateds, truncateds, infos = results
        observations, actions = unbatch(observations), unbatch(actions)
        done: list[SingleAgentEpisode] = []
        for i, episode in enumerate(episodes):
            extra_model_outputs = {k: v[i] for k, v in to_env.items()}
            extra_model_outputs[WEIGHTS_SEQ_NO] = self._weights_seq_no
            episode.add_env_step(
                observation=observations[i], action=actions[i], reward=rewards[i],
                infos=infos[i], terminated=terminateds[i], truncated=truncateds[i],
                extra_model_outputs=extra_model_outputs,
            )  # fmt: skip
            self._make_on_episode_callback("on_episode_step", i, episodes)
            if not episode.is_done:
                self._longer_seen = True
                continue
            self._make_on_episode_callback("on_episode_end", i, episodes)
            done.append(episode.to_numpy() if self.episodes_to_numpy else episode)
        if self._longer_seen:
            logger.info(
                "an episode outlived its first step: %d unfinished episodes of this pass "
                "dropped, sampling goes on with RLlib's loop", len(episodes) - len(done),
            )  # fmt: skip
        self._done_episodes_for_metrics.extend(done)
        stepped = len(episodes)  # RLlib counts the dropped episodes' steps as sampled too
        self._log_env_steps(metric=self._metrics_num_env_steps_sampled, num_steps=stepped)
        self._increase_sampled_metrics(stepped, len(done))
        return done

    @override(SingleAgentEnvRunner)
    def get_metrics(self) -> dict[str, Any]:
        """RLlib's metrics; per-episode values only for the episodes their windows keep
        (item 4 of the module docstring)."""
        # The window of RLlib's `_log_episode_metrics`.
        runners = self.config.num_env_runners or 1
        window = max(1, math.ceil(self.config.metrics_num_episodes_for_smoothing / runners))
        done = self._done_episodes_for_metrics
        if len(done) > window:
            for episode in done[:-window]:
                self._ongoing_episodes_for_metrics.pop(episode.id_, None)
            del done[:-window]
        return super().get_metrics()

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
