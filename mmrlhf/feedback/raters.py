"""Simulated raters: turn an `EpisodeRecord` into a `Label` (or no label).

Every rater owns a numpy `Generator` built from the seed it is given, so a run with the same
seed gets the same labels; there is no global RNG. Each call of `rate` draws a fixed number of
random values whatever the outcome, so one episode's answer never shifts the next one's.

Raters are looked up by name (`make_rater`, `RATERS`); `register_rater` adds new ones. The
names and the parameters each uses:

=========  ===========================================================================
oracle     graded score from ground truth (`record.score`)
noisy      score + N(0, sigma), clipped to [0, 1]; then flipped (r -> 1 - r) w.p. epsilon
mistake    oracle flipped w.p. epsilon (default 0.1)
skip       oracle, but no label w.p. skip_prob (default 0.2)
myopic     step scores weighted by gamma^(T-1-t) (recent steps count most)
binary     thumbs up/down: 1 if score >= threshold else 0
rating     1..rating_levels stars from score (+ N(0, sigma)), mapped back to [0, 1]
click      implicit: click w.p. click_low + (click_high - click_low) * score
dwell      implicit: dwell seconds growing with score, log-normal noise (dwell_noise)
panel      noisy raters with panel_sigmas (each flips w.p. epsilon), mean or majority
=========  ===========================================================================

`skip_prob` applies to every rater (a person may skip any episode).
"""

from __future__ import annotations

import logging
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from typing import ClassVar, Literal, Protocol

import numpy as np

from mmrlhf.feedback.records import EpisodeRecord, Label

logger = logging.getLogger(__name__)

SeedLike = int | np.random.SeedSequence | np.random.Generator
Aggregate = Literal["mean", "majority"]

DEFAULT_MISTAKE_EPSILON = 0.1
DEFAULT_SKIP_PROB = 0.2


def _clip01(x: float) -> float:
    return float(min(1.0, max(0.0, x)))


class Rater(ABC):
    """Something that judges a finished episode.

    Args:
        seed: Seed (int or `SeedSequence`) or a ready `Generator` for this rater's randomness.
    """

    name: ClassVar[str] = "rater"

    def __init__(self, *, seed: SeedLike = 0) -> None:
        self.rng: np.random.Generator = np.random.default_rng(seed)

    @abstractmethod
    def rate(self, record: EpisodeRecord) -> Label | None:
        """Return the label for `record`, or None when the rater gives no label."""

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


class OracleRater(Rater):
    """Perfect rater: the graded task score from ground truth."""

    name = "oracle"

    def rate(self, record: EpisodeRecord) -> Label:
        """Label with reward = `record.score`."""
        return Label(reward=record.score, kind="score", raw=record.score, rater=self.name)


class NoisyRater(Rater):
    """Oracle score plus Gaussian noise, then an occasional outright mistake.

    Args:
        sigma: Std of the Gaussian noise added to the score (result clipped to [0, 1]).
        epsilon: Probability of flipping the label (reward -> 1 - reward).
        seed: See `Rater`.
    """

    name = "noisy"

    def __init__(self, *, sigma: float = 0.1, epsilon: float = 0.0, seed: SeedLike = 0) -> None:
        super().__init__(seed=seed)
        if sigma < 0:
            raise ValueError(f"sigma must be >= 0, got {sigma}")
        if not 0.0 <= epsilon <= 1.0:
            raise ValueError(f"epsilon must be in [0, 1], got {epsilon}")
        self.sigma = sigma
        self.epsilon = epsilon

    def rate(self, record: EpisodeRecord) -> Label:
        """Noisy, possibly flipped label."""
        noise, u = self.rng.standard_normal(), self.rng.random()
        reward = _clip01(record.score + self.sigma * noise)
        if u < self.epsilon:
            reward = 1.0 - reward
        return Label(reward=reward, kind="score", raw=reward, rater=self.name)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(sigma={self.sigma}, epsilon={self.epsilon})"


class MistakeRater(NoisyRater):
    """Oracle that gets it backwards with probability `epsilon` (no Gaussian noise)."""

    name = "mistake"

    def __init__(self, *, epsilon: float = DEFAULT_MISTAKE_EPSILON, seed: SeedLike = 0) -> None:
        super().__init__(sigma=0.0, epsilon=epsilon, seed=seed)


