"""`apply_feedback`: install the feedback callback on an RLlib config with what it needs."""

from __future__ import annotations

import logging
from typing import TypeVar

from ray.rllib.algorithms.algorithm_config import AlgorithmConfig
from ray.rllib.callbacks.callbacks import RLlibCallback
from ray.rllib.env.single_agent_env_runner import SingleAgentEnvRunner
from ray.rllib.utils import force_list

from mmrlhf.callbacks.env_runner import CompleteEpisodesEnvRunner
from mmrlhf.callbacks.feedback import FeedbackCallback, make_feedback_callback
from mmrlhf.feedback.config import FeedbackConfig
from mmrlhf.models.learner import KL_COEFF_CONFIG, KL_REFERENCE_CONFIG, MultimodalPPOLearner

logger = logging.getLogger(__name__)

ConfigT = TypeVar("ConfigT", bound=AlgorithmConfig)


def apply_feedback(config: ConfigT, feedback: FeedbackConfig) -> ConfigT:
    """Install a `FeedbackCallback` bound to `feedback` on `config` (in place) and return it.

    - Any earlier `FeedbackCallback` is replaced (applying twice never rates twice); other
      callbacks are kept, after this one.
    - With feedback enabled, sets `batch_mode="complete_episodes"`: RLlib ships unfinished
      episode chunks to the learner before the episode ends, and the feedback reward written at
      the end could not reach them. It also switches the default EnvRunner to
      `CompleteEpisodesEnvRunner`: in that batch mode RLlib 2.60 re-seeds the envs at every
      `sample()` call and, with a fixed seed, replays the same episodes.
    - With feedback disabled the callback still logs `accuracy` and `score`.
    - `kl_coeff > 0` passes the KL penalty toward a reference policy to the learner through
      `learner_config_dict` (the learner class must be `MultimodalPPOLearner` or a subclass).

    Args:
        config: An RLlib algorithm config (e.g. `PPOConfig`), not frozen.
        feedback: Feedback options.
    """
    others = [
        cls
        for cls in force_list(config.callbacks_class)
        if cls is not RLlibCallback
        and not (isinstance(cls, type) and issubclass(cls, FeedbackCallback))
    ]
    callback = make_feedback_callback(feedback)
    config.callbacks(callbacks_class=[callback, *others] if others else callback)
    if feedback.enabled:
        config.env_runners(batch_mode="complete_episodes")
        if config.env_runner_cls in (None, SingleAgentEnvRunner):
            config.env_runners(env_runner_cls=CompleteEpisodesEnvRunner)
        if (
            feedback.label_budget is not None
            and feedback.source == "rater"
            and not feedback.use_hub
            and config.num_env_runners > 1
        ):
            logger.warning(
                "label_budget=%d without use_hub is per EnvRunner: up to %d labels in all "
                "with %d EnvRunners; set use_hub=True for one shared budget",
                feedback.label_budget,
                feedback.label_budget * config.num_env_runners,
                config.num_env_runners,
            )
    if feedback.kl_coeff > 0:
        learner_class = config.learner_class
        ours = isinstance(learner_class, type) and issubclass(learner_class, MultimodalPPOLearner)
        if not ours:
            logger.warning(
                "kl_coeff=%g needs learner_class=MultimodalPPOLearner (got %s): no KL penalty",
                feedback.kl_coeff,
                getattr(learner_class, "__name__", learner_class),
            )
        config.learners(
            learner_config_dict={
                **(config.learner_config_dict or {}),  # keep what the trainer set
                KL_COEFF_CONFIG: feedback.kl_coeff,
                KL_REFERENCE_CONFIG: feedback.kl_reference,
            }
        )
    return config
