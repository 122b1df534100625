"""RLHF labels (preferences, rankings, ratings, binary) and the simulated preference rater.

Labels name episodes by `episode_id`; the episodes' content (image, prompt, response) travels
separately as `EpisodeSample`s. Simulated and human labels are the same types and enter the
reward-model trainer through the same `add_labels` call, so a label store or web app only has
to produce these dataclasses.

`PreferenceRater` is a Boltzmann-rational judge of episodes' ground-truth scores
(`EpisodeRecord.score` or `EpisodeSample.score`, both in [0, 1]):

- pair (a, b): a tie when |s_a - s_b| <= tie_margin, else a preferred with probability
  sigmoid(beta * (s_a - s_b)); a tie says "both bad" when both scores are at most `both_bad`,
  "both good" when both are at least `both_good` (the buttons of side-by-side labelling pages
  such as Chatbot Arena's "both are bad"; off when the threshold is None);
- ranking of k: Plackett-Luce sampling with weights exp(beta * s) (Gumbel-max), neighbours in
  the sampled order whose scores are within tie_margin share a rank;
- with probability epsilon the answer is uniformly random instead (a mistake); with
  probability skip_prob there is no answer (the person skipped).

Each call draws a fixed number of random values whatever the outcome, so one query's answer
never shifts the next one's.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal, Protocol, get_args

import numpy as np

from mmrlhf.feedback.records import Label

logger = logging.getLogger(__name__)


# What a tie says about both episodes' own quality, beyond "equally good".
TieQuality = Literal["both_good", "both_bad"]
TIE_QUALITIES: tuple[str, ...] = get_args(TieQuality)


@dataclass(frozen=True)
class PreferenceLabel:
    """Episode `a` vs episode `b`.

    Attributes:
        a: Episode id of the first episode.
        b: Episode id of the second episode.
        p_a: Probability that `a` is better: 1.0 (a), 0.0 (b) or 0.5 (tie / can't tell).
        source: Who answered (`"simulated"`, `"human"`, a rater or user name).
        tie: For a tie (p_a 0.5) only: `both_bad` or `both_good` when the rater said so;
            None = just equal. The reward model then also learns both episodes' absolute
            quality (see `absolute_outcomes`).
    """

    a: str
    b: str
    p_a: float
    source: str = "simulated"
    tie: TieQuality | None = None

    def __post_init__(self) -> None:
        if not 0.0 <= self.p_a <= 1.0:
            raise ValueError(f"PreferenceLabel.p_a must be in [0, 1], got {self.p_a}")
        if self.a == self.b:
            raise ValueError(f"a preference needs two different episodes, got {self.a!r} twice")
        if self.tie is not None:
            if self.tie not in TIE_QUALITIES:
                raise ValueError(f"PreferenceLabel.tie must be one of {TIE_QUALITIES} or None, "
                                 f"got {self.tie!r}")  # fmt: skip
            if self.p_a != 0.5:
                raise ValueError(f"PreferenceLabel.tie ({self.tie!r}) needs a tie (p_a 0.5), "
                                 f"got p_a {self.p_a}")  # fmt: skip

    @property
    def episode_ids(self) -> tuple[str, ...]:
        """Episodes this label is about."""
        return (self.a, self.b)


@dataclass(frozen=True)
class RankingLabel:
    """k episodes put in order.

    Attributes:
        episodes: Episode ids.
        ranks: Place of each episode, 0 = best; equal numbers are ties.
        source: Who answered.
    """

    episodes: tuple[str, ...]
    ranks: tuple[int, ...]
    source: str = "simulated"

    def __post_init__(self) -> None:
        if len(self.episodes) < 2 or len(self.episodes) != len(self.ranks):
            raise ValueError(
                f"a ranking needs >= 2 episodes and one rank each, got {len(self.episodes)} "
                f"episodes and {len(self.ranks)} ranks"
            )
        if len(set(self.episodes)) != len(self.episodes) or min(self.ranks) < 0:
            raise ValueError("ranking episodes must be distinct and ranks >= 0")

    @property
    def episode_ids(self) -> tuple[str, ...]:
        """Episodes this label is about."""
        return self.episodes


@dataclass(frozen=True)
class RatingLabel:
    """A graded judgement of one episode, mapped to [0, 1] (1 = best)."""

    episode: str
    value: float
    source: str = "simulated"

    def __post_init__(self) -> None:
        if not (math.isfinite(self.value) and 0.0 <= self.value <= 1.0):
            raise ValueError(f"RatingLabel.value must be in [0, 1], got {self.value}")

    @property
    def episode_ids(self) -> tuple[str, ...]:
        """Episodes this label is about."""
        return (self.episode,)


@dataclass(frozen=True)
class BinaryLabel:
    """Thumbs up/down or implicit feedback (a click) on one episode."""

    episode: str
    positive: bool
    source: str = "simulated"

    @property
    def episode_ids(self) -> tuple[str, ...]:
        """Episodes this label is about."""
        return (self.episode,)


RLHFLabel = PreferenceLabel | RankingLabel | RatingLabel | BinaryLabel

# Kinds of `records.Label` (per-episode raters) that are 0/1 signals rather than grades.
BINARY_KINDS: frozenset[str] = frozenset({"binary", "click"})


def from_rater_label(episode_id: str, label: Label) -> RatingLabel | BinaryLabel:
    """Turn a per-episode rater's `Label` into a reward-model label (binary or rating)."""
    if label.kind in BINARY_KINDS:
        return BinaryLabel(episode_id, label.reward >= 0.5, source=label.rater)
    return RatingLabel(episode_id, label.reward, source=label.rater)


def label_cost(label: RLHFLabel) -> int:
    """Labels a label counts as against the budget: a ranking of k counts k - 1 (the fewest
    comparisons that produce it), everything else 1."""
    return len(label.episodes) - 1 if isinstance(label, RankingLabel) else 1


def pairwise_outcomes(label: PreferenceLabel | RankingLabel) -> list[tuple[str, str]]:
    """Strict (better, worse) episode pairs implied by a preference or ranking (ties dropped)."""
    if isinstance(label, PreferenceLabel):
        if label.p_a > 0.5:
            return [(label.a, label.b)]
        return [(label.b, label.a)] if label.p_a < 0.5 else []
    items = list(zip(label.episodes, label.ranks, strict=True))
    return [(i, j) for i, ri in items for j, rj in items if ri < rj]


def absolute_outcomes(label: RLHFLabel) -> list[tuple[str, bool]]:
    """(episode, good) for each episode a label judges on its own: both episodes of a tie
    marked `both_good` (True) or `both_bad` (False); none for every other label."""
    if isinstance(label, PreferenceLabel) and label.tie is not None:
        good = label.tie == "both_good"
        return [(label.a, good), (label.b, good)]
    return []


def strict_winners(labels: Sequence[RLHFLabel]) -> list[str]:
    """Episodes that strictly won their label: a pair's preferred episode (p_a of 1 or 0; ties
    and soft labels name none) and a ranking's single best (none when the top is tied)."""
    winners: list[str] = []
    for label in labels:
        if isinstance(label, PreferenceLabel) and label.p_a in (0.0, 1.0):
            winners.append(label.a if label.p_a == 1.0 else label.b)
        elif isinstance(label, RankingLabel):
            best = min(label.ranks)
            top = [e for e, rank in zip(label.episodes, label.ranks, strict=True) if rank == best]
            if len(top) == 1:
                winners.append(top[0])
    return winners


def own_judgements(labels: Sequence[RLHFLabel]) -> list[tuple[str, bool]]:
    """(episode, good) for every episode the labels judge on its own: thumbs up / down, and
    both episodes of a tie marked "both good" / "both bad" (`absolute_outcomes`)."""
    judged = [(lab.episode, lab.positive) for lab in labels if isinstance(lab, BinaryLabel)]
    return judged + [o for lab in labels for o in absolute_outcomes(lab)]


def judged_good(labels: Sequence[RLHFLabel]) -> list[str]:
    """Episodes the labels showed right: strict winners (`strict_winners`), both episodes of
    a tie marked "both good", thumbs up (`own_judgements`)."""
    return strict_winners(labels) + [e for e, good in own_judgements(labels) if good]


class Scored(Protocol):
    """Anything a simulated rater can judge: an episode id and a ground-truth score."""

    @property
    def episode_id(self) -> str: ...

    @property
    def score(self) -> float: ...


class PreferenceRater:
    """Simulated person who compares or ranks episodes (see the module docstring).

    Args:
        beta: Boltzmann rationality on scores in [0, 1] (higher = more reliable; inf =
            always prefers the higher score).
        epsilon: Probability of a uniformly random answer.
        tie_margin: Scores this close (or closer) are reported as a tie.
        both_bad: A tie whose scores are both at most this is reported `both_bad`
            (None = never).
        both_good: A tie whose scores are both at least this is reported `both_good`
            (None = never).
        skip_prob: Probability of giving no answer.
        seed: Seed for this rater's generator.
        source: Written into every label's `source`.
    """

    def __init__(
        self,
        *,
        beta: float = 10.0,
        epsilon: float = 0.0,
        tie_margin: float = 0.0,
        both_bad: float | None = None,
        both_good: float | None = None,
        skip_prob: float = 0.0,
        seed: int | np.random.SeedSequence = 0,
        source: str = "simulated",
    ) -> None:
        if beta < 0 or not 0.0 <= epsilon <= 1.0 or tie_margin < 0 or not 0 <= skip_prob <= 1:
            raise ValueError(
                f"need beta >= 0, epsilon and skip_prob in [0, 1], tie_margin >= 0; got "
                f"beta={beta}, epsilon={epsilon}, tie_margin={tie_margin}, skip_prob={skip_prob}"
            )
        self.beta = beta
        self.epsilon = epsilon
        if both_bad is not None and both_good is not None and both_bad >= both_good:
            raise ValueError(
                f"both_bad ({both_bad}) must be below both_good ({both_good}): one tie cannot "
                f"be both"
            )
        self.tie_margin = tie_margin
        self.both_bad = both_bad
        self.both_good = both_good
        self.skip_prob = skip_prob
        self.source = source
        self.rng = np.random.default_rng(seed)

    def p_first(self, s_a: float, s_b: float) -> float:
        """P(a preferred over b) for a rational (no-mistake) answer with these scores."""
        if math.isinf(self.beta):
            return 1.0 if s_a > s_b else 0.0 if s_a < s_b else 0.5
        return 1.0 / (1.0 + math.exp(-self.beta * (s_a - s_b)))

    def compare(self, a: Scored, b: Scored) -> PreferenceLabel | None:
        """Which of two episodes is better (or a tie); None when skipped."""
        skip, mistake, u = self.rng.random(3)
        if skip < self.skip_prob:
            return None
        if mistake < self.epsilon:
            p_a = 1.0 if u < 0.5 else 0.0
        elif abs(a.score - b.score) <= self.tie_margin:
            return PreferenceLabel(a.episode_id, b.episode_id, 0.5, source=self.source,
                                   tie=self.tie_quality(a.score, b.score))  # fmt: skip
        else:
            p_a = 1.0 if u < self.p_first(a.score, b.score) else 0.0
        return PreferenceLabel(a.episode_id, b.episode_id, p_a, source=self.source)

    def tie_quality(self, s_a: float, s_b: float) -> TieQuality | None:
        """What this rater adds to a tie of these scores: both bad, both good or nothing."""
        if self.both_bad is not None and max(s_a, s_b) <= self.both_bad:
            return "both_bad"
        if self.both_good is not None and min(s_a, s_b) >= self.both_good:
            return "both_good"
        return None

    def rank(self, items: Sequence[Scored]) -> RankingLabel | None:
        """A ranking of `items` (best = rank 0, ties share a rank); None when skipped."""
        if len(items) < 2:
            raise ValueError(f"ranking needs at least 2 episodes, got {len(items)}")
        skip, mistake = self.rng.random(2)
        gumbel = self.rng.gumbel(size=len(items))
        if skip < self.skip_prob:
            return None
        scores = np.array([float(x.score) for x in items])
        if mistake < self.epsilon:
            order = np.argsort(gumbel)  # a uniformly random order
        elif math.isinf(self.beta):
            order = np.lexsort((gumbel, -scores))  # best score first, random among equals
        else:
            order = np.argsort(-(self.beta * scores + gumbel))  # Plackett-Luce sample
        ranks = np.zeros(len(items), dtype=int)
        rank = 0
        for pos in range(1, len(order)):
            prev, cur = order[pos - 1], order[pos]
            tied = mistake >= self.epsilon and abs(scores[prev] - scores[cur]) <= self.tie_margin
            rank = rank if tied else pos
            ranks[cur] = rank
        return RankingLabel(
            tuple(x.episode_id for x in items),
            tuple(int(r) for r in ranks),
            source=self.source,
        )

    def answer(self, items: Sequence[Scored]) -> PreferenceLabel | RankingLabel | None:
        """A preference for two episodes, a ranking for more."""
        return self.compare(items[0], items[1]) if len(items) == 2 else self.rank(items)

    def __repr__(self) -> str:
        return (
            f"PreferenceRater(beta={self.beta}, epsilon={self.epsilon}, "
            f"tie_margin={self.tie_margin}, both_bad={self.both_bad}, "
            f"both_good={self.both_good}, skip_prob={self.skip_prob})"
        )
