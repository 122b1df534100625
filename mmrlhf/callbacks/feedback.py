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

from mmrlhf.callbacks.episodes import (
    episode_rewards,
    final_info,
    record_from_episode,
    set_episode_rewards,
)
from mmrlhf.callbacks.reward_model import RewardModelFeedback, env_tokenizer
from mmrlhf.feedback.config import FeedbackConfig
from mmrlhf.feedback.engine import FeedbackEngine, hub_entry, shape_rewards
from mmrlhf.feedback.hub import HubClient, get_or_create_hub
from mmrlhf.feedback.rm_hub import get_or_create_rm_hub

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
# Per-iteration sums behind REWARD_MEAN and AGREEMENT (rater source): logged once per
# sample() rather than once per episode, which halves the callback's cost on one-step tasks.
REWARD_SUM = "feedback/reward_sum"
AGREEMENT_SUM = "feedback/agreement_sum"
HUMAN_LABELS = "feedback/human_labels"  # blocking mode: a person answered in time
FALLBACKS = "feedback/fallbacks"  # blocking mode: nobody did, the rater scored it
# source="reward_model" (RLHF), EnvRunner side.
RM_VERSION = "feedback/rm_version"  # newest reward-model version any runner scores with
RM_VERSION_MIN = "feedback/rm_version_min"  # oldest version still in use by a runner
RM_REWARD_MEAN = "feedback/rm_reward_mean"  # normalised reward-model reward
RM_RAW_MEAN = "feedback/rm_raw_mean"  # reward-model output before normalisation
RM_UNCERTAINTY = "feedback/rm_uncertainty"  # ensemble std
RM_UNSCORED = "feedback/rm_unscored"  # episodes finished before any model was loaded
RM_SENT = "feedback/rm_episodes_sent"
# Algorithm side: the reward-model hub's totals, under result["feedback"] (and labels also
# under env_runners/feedback/labels_lifetime, where the progress line reads them).
RESULT_SECTION = "feedback"

DEFAULT_WINDOW = 100


