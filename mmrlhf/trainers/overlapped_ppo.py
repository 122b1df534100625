"""`OverlappedPPO`: PPO whose remote EnvRunners sample the next batch while the Learner trains.

RLlib 2.60's PPO alternates: the EnvRunners sample, then wait while the Learner updates. On a
small machine that leaves a core idle for most of each iteration (the quickstart: 0.54 s of
sampling, then 1.18 s of updates). Here the next `sample()` request goes out *before* the
update, so both run at once. The price is one iteration of policy lag: the batch a Learner
trains on was sampled by the weights of one update earlier. PPO's loss already divides by the
sampling policy's stored action probabilities (and clips the ratio), so the lag is corrected
for, as in IMPALA/APPO-style learners, only with one batch in flight.

Order of calls per iteration (Ray runs one caller's calls on an actor in submission order):

1. wait for the in-flight `sample()` (sent last iteration; sampled with the weights before
   last iteration's update) and, if nothing is in flight (first iteration, a restarted
   EnvRunner), sample now;
2. send the next `sample()` to every healthy EnvRunner: it runs during step 3, with the
   weights already there;
3. update the Learner on the batch from step 1;
4. send the new weights without waiting: they are queued behind the `sample()` of step 2, so
   the iteration after next samples with them.

With no remote EnvRunners (`num_env_runners=0`) nothing can overlap and this is plain PPO.
"""

from __future__ import annotations

import logging
from typing import Any

from ray.rllib.algorithms.ppo import PPO
from ray.rllib.core import ALL_MODULES
from ray.rllib.utils.annotations import override
from ray.rllib.utils.metrics import (
    ENV_RUNNER_RESULTS,
    ENV_RUNNER_SAMPLING_TIMER,
    LEARNER_RESULTS,
    LEARNER_UPDATE_TIMER,
    NUM_ENV_STEPS_SAMPLED,
    NUM_ENV_STEPS_SAMPLED_LIFETIME,
    NUM_MODULE_STEPS_TRAINED_LIFETIME,
    SYNCH_WORKER_WEIGHTS_TIMER,
    TIMERS,
)

logger = logging.getLogger(__name__)

SAMPLE_TAG = "mmrlhf_overlapped_sample"
"""Tag of the in-flight `sample()` requests (RLlib's async request manager keys by tag)."""


def _sample_with_metrics(runner: Any) -> tuple[Any, dict[str, Any]]:
    # Module-level (not a lambda) so Ray pickles it by reference.
    return runner.sample(), runner.get_metrics()


class OverlappedPPO(PPO):
    """PPO with sampling overlapped with the Learner update (one iteration of policy lag).

    Selected by `training.overlap_sampling: true` (see `build_ppo_config`). Everything else
    (the loss, the Learner, connectors, callbacks, checkpoints) is RLlib's PPO: only the order
    of the sample, update and weight-sync calls in `training_step` changes.
    """

    @override(PPO)
    def training_step(self) -> None:
        group = self.env_runner_group
        if group is None or group.num_remote_workers() == 0:
            return super().training_step()

        with self.metrics.log_time((TIMERS, ENV_RUNNER_SAMPLING_TIMER)):
            episodes, runner_metrics = self._collect_batch()
            if not episodes:
                return None
            self.metrics.aggregate(runner_metrics, key=ENV_RUNNER_RESULTS)
            # The next batch samples while the Learner trains on this one.
            self._send_samples()

        with self.metrics.log_time((TIMERS, LEARNER_UPDATE_TIMER)):
            learner_results = self.learner_group.update(
                episodes=episodes,
                timesteps={
                    NUM_ENV_STEPS_SAMPLED_LIFETIME: self.metrics.peek(
                        (ENV_RUNNER_RESULTS, NUM_ENV_STEPS_SAMPLED_LIFETIME)
                    ),
                    NUM_MODULE_STEPS_TRAINED_LIFETIME: self.metrics.peek(
                        (LEARNER_RESULTS, ALL_MODULES, NUM_MODULE_STEPS_TRAINED_LIFETIME),
                        default=0,
                    ),
                },
                num_epochs=self.config.num_epochs,
                minibatch_size=self.config.minibatch_size,
                shuffle_batch_per_epoch=self.config.shuffle_batch_per_epoch,
            )
            self.metrics.aggregate(learner_results, key=LEARNER_RESULTS)

        with self.metrics.log_time((TIMERS, SYNCH_WORKER_WEIGHTS_TIMER)):
            # timeout 0: fire and forget. Waiting would wait for the sample sent above.
            group.sync_weights(
                from_worker_or_learner_group=self.learner_group,
                policies=set(learner_results[0].keys()) - {ALL_MODULES},
                inference_only=True,
                timeout_seconds=0.0,
            )
        return None

    def _send_samples(self) -> None:
        """Send one `sample()` to every healthy EnvRunner.

        RLlib's request manager drops the call for an EnvRunner that already has
        `max_requests_in_flight_per_env_runner` (default 1) requests with this tag in flight, so
        at most one batch is ever in flight per EnvRunner.
        """
        self.env_runner_group.foreach_env_runner_async(_sample_with_metrics, tag=SAMPLE_TAG)

    def _collect_batch(self) -> tuple[list[Any], list[dict[str, Any]]]:
        """Gather in-flight samples until the batch holds `total_train_batch_size` env steps.

        Returns the episodes and the EnvRunners' metrics dicts; both empty when every EnvRunner
        failed (RLlib restores them before the next iteration).
        """
        group = self.env_runner_group
        wanted = self.config.total_train_batch_size
        episodes: list[Any] = []
        runner_metrics: list[dict[str, Any]] = []
        steps = 0
        while steps < wanted:
            if group.num_in_flight_async_reqs(SAMPLE_TAG) == 0:
                if group.num_healthy_remote_workers() == 0:
                    logger.warning("no healthy EnvRunner to sample from; skipping this update")
                    return [], []
                self._send_samples()
            ready = group.fetch_ready_async_reqs(
                tags=SAMPLE_TAG, timeout_seconds=self.config.sample_timeout_s
            )
            if not ready and group.num_in_flight_async_reqs(SAMPLE_TAG) > 0:
                logger.warning(
                    "no sample returned within sample_timeout_s=%s; waiting again",
                    self.config.sample_timeout_s,
                )
            for _, (runner_episodes, metrics) in ready:
                episodes.extend(runner_episodes)
                runner_metrics.append(metrics)
                steps += int(metrics.get(NUM_ENV_STEPS_SAMPLED, 0))
        return episodes, runner_metrics