class SkippingRater(Rater):
    """Wraps a rater; gives no label with probability `skip_prob`.

    Args:
        inner: The rater asked when this one does not skip.
        skip_prob: Probability of giving no label.
        seed: See `Rater` (only the skip decision uses it; `inner` has its own).
    """

    name = "skip"

    def __init__(self, inner: Rater, *, skip_prob: float, seed: SeedLike = 0) -> None:
        super().__init__(seed=seed)
        if not 0.0 <= skip_prob <= 1.0:
            raise ValueError(f"skip_prob must be in [0, 1], got {skip_prob}")
        self.inner = inner
        self.skip_prob = skip_prob

    def rate(self, record: EpisodeRecord) -> Label | None:
        """None with probability `skip_prob`, else the inner rater's label."""
        if self.rng.random() < self.skip_prob:
            return None
        return self.inner.rate(record)

    def __repr__(self) -> str:
        return f"SkippingRater({self.inner!r}, skip_prob={self.skip_prob})"


class MyopicRater(Rater):
    """Judges the whole trajectory but remembers recent steps best.

    reward = sum_t w_t * s_t / sum_t w_t with w_t = gamma^(T-1-t), where s_t is the score after
    step t. gamma -> 0 is the oracle (last step only); gamma = 1 averages every step, so an
    agent that was right early and wrong at the end still gets partial credit.

    Args:
        gamma: Discount toward the end of the episode, in [0, 1].
        seed: See `Rater` (unused: the rater is deterministic).
    """

    name = "myopic"

    def __init__(self, *, gamma: float = 0.9, seed: SeedLike = 0) -> None:
        super().__init__(seed=seed)
        if not 0.0 <= gamma <= 1.0:
            raise ValueError(f"gamma must be in [0, 1], got {gamma}")
        self.gamma = gamma

    def rate(self, record: EpisodeRecord) -> Label:
        """Discount-weighted mean of the step scores (the final score if there are none)."""
        scores = np.asarray(record.step_scores or [record.score], dtype=np.float64)
        # gamma**0 == 1 also for gamma == 0, so the last step always has weight 1.
        weights = self.gamma ** np.arange(len(scores) - 1, -1, -1, dtype=np.float64)
        reward = _clip01(float(weights @ scores / weights.sum()))
        return Label(reward=reward, kind="score", raw=reward, rater=self.name)


class BinaryRater(Rater):
    """Thumbs up (1) if the score reaches `threshold`, thumbs down (0) otherwise."""

    name = "binary"

    def __init__(self, *, threshold: float = 0.5, seed: SeedLike = 0) -> None:
        super().__init__(seed=seed)
        self.threshold = threshold

    def rate(self, record: EpisodeRecord) -> Label:
        """1.0 or 0.0."""
        up = 1.0 if record.score >= self.threshold else 0.0
        return Label(reward=up, kind="binary", raw=up, rater=self.name)


class RatingRater(Rater):
    """Star rating: 1..levels stars from the (optionally noisy) score, mapped back to [0, 1].

    Args:
        levels: Number of stars on the scale (>= 2).
        sigma: Std of Gaussian noise on the score before it is rounded to stars.
        seed: See `Rater`.
    """

    name = "rating"

    def __init__(self, *, levels: int = 5, sigma: float = 0.0, seed: SeedLike = 0) -> None:
        super().__init__(seed=seed)
        if levels < 2:
            raise ValueError(f"levels must be >= 2, got {levels}")
        self.levels = levels
        self.sigma = sigma

    def rate(self, record: EpisodeRecord) -> Label:
        """Label with raw = stars (1..levels) and reward = (stars - 1) / (levels - 1)."""
        noisy = _clip01(record.score + self.sigma * self.rng.standard_normal())
        stars = 1 + round(noisy * (self.levels - 1))
        return Label(
            reward=(stars - 1) / (self.levels - 1), kind="rating", raw=float(stars), rater=self.name
        )


