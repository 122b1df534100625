"""`RewardScorer`: an EnvRunner's copy of the newest reward model, turning episodes into rewards.

The reward of an episode is the ensemble-mean reward-model output (minus the published
prompt baseline, `feedback.contrast`, when the hub sends one), normalised by a running
mean/std and clipped: `clip((r - mean) / std, -clip, clip)`. When a new version is loaded the
running statistics restart from the hub's statistics for that version (mean/std on recent
episodes) with a pseudo-count of `prior_count`, so the first episodes after a switch are
already on the right scale, and then follow this runner's own episodes.

While the hub asks for one, an exploration bonus is added after clipping:
`novelty_scale / sqrt(1 + n)`, n the labelled episodes with this response
(`feedback.novelty`).
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass

from mmrlhf.feedback.contrast import PromptBaseline
from mmrlhf.feedback.novelty import judgement_key, novelty_bonus
from mmrlhf.feedback.reward_model import PublishedRewardModel, RewardEnsemble
from mmrlhf.feedback.samples import EpisodeSample, stack_samples

logger = logging.getLogger(__name__)


@dataclass
class RunningMeanStd:
    """Mean and variance of a stream of numbers (Welford), optionally seeded with a prior.

    Attributes:
        mean: Current mean.
        var: Current (population) variance.
        count: Weight of what has been seen (prior pseudo-count included).
    """

    mean: float = 0.0
    var: float = 1.0
    count: float = 0.0

    def reset(self, mean: float = 0.0, std: float = 1.0, count: float = 0.0) -> None:
        """Start again from a prior: `count` pseudo-observations with this mean and std."""
        self.mean, self.var, self.count = float(mean), float(std) ** 2, float(count)

    def update(self, x: float) -> None:
        """Add one observation."""
        self.count += 1.0
        delta = x - self.mean
        self.mean += delta / self.count
        # Population variance update (Welford) expressed on `var` directly.
        self.var += (delta * (x - self.mean) - self.var) / self.count

    @property
    def std(self) -> float:
        """Standard deviation (never below 1e-6)."""
        return max(math.sqrt(max(self.var, 0.0)), 1e-6)

    def normalize(self, x: float, clip: float) -> float:
        """`(x - mean) / std` clipped to [-clip, clip]."""
        return float(min(clip, max(-clip, (x - self.mean) / self.std)))


class RewardScorer:
    """Scores finished episodes with the newest loaded reward model.

    Args:
        clip: Normalised rewards are clipped to [-clip, clip].
        prior_count: Pseudo-count of the published statistics after a version switch.
    """

    def __init__(self, *, clip: float = 5.0, prior_count: int = 256) -> None:
        self.clip = clip
        self.prior_count = prior_count
        self.version = 0
        self.ensemble: RewardEnsemble | None = None
        self.stats = RunningMeanStd()
        self.novelty_scale = 0.0
        self.judged: dict[str, int] = {}
        self.baseline = PromptBaseline()

    @property
    def ready(self) -> bool:
        """Whether a reward model has been loaded."""
        return self.ensemble is not None

    def load(self, published: PublishedRewardModel) -> bool:
        """Switch to `published` if it is newer than the loaded version; return whether it did."""
        if published.version <= self.version:
            return False
        if self.ensemble is None or self.ensemble.spec.to_dict() != published.spec:
            self.ensemble = published.build()
        else:
            self.ensemble.load_state_dict(published.state_dict)
        self.version = published.version
        self.novelty_scale = published.novelty_scale
        self.judged = dict(published.judged)
        self.baseline = PromptBaseline.from_state(published.prompt_baseline)
        self.stats.reset(published.norm_mean, published.norm_std, self.prior_count)
        logger.debug("loaded reward model v%d", published.version)
        return True

    def bonus(self, sample: EpisodeSample) -> float:
        """The exploration bonus of one episode (0 when the hub asks for none)."""
        if self.novelty_scale <= 0.0:
            return 0.0
        return novelty_bonus(self.novelty_scale, self.judged.get(judgement_key(sample), 0))

    def score(self, sample: EpisodeSample) -> tuple[float, float, float]:
        """(normalised reward plus exploration bonus, raw ensemble mean, ensemble std) of one
        episode.

        Raises:
            RuntimeError: If no reward model is loaded yet.
        """
        if self.ensemble is None:
            raise RuntimeError("no reward model loaded yet; check `ready` first")
        mean, std = self.ensemble.predict(
            stack_samples([sample]), minus=self.baseline.amounts([sample])
        )
        raw = float(mean[0])
        self.stats.update(raw)
        return self.stats.normalize(raw, self.clip) + self.bonus(sample), raw, float(std[0])
