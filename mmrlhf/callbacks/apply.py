"""`apply_feedback`: install the feedback callback on an RLlib config with what it needs."""

from __future__ import annotations

import logging
from typing import TypeVar

from ray.rllib.algorithms.algorithm_config import AlgorithmConfig
from ray.rllib.callbacks.callbacks import RLlibCallback
from ray.rllib.utils import force_list

from mmrlhf.callbacks.feedback import FeedbackCallback, make_feedback_callback
from mmrlhf.feedback.config import FeedbackConfig

logger = logging.getLogger(__name__)

ConfigT = TypeVar("ConfigT", bound=AlgorithmConfig)


def apply_feedback(config: ConfigT, feedback: FeedbackConfig) -> ConfigT:
    """Install a `FeedbackCallback` bound to `feedback` on `config` (in place) and return it.

    - Any earlier `FeedbackCallback` is replaced (applying twice never rates twice); other
      callbacks are kept, after this one.
    - With feedback enabled, sets `batch_mode="complete_episodes"`: RLlib ships unfinished
      episode chunks to the learner before the episode ends, and the feedback reward written at
      the end could not reach them.
    - With feedback disabled the callback still logs `accuracy` and `score`.

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
        if (
            feedback.label_budget is not None
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
    return config