class ClickRater(Rater):
    """Implicit feedback: the user clicks with a probability that rises with quality.

    P(click) = low + (high - low) * score. reward = 1 if clicked else 0.
    """

    name = "click"

    def __init__(self, *, low: float = 0.05, high: float = 0.95, seed: SeedLike = 0) -> None:
        super().__init__(seed=seed)
        if not 0.0 <= low <= high <= 1.0:
            raise ValueError(f"need 0 <= low <= high <= 1, got low={low}, high={high}")
        self.low = low
        self.high = high

    def click_prob(self, score: float) -> float:
        """Probability of a click for an episode with this score."""
        return self.low + (self.high - self.low) * score

    def rate(self, record: EpisodeRecord) -> Label:
        """1.0 (click) or 0.0 (no click)."""
        clicked = 1.0 if self.rng.random() < self.click_prob(record.score) else 0.0
        return Label(reward=clicked, kind="click", raw=clicked, rater=self.name)


class DwellRater(Rater):
    """Implicit feedback: time spent on the answer grows with its quality.

    Mean dwell = min_s + (max_s - min_s) * score seconds, times mean-one log-normal noise with
    log-std `noise`; reward = (dwell - min_s) / (max_s - min_s), clipped to [0, 1].
    """

    name = "dwell"

    def __init__(
        self, *, min_s: float = 2.0, max_s: float = 30.0, noise: float = 0.3, seed: SeedLike = 0
    ) -> None:
        super().__init__(seed=seed)
        if not 0.0 <= min_s < max_s:
            raise ValueError(f"need 0 <= min_s < max_s, got min_s={min_s}, max_s={max_s}")
        if noise < 0:
            raise ValueError(f"noise must be >= 0, got {noise}")
        self.min_s = min_s
        self.max_s = max_s
        self.noise = noise

    def rate(self, record: EpisodeRecord) -> Label:
        """Label with raw = dwell seconds."""
        mean = self.min_s + (self.max_s - self.min_s) * record.score
        # exp(noise * z - noise^2 / 2) has mean 1, so the noise does not bias dwell upward.
        dwell = mean * float(np.exp(self.noise * self.rng.standard_normal() - self.noise**2 / 2))
        reward = _clip01((dwell - self.min_s) / (self.max_s - self.min_s))
        return Label(reward=reward, kind="dwell", raw=dwell, rater=self.name)


class PanelRater(Rater):
    """Several raters judge the same episode; their labels are aggregated.

    `mean` averages the members' rewards; `majority` counts members with reward >= 0.5 and
    answers 1, 0, or 0.5 on a tie. Members that skip do not vote; if all skip, no label.
    """

    name = "panel"

    def __init__(
        self, members: Sequence[Rater], *, aggregate: Aggregate = "mean", seed: SeedLike = 0
    ) -> None:
        super().__init__(seed=seed)
        if not members:
            raise ValueError("a panel needs at least one member")
        if aggregate not in ("mean", "majority"):
            raise ValueError(f"aggregate must be 'mean' or 'majority', got {aggregate!r}")
        self.members = list(members)
        self.aggregate = aggregate

    def rate(self, record: EpisodeRecord) -> Label | None:
        """Aggregated label; raw = mean member reward or fraction of up-votes."""
        rewards = [label.reward for m in self.members if (label := m.rate(record)) is not None]
        if not rewards:
            return None
        if self.aggregate == "mean":
            raw = float(np.mean(rewards))
            reward = raw
        else:
            raw = sum(r >= 0.5 for r in rewards) / len(rewards)
            reward = 1.0 if raw > 0.5 else 0.0 if raw < 0.5 else 0.5
        return Label(reward=_clip01(reward), kind="panel", raw=raw, rater=self.name)

    def __repr__(self) -> str:
        return f"PanelRater({self.members!r}, aggregate={self.aggregate!r})"


def agrees(reward: float, oracle_score: float) -> bool:
    """Whether a feedback reward agrees with the oracle: both on the same side of 0.5."""
    return (reward >= 0.5) == (oracle_score >= 0.5)


# ---------------------------------------------------------------------------------------------
# Registry: name -> builder(params, seed) -> Rater. Builders read the flat parameters they need
# from any object with those attributes (in practice a FeedbackConfig).


class RaterParams(Protocol):
    """The flat parameters rater builders read (FeedbackConfig provides them)."""

    sigma: float
    epsilon: float | None
    skip_prob: float | None
    gamma: float
    threshold: float
    rating_levels: int
    click_low: float
    click_high: float
    dwell_min_s: float
    dwell_max_s: float
    dwell_noise: float
    panel_sigmas: Sequence[float]
    aggregate: Aggregate


RaterBuilder = Callable[[RaterParams, np.random.SeedSequence], Rater]
RATERS: dict[str, RaterBuilder] = {}