class FeedbackCallback(RLlibCallback):
    """Turns episode-end feedback into reward and logs task metrics.

    At each episode end (in the EnvRunner, before the episode is shipped to the learner):

    1. logs `accuracy` (final `info["success"]`) and `score` (final `info["score"]`), always;
    2. when feedback is enabled (and this is not an evaluation EnvRunner): builds an
       `EpisodeRecord`, asks the rater (subject to `rate_fraction` and the label budget),
       rewrites the rewards to `env_weight * r_t` plus `feedback_weight * label` on the last
       step, and adds the label's reward and its agreement with the oracle to sums.

    At each `sample()` end it logs the counts `feedback/labels`, `feedback/skipped`,
    `feedback/not_rated`, the label sums (all per iteration) and `feedback/labels_lifetime`,
    and flushes the hub log. After each iteration (algorithm process) it turns the sums into
    `feedback/reward_mean` and `feedback/agreement`: means over the iteration's labels.

    With `source="reward_model"` step 2 is different: every episode is scored by the newest
    reward model this EnvRunner has (`RewardModelFeedback`), a fraction is sent to the
    `RewardModelHub`, and `feedback/rm_*` metrics are logged. The algorithm process creates
    the hub, asks it for one `step` (queries, labels, training, publication) after every
    iteration without waiting for it, and adds the hub's totals under `result["feedback"]`.

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
        self._sums: Counter[str] = Counter()  # label reward and agreement sums, same period
        self._algo_hub: ray.actor.ActorHandle | None = (
            None  # hub handle in the algorithm process (use_hub only)
        )
        self._rm: RewardModelFeedback | None = None  # EnvRunner side (reward_model source)
        self._rm_hub: ray.actor.ActorHandle | None = None  # algorithm side (reward_model)
        self._rm_step: ray.ObjectRef | None = None  # the hub step in flight, if any

    # --- algorithm process -----------------------------------------------------------------

    def on_algorithm_init(
        self, *, algorithm: Any, metrics_logger: Any = None, **kwargs: Any
    ) -> None:
        """Create the hub(s) from the algorithm process, so they live as long as the run."""
        if self.config.enabled and self.config.source == "reward_model":
            name = self.config.rm_hub_actor_name(getattr(algorithm, "trial_id", None))
            self._rm_hub = get_or_create_rm_hub(name, self.config)
            ray.get(self._rm_hub.reset.remote(self.config), timeout=120)
            logger.info("reward-model hub %r ready (label_budget=%s)", name,
                        self.config.label_budget)  # fmt: skip
            return
        if self.config.enabled and self.config.use_hub:
            name = self.config.hub_actor_name(getattr(algorithm, "trial_id", None))
            self._algo_hub = get_or_create_hub(name, label_budget=self.config.label_budget)
            # A hub of the same name may survive an earlier run in this driver: start fresh.
            ray.get(self._algo_hub.reset.remote(self.config.label_budget), timeout=60)
            logger.info("feedback hub %r ready (label_budget=%s)", name, self.config.label_budget)

    def on_train_result(self, *, algorithm: Any, result: dict, **kwargs: Any) -> None:
        """Add the hub's totals to the result under `feedback_hub` (one call per iteration);
        with a reward model, start the hub's next step and report its totals."""
        if self._rm_hub is not None:
            self._reward_model_iteration(result)
        else:
            _label_means(result)
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
        final = final_info(episode)
        if metrics_logger is not None:
            if "success" in final:
                metrics_logger.log_value(
                    ACCURACY, float(final["success"]), reduce="mean", window=window
                )
            if "score" in final:
                metrics_logger.log_value(SCORE, float(final["score"]), reduce="mean", window=window)

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
        if self.config.source == "reward_model":
            self._score_with_reward_model(
                record, episode, chunks, env_runner, runner_id, metrics_logger, window, kwargs
            )
            return
        outcome = self._get_engine(env_runner, runner_id).process(record)

        self._write_rewards(episode, outcome.feedback_reward)

        self._counts[outcome.status] += 1
        if outcome.label is not None:
            self._sums["reward"] += outcome.label.reward
            self._sums["agreement"] += float(bool(outcome.agreement))
        if metrics_logger is not None and outcome.label is not None and self.config.human_blocking:
            human = outcome.label.rater.startswith("human:")
            metrics_logger.log_value(HUMAN_LABELS, int(human), reduce="sum")
            metrics_logger.log_value(FALLBACKS, int(not human), reduce="sum")
        if self._hub_client is not None and outcome.status in ("labelled", "skipped"):
            self._hub_client.log(hub_entry(record, outcome))

    def on_sample_end(
        self, *, env_runner: Any = None, metrics_logger: MetricsLogger | None = None, **kwargs: Any
    ) -> None:
        """Log this sample() call's label counts; send its hub log entries (fire-and-forget)."""
        if self._rm is not None:
            self._rm.end_sample()
            if metrics_logger is not None:
                self._log_reward_model_counts(metrics_logger)
            return
        if self.config.enabled and metrics_logger is not None and not _in_evaluation(env_runner):
            # Counts go out once per sample() rather than once per episode: each log_value
            # costs ~10 us, the bulk of the callback's per-episode time.
            c = self._counts
            metrics_logger.log_value(LABELS, c["labelled"], reduce="sum")
            metrics_logger.log_value(LABELS_LIFETIME, c["labelled"], reduce="lifetime_sum")
            metrics_logger.log_value(SKIPPED, c["skipped"], reduce="sum")
            metrics_logger.log_value(NOT_RATED, c["not_sampled"] + c["no_budget"], reduce="sum")
            metrics_logger.log_value(REWARD_SUM, self._sums["reward"], reduce="sum")
            metrics_logger.log_value(AGREEMENT_SUM, self._sums["agreement"], reduce="sum")
            c.clear()
            self._sums.clear()
        if self._hub_client is not None:
            self._hub_client.flush()

    # --- reward model (source="reward_model") -------------------------------------------

    def _reward_model_iteration(self, result: dict) -> None:
        # Never two steps at once and never a wait: a step still training when the next
        # iteration ends is left alone, and the schedule catches up with owed labels later.
        assert self._rm_hub is not None
        if self._rm_step is not None and ray.wait([self._rm_step], timeout=0)[0]:
            try:
                ray.get(self._rm_step)
            except ray.exceptions.RayError:
                logger.exception("reward-model hub step failed")
            self._rm_step = None
        if self._rm_step is None:
            self._rm_step = self._rm_hub.step.remote(int(result.get("training_iteration", 0)))
        stats = ray.get(self._rm_hub.stats.remote(), timeout=60)
        result[RESULT_SECTION] = stats
        env_runners = result.setdefault("env_runners", {})
        if isinstance(env_runners, dict):
            env_runners[LABELS_LIFETIME] = stats["labels"]

    def _score_with_reward_model(
        self,
        record: Any,
        episode: SingleAgentEpisode,
        chunks: list[SingleAgentEpisode],
        env_runner: Any,
        runner_id: int,
        metrics_logger: MetricsLogger | None,
        window: int,
        hook_kwargs: dict[str, Any],
    ) -> None:
        if self._rm is None:
            # Built on first use, when the runner (trial id, worker index, env) is known.
            trial_id = getattr(env_runner, "tune_trial_id", None)
            hub = get_or_create_rm_hub(self.config.rm_hub_actor_name(trial_id), self.config)
            env_config = getattr(getattr(env_runner, "config", None), "env_config", None)
            tokenizer = env_tokenizer(
                hook_kwargs.get("env"), hook_kwargs.get("env_index"), env_config
            )
            self._rm = RewardModelFeedback(
                self.config, hub=hub, runner_id=runner_id, tokenizer=tokenizer
            )
            logger.info("reward-model feedback on in EnvRunner %d", runner_id)
        floor_logp = getattr(hook_kwargs.get("rl_module"), "floor_logp", None)
        scored = self._rm.process(record, episode, chunks, floor_logp=floor_logp)
        self._write_rewards(episode, scored.reward)
        self._counts["rm_scored" if scored.reward is not None else "rm_unscored"] += 1
        if metrics_logger is not None and scored.reward is not None:
            metrics_logger.log_value(REWARD_MEAN, scored.reward, reduce="mean", window=window)
            metrics_logger.log_value(RM_REWARD_MEAN, scored.reward, reduce="mean", window=window)
            metrics_logger.log_value(RM_RAW_MEAN, scored.raw, reduce="mean", window=window)
            metrics_logger.log_value(
                RM_UNCERTAINTY, scored.uncertainty, reduce="mean", window=window
            )

    def _log_reward_model_counts(self, metrics_logger: MetricsLogger) -> None:
        assert self._rm is not None
        version = self._rm.version
        metrics_logger.log_value(RM_VERSION, version, reduce="max", window=1)
        metrics_logger.log_value(RM_VERSION_MIN, version, reduce="min", window=1)
        metrics_logger.log_value(RM_UNSCORED, self._counts["rm_unscored"], reduce="sum")
        sent = self._rm.client.sent
        metrics_logger.log_value(RM_SENT, sent - self._counts["rm_sent_logged"], reduce="sum")
        self._counts.clear()
        self._counts["rm_sent_logged"] = sent

    # --- helpers -----------------------------------------------------------------------------

    def _write_rewards(self, episode: SingleAgentEpisode, feedback: float | None) -> None:
        # Before the episode is shipped to the learner, so PPO's advantages use these rewards.
        shaped = shape_rewards(
            episode_rewards(episode),
            feedback,
            env_weight=self.config.env_weight,
            feedback_weight=self.config.feedback_weight,
        )
        set_episode_rewards(episode, shaped)

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


def _label_means(result: dict) -> None:
    """Turn this iteration's label sums (all EnvRunners) into `REWARD_MEAN`/`AGREEMENT`."""
    env_runners = result.get("env_runners")
    if not isinstance(env_runners, dict):
        return
    labels = env_runners.get(LABELS)
    if labels and REWARD_SUM in env_runners:
        env_runners[REWARD_MEAN] = float(env_runners[REWARD_SUM]) / float(labels)
        env_runners[AGREEMENT] = float(env_runners.get(AGREEMENT_SUM, 0.0)) / float(labels)


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
