"""What a label set says about each response: which answers it has shown right or wrong.

A reward model can only rate an answer that its labels have judged, directly or through
answers like it. When the policy that produces the labelled episodes settles on a few
answers, the labels stop covering the rest: on vqa the online loop's 1,000 labels once showed
five of the ten colour and shape words as right, and no policy that maximises that reward
model could answer the other five. `label_coverage` counts, per response, how often the
labels judged it, from the labels alone (no ground truth), so it works on people's labels
too: `mmrlhf reward-model labels LOG_DIR` prints it for a label log.

What counts as a judgement:

- *good*: the strict winner of a pair, the single best of a ranking, either episode of a tie
  marked "both good", a thumbs up;
- *bad*: the loser of a strict pair, anything ranked below another episode, either episode
  of a tie marked "both bad", a thumbs down;
- *shown*: every episode a label names (plain ties and ratings included).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from mmrlhf.feedback.preferences import (
    PreferenceLabel,
    RankingLabel,
    RLHFLabel,
    judged_good,
    own_judgements,
    pairwise_outcomes,
)
from mmrlhf.feedback.samples import EpisodeSample


@dataclass(frozen=True)
class ResponseCoverage:
    """How often the labels judged one response (its decoded text)."""

    response: str
    shown: int
    good: int
    bad: int


@dataclass(frozen=True)
class LabelCoverage:
    """Per-response judgement counts of a label set (see the module docstring).

    Attributes:
        labels: Labels counted.
        responses: One entry per distinct response, most often judged good first.
    """

    labels: int
    responses: tuple[ResponseCoverage, ...] = field(default_factory=tuple)

    @property
    def shown_good(self) -> list[str]:
        """Responses some label judged good."""
        return [r.response for r in self.responses if r.good > 0]

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly summary."""
        return {
            "labels": self.labels,
            "responses_shown": len(self.responses),
            "responses_shown_good": len(self.shown_good),
            "by_response": {
                r.response: {"shown": r.shown, "good": r.good, "bad": r.bad}
                for r in self.responses
            },
        }


def label_coverage(
    labels: Sequence[RLHFLabel], samples: Mapping[str, EpisodeSample]
) -> LabelCoverage:
    """Count, per response text, the episodes the labels showed, judged good and judged bad.

    Raises:
        KeyError: A label names an episode `samples` does not hold.
    """
    shown: Counter[str] = Counter()
    good: Counter[str] = Counter()
    bad: Counter[str] = Counter()

    def text(episode_id: str) -> str:
        if episode_id not in samples:
            raise KeyError(f"label names episode {episode_id!r}, which the samples do not hold")
        return samples[episode_id].response

    for label in labels:
        for episode in label.episode_ids:
            shown[text(episode)] += 1
        if isinstance(label, PreferenceLabel | RankingLabel):
            for episode in {worse for _, worse in pairwise_outcomes(label)}:
                bad[text(episode)] += 1
    for episode, is_good in own_judgements(labels):
        if not is_good:
            bad[text(episode)] += 1
    for episode in judged_good(labels):
        good[text(episode)] += 1
    rows = [ResponseCoverage(r, shown[r], good[r], bad[r]) for r in shown]
    rows.sort(key=lambda r: (-r.good, -r.shown, r.response))
    return LabelCoverage(labels=len(labels), responses=tuple(rows))
