"""`FeedbackCallback`: episode-end feedback and task metrics inside every EnvRunner.

RLlib builds callbacks itself with `callbacks_class()` (no arguments) in each EnvRunner and in
the algorithm, so the config rides on the class: `make_feedback_callback(cfg)` returns a
subclass whose `feedback_config` class attribute is `cfg`. RLlib ships it to remote EnvRunners
with cloudpickle, which pickles such a dynamically made class by value, config included. (A
`functools.partial` is callable too, but has no `__qualname__`, so `AlgorithmConfig.serialize()`
fails on it.) Use `apply_feedback` to install it; it also sets the batch mode.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Sequence
from typing import Any, ClassVar

import ray
from ray.rllib.callbacks.callbacks import RLlibCallback
from ray.rllib.env.single_agent_episode import SingleAgentEpisode
from ray.rllib.utils.metrics.metrics_logger import MetricsLogger

from mmrlhf.callbacks.episodes import record_from_episode
from mmrlhf.feedback.config import FeedbackConfig
from mmrlhf.feedback.engine import FeedbackEngine, hub_entry, shape_rewards
from mmrlhf.feedback.hub import HubClient, get_or_create_hub

logger = logging.getLogger(__name__)

# Metric keys (they appear under result["env_runners"]).
ACCURACY = "accuracy"
SCORE = "score"
REWARD_MEAN = "feedback/reward_mean"
LABELS = "feedback/labels"
LABELS_LIFETIME = "feedback/labels_lifetime"
SKIPPED = "feedback/skipped"
NOT_RATED = "feedback/not_rated"
AGREEMENT = "feedback/agreement"

DEFAULT_WINDOW = 100


class FeedbackCallback(RLlibCallback):
    """Turns episode-end feedback into reward and logs task metrics.

    At each episode end (in the EnvRunner, before the episode is shipped to the learner):

    1. logs `accuracy` (final `info["success"]`) and `score` (final `info["score"]`), always;
    2. when feedback is enabled (and this is not an evaluation EnvRunner): builds an
       `EpisodeRecord`, asks the rater (subject to `rate_fraction` and the label budget),
       rewrites the rewards to `env_weight * r_t` plus `feedback_weight * label` on the last
       step, and logs `feedback/reward_mean` and `feedback/agreement` (with the oracle).

    At each `sample()` end it logs the counts `feedback/labels`, `feedback/skipped`,
    `feedback/not_rated` (sums) and `feedback/labels_lifetime`, and flushes the hub log.

    Args:
        config: Feedback options; default: the class attribute `feedback_config` (set by
            `make_feedback_callback`), which by default has feedback disabled.
    """

    feedback_config: ClassVar[FeedbackConfig] = FeedbackConfig()

    def __init__(self, config: FeedbackConfig | None = None) -> None:
        super().__init__()
        self.config: FeedbackConfig = config if config is not None else self.feedback_config
        self._engine: FeedbackEngine | None = None
        self._hub_client: HubClient | None = None  # EnvRunner side of the hub (use_hub only)
        self._warned_chunks = False
        self._counts: Counter[str] = Counter()  # outcome statuses since the last sample() end
        self._algo_hub: ray.actor.ActorHandle | None = (
            None  # hub handle in the algorithm process (use_hub only)
        )

    # --- algorithm process -----------------------------------------------------------------

    def on_algorithm_init(
        self, *, algorithm: Any, metrics_logger: Any = None, **kwargs: Any
    ) -> None:
        """Create the hub from the algorithm process, so the hub lives as long as the run."""
        if self.config.enabled and self.config.use_hub:
            name = self.config.hub_actor_name(getattr(algorithm, "trial_id", None))
            self._algo_hub = get_or_create_hub(name, label_budget=self.config.label_budget)
            # A hub of the same name may survive an earlier run in this driver: start fresh.
            ray.get(self._algo_hub.reset.remote(self.config.label_budget), timeout=60)
            logger.info("feedback hub %r ready (label_budget=%s)", name, self.config.label_budget)

    def on_train_result(self, *, algorithm: Any, result: dict, **kwargs: Any) -> None:
        """Add the hub's totals to the result under `feedback_hub` (one call per iteration)."""
        if self._algo_hub is not None:
            stats = ray.get(self._algo_hub.stats.remote(), timeout=30)
            result["feedback_hub"] = {k: v for k, v in stats.items() if k != "per_runner"}

    # --- EnvRunner ---------------------------------------------------------------------------

    def on_episode_end(
        self,
        *,
        episode: SingleAgentEpisode,
        prev_episode_chunks: Sequence[SingleAgentEpisode] | None = None,
        env_runner: Any = None,
        metrics_logger: MetricsLogger | None = None,
        **kwargs: Any,
    ) -> None:
        """Log task metrics; apply feedback to the episode's rewards when enabled."""
        window = int(
            getattr(getattr(env_runner, "config", None), "metrics_num_episodes_for_smoothing", 0)
            or DEFAULT_WINDOW
        )
        final_info = episode.get_infos(-1) or {}
        if metrics_logger is not None:
            if "success" in final_info:
                metrics_logger.log_value(
                    ACCURACY, float(final_info["success"]), reduce="mean", window=window
                )
            if "score" in final_info:
                metrics_logger.log_value(
                    SCORE, float(final_info["score"]), reduce="mean", window=window
                )

        if not self.config.enabled or _in_evaluation(env_runner):
            return

        runner_id = _runner_id(env_runner)
        chunks = list(prev_episode_chunks or [])
        if chunks and not self._warned_chunks:
            # Earlier chunks were already sent to the learner: their rewards cannot change.
            logger.warning(
                "episode %s arrived in %d chunks; feedback can only reach the last one. "
                "Use batch_mode='complete_episodes' (apply_feedback sets it).",
                episode.id_,
                len(chunks) + 1,
            )
            self._warned_chunks = True
        record = record_from_episode(episode, prev_chunks=chunks, env_runner_id=runner_id)
        outcome = self._get_engine(env_runner, runner_id).process(record)

        shaped = shape_rewards(
            episode.get_rewards(),
            outcome.feedback_reward,
            env_weight=self.config.env_weight,
            feedback_weight=self.config.feedback_weight,
        )
        episode.set_rewards(new_data=shaped, at_indices=slice(0, len(shaped)))

        self._counts[outcome.status] += 1
        if metrics_logger is not None and outcome.label is not None:
            metrics_logger.log_value(
                REWARD_MEAN, outcome.label.reward, reduce="mean", window=window
            )
            metrics_logger.log_value(
                AGREEMENT, float(bool(outcome.agreement)), reduce="mean", window=window
            )
        if self._hub_client is not None and outcome.status in ("labelled", "skipped"):
            self._hub_client.log(hub_entry(record, outcome))

    def on_sample_end(
        self, *, env_runner: Any = None, metrics_logger: MetricsLogger | None = None, **kwargs: Any
    ) -> None:
        """Log this sample() call's label counts; send its hub log entries (fire-and-forget)."""
        if self.config.enabled and metrics_logger is not None and not _in_evaluation(env_runner):
            # Counts go out once per sample() rather than once per episode: each log_value
            # costs ~10 us, the bulk of the callback's per-episode time.
            c = self._counts
            metrics_logger.log_value(LABELS, c["labelled"], reduce="sum")
            metrics_logger.log_value(LABELS_LIFETIME, c["labelled"], reduce="lifetime_sum")
            metrics_logger.log_value(SKIPPED, c["skipped"], reduce="sum")
            metrics_logger.log_value(NOT_RATED, c["not_sampled"] + c["no_budget"], reduce="sum")
            c.clear()
        if self._hub_client is not None:
            self._hub_client.flush()

    # --- helpers -----------------------------------------------------------------------------

    def _get_engine(self, env_runner: Any, runner_id: int) -> FeedbackEngine:
        # Built on first use: the EnvRunner (its worker_index seeds the rater, its trial id
        # names the hub) is only known once a hook runs inside it.
        if self._engine is None:
            allowance = None
            if self.config.use_hub:
                trial_id = getattr(env_runner, "tune_trial_id", None)
                hub = get_or_create_hub(
                    self.config.hub_actor_name(trial_id), label_budget=self.config.label_budget
                )
                self._hub_client = HubClient(
                    hub,
                    env_runner_id=runner_id,
                    label_budget=self.config.label_budget,
                    block=self.config.hub_block,
                )
                allowance = self._hub_client.allowance
            self._engine = FeedbackEngine(self.config, stream=runner_id, allowance=allowance)
            logger.info(
                "feedback on in EnvRunner %d: rater=%r, hub=%s",
                runner_id,
                self._engine.rater,
                self.config.use_hub,
            )
        return self._engine


def _runner_id(env_runner: Any) -> int:
    index = getattr(env_runner, "worker_index", None)
    return -1 if index is None else int(index)


def _in_evaluation(env_runner: Any) -> bool:
    # Evaluation episodes measure the policy; rating them would spend labels on nothing.
    return bool(getattr(getattr(env_runner, "config", None), "in_evaluation", False))


def make_feedback_callback(config: FeedbackConfig) -> type[FeedbackCallback]:
    """A `FeedbackCallback` subclass that carries `config`, for `config.callbacks(...)`.

    RLlib instantiates callbacks with no arguments in every EnvRunner; the returned class
    needs none. It pickles by value (config included) to remote EnvRunners and checkpoints.
    """
    return type(
        "FeedbackCallback",
        (FeedbackCallback,),
        {
            "feedback_config": config,
            "__module__": __name__,
            # Not importable under this name, so cloudpickle pickles the class by value.
            "__qualname__": "make_feedback_callback.<locals>.FeedbackCallback",
            "__doc__": f"FeedbackCallback bound to a FeedbackConfig (rater={config.rater!r}).",
        },
    )
