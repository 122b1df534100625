"""Per-EnvRunner feedback decisions: rate this episode or not, ask the rater, shape the reward.

`FeedbackEngine` holds everything one EnvRunner needs (its rater, its sampling RNG, its label
allowance) and knows nothing about RLlib: the callback hands it an `EpisodeRecord` and gets a
`FeedbackOutcome` back.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from mmrlhf.feedback.budget import LabelAllowance
from mmrlhf.feedback.config import FeedbackConfig
from mmrlhf.feedback.raters import Rater, agrees
from mmrlhf.feedback.records import EpisodeRecord, Label

logger = logging.getLogger(__name__)

Status = Literal["labelled", "skipped", "not_sampled", "no_budget"]


@dataclass(frozen=True)
class FeedbackOutcome:
    """What happened to one episode.

    Attributes:
        status: `labelled` (a label was given), `skipped` (the rater declined),
            `not_sampled` (left out by `rate_fraction`), `no_budget` (budget exhausted).
        label: The label when `status == "labelled"`, else None.
        agreement: Whether the label agrees with the oracle score (None without a label).
    """

    status: Status
    label: Label | None = None
    agreement: bool | None = None

    @property
    def feedback_reward(self) -> float | None:
        """The label's reward in [0, 1], or None when there is no label."""
        return None if self.label is None else self.label.reward


def shape_rewards(
    env_rewards: Sequence[float],
    feedback_reward: float | None,
    *,
    env_weight: float,
    feedback_weight: float,
) -> list[float]:
    """Rewards to train on: `env_weight * r_t`, plus `feedback_weight * feedback` at the end.

    Args:
        env_rewards: The env's per-step rewards (at least one step).
        feedback_reward: Label reward in [0, 1], or None for no feedback.
        env_weight: Multiplier on every env reward.
        feedback_weight: Multiplier on the feedback reward.
    """
    if not env_rewards:
        raise ValueError("cannot shape the rewards of an empty episode")
    shaped = [env_weight * float(r) for r in env_rewards]
    if feedback_reward is not None:
        shaped[-1] += feedback_weight * feedback_reward
    return shaped


def hub_entry(record: EpisodeRecord, outcome: FeedbackOutcome) -> dict[str, Any]:
    """The plain dict the hub logs for one rated episode."""
    label = outcome.label
    return {
        "episode_id": record.episode_id,
        "env_runner_id": record.env_runner_id,
        "task": record.task,
        "score": record.score,
        "status": outcome.status,
        "reward": None if label is None else label.reward,
        "kind": None if label is None else label.kind,
        "raw": None if label is None else label.raw,
        "rater": None if label is None else label.rater,
    }


class FeedbackEngine:
    """Decides and produces the feedback for each finished episode of one EnvRunner.

    Args:
        config: Feedback options.
        stream: Index of this copy (the EnvRunner's worker_index; -1 outside an EnvRunner).
            Rater and sampling RNGs are seeded from (config.seed, stream).
        allowance: Labels this engine may spend; default: a private budget of
            `config.label_budget`.
        rater: Override the rater built from the config (tests, custom raters).
    """

    def __init__(
        self,
        config: FeedbackConfig,
        *,
        stream: int = -1,
        allowance: LabelAllowance | None = None,
        rater: Rater | None = None,
    ) -> None:
        self.config = config
        self.stream = stream
        self.rater = rater if rater is not None else config.make_rater(stream)
        self.allowance = (
            allowance
            if allowance is not None
            else LabelAllowance.local(config.label_budget, block=config.hub_block)
        )
        # Separate stream from the rater's so changing rate_fraction does not change labels.
        self._sample_rng = np.random.default_rng(
            np.random.SeedSequence([config.seed, stream + 1, 1])
        )

    def process(self, record: EpisodeRecord) -> FeedbackOutcome:
        """Rate `record` if it is sampled and the budget allows; spend a label if one is given."""
        # Always draw (when a draw can matter), so the sampling stream does not depend on
        # budget state.
        fraction = self.config.rate_fraction
        sampled = fraction >= 1.0 or self._sample_rng.random() < fraction
        if not sampled:
            return FeedbackOutcome(status="not_sampled")
        if not self.allowance.available():
            return FeedbackOutcome(status="no_budget")
        label = self.rater.rate(record)
        if label is None:
            return FeedbackOutcome(status="skipped")
        self.allowance.spend()
        return FeedbackOutcome(
            status="labelled", label=label, agreement=agrees(label.reward, record.score)
        )