def register_rater(name: str) -> Callable[[RaterBuilder], RaterBuilder]:
    """Decorator: register `builder(params, seed_sequence) -> Rater` under `name`."""

    def deco(builder: RaterBuilder) -> RaterBuilder:
        if name in RATERS:
            raise ValueError(f"rater {name!r} is already registered")
        RATERS[name] = builder
        return builder

    return deco


def _epsilon(p: RaterParams, default: float = 0.0) -> float:
    return default if p.epsilon is None else p.epsilon


@register_rater("oracle")
def _oracle(p: RaterParams, seed: np.random.SeedSequence) -> Rater:
    return OracleRater(seed=seed)


@register_rater("noisy")
def _noisy(p: RaterParams, seed: np.random.SeedSequence) -> Rater:
    return NoisyRater(sigma=p.sigma, epsilon=_epsilon(p), seed=seed)


@register_rater("mistake")
def _mistake(p: RaterParams, seed: np.random.SeedSequence) -> Rater:
    return MistakeRater(epsilon=_epsilon(p, DEFAULT_MISTAKE_EPSILON), seed=seed)


@register_rater("skip")
def _skip(p: RaterParams, seed: np.random.SeedSequence) -> Rater:
    # The skipping itself is the generic wrapper added by make_rater.
    return OracleRater(seed=seed)


@register_rater("myopic")
def _myopic(p: RaterParams, seed: np.random.SeedSequence) -> Rater:
    return MyopicRater(gamma=p.gamma, seed=seed)


@register_rater("binary")
def _binary(p: RaterParams, seed: np.random.SeedSequence) -> Rater:
    return BinaryRater(threshold=p.threshold, seed=seed)


@register_rater("rating")
def _rating(p: RaterParams, seed: np.random.SeedSequence) -> Rater:
    return RatingRater(levels=p.rating_levels, sigma=p.sigma, seed=seed)


@register_rater("click")
def _click(p: RaterParams, seed: np.random.SeedSequence) -> Rater:
    return ClickRater(low=p.click_low, high=p.click_high, seed=seed)


@register_rater("dwell")
def _dwell(p: RaterParams, seed: np.random.SeedSequence) -> Rater:
    return DwellRater(min_s=p.dwell_min_s, max_s=p.dwell_max_s, noise=p.dwell_noise, seed=seed)


@register_rater("panel")
def _panel(p: RaterParams, seed: np.random.SeedSequence) -> Rater:
    seeds = seed.spawn(len(p.panel_sigmas) + 1)
    members = [
        NoisyRater(sigma=s, epsilon=_epsilon(p), seed=ss)
        for s, ss in zip(p.panel_sigmas, seeds[1:], strict=True)
    ]
    return PanelRater(members, aggregate=p.aggregate, seed=seeds[0])


def rater_seed(seed: int, stream: int = 0) -> np.random.SeedSequence:
    """Seed for one rater instance: independent per `stream` (e.g. the EnvRunner index).

    Args:
        seed: Experiment-level feedback seed (>= 0).
        stream: Which copy of the rater (>= -1; -1 = not in an EnvRunner).
    """
    return np.random.SeedSequence([seed, stream + 1])


def make_rater(name: str, params: RaterParams, seed: np.random.SeedSequence | int = 0) -> Rater:
    """Build the registered rater `name`, wrapped to skip with `params.skip_prob` if > 0.

    Args:
        name: A key of `RATERS`.
        params: Flat rater parameters (a FeedbackConfig).
        seed: Seed for this rater instance (see `rater_seed`).

    Raises:
        ValueError: If `name` is not registered (the message lists the registered names).
    """
    if name not in RATERS:
        raise ValueError(f"unknown rater {name!r}; registered raters: {sorted(RATERS)}")
    seq = seed if isinstance(seed, np.random.SeedSequence) else np.random.SeedSequence(seed)
    base_seed, skip_seed = seq.spawn(2)
    rater = RATERS[name](params, base_seed)
    skip_prob = params.skip_prob
    if skip_prob is None:
        skip_prob = DEFAULT_SKIP_PROB if name == "skip" else 0.0
    if skip_prob > 0:
        rater = SkippingRater(rater, skip_prob=skip_prob, seed=skip_seed)
    logger.debug("built rater %r", rater)
    return rater
