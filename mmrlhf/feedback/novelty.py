"""Count-based exploration over what the labels have shown right: a bonus for new answers.

A reward model can only learn that an answer is right from a label that shows it right, and
a label can only show an answer the policy gave. On vqa the policy settled on the five words
its first labels liked; words that an early label happened to call wrong (a random policy's
"red" to a question about a blue object) kept a low reward everywhere, the policy stopped
giving them, and no later label could show them right: 1,000 labels, five of ten words
covered, greedy accuracy capped near 0.5 (docs/architecture.md).

The cure is the classic one for exploration in a table of choices (count-based bonuses, as
in MBIE-EB): while labels can still come, add to an episode's reward

    bonus = scale / sqrt(1 + n)

where n is how many labelled episodes showed this same response right (a strict winner, a
"both good" tie, a thumbs up; `coverage.good_episodes`), to any prompt. An answer the labels
have confirmed often gets almost nothing; one they have never shown right gets `scale`, so
the policy keeps trying it until a label finds where it is right. Labels that call it wrong
do not use its bonus up: "red" is wrong for most scenes, and a few such labels say nothing
about the scenes where it is right (counting every judgement, vqa's "triangle" was shown 25
times, wrong every time, mostly as an answer to colour questions, and then no longer
counted as new for shape questions). What the reward model already knows to be wrong, it
rates low, which outweighs the bonus. The counts are exact-match: where responses rarely
repeat (free text), every response is new, the bonus is the same for all and changes
nothing. They are kept per response, not per prompt and response: counted per prompt, each
of the 18 answers of the wrong kind (positions, numbers) was new again on each of vqa's 10
prompts, and challenger queries spent their labels ruling them out one prompt at a time.

The hub (`feedback.rlhf.RLHFState`) keeps the counts and publishes them with each reward
model, and sets the scale to 0 once the label budget is spent (exploring for labels that
cannot come only costs reward); the EnvRunners' `RewardScorer` adds the bonus.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Mapping

from mmrlhf.feedback.coverage import good_episodes
from mmrlhf.feedback.preferences import RLHFLabel
from mmrlhf.feedback.samples import EpisodeSample


def judgement_key(sample: EpisodeSample) -> str:
    """What the counts are kept by: the response (its token ids)."""
    return sample.response_key


def novelty_bonus(scale: float, confirmed: int) -> float:
    """`scale / sqrt(1 + confirmed)`: the bonus of a response shown right `confirmed` times."""
    if confirmed < 0:
        raise ValueError(f"a count of labels is >= 0, got {confirmed}")
    return scale / math.sqrt(1.0 + confirmed)


class ConfirmedCounts:
    """How many labelled episodes showed each response right, from every label added."""

    def __init__(self) -> None:
        self.counts: Counter[str] = Counter()

    def add(self, labels: Iterable[RLHFLabel], samples: Mapping[str, EpisodeSample]) -> None:
        """Count each episode the labels judged good (`coverage.good_episodes`).

        Raises:
            KeyError: A label names an episode `samples` does not hold.
        """
        labels = list(labels)
        for label in labels:
            for episode in label.episode_ids:
                if episode not in samples:
                    raise KeyError(f"label names episode {episode!r}, which samples do not hold")
        for episode in good_episodes(labels):
            self.counts[judgement_key(samples[episode])] += 1

    def snapshot(self) -> dict[str, int]:
        """A plain copy, to publish."""
        return dict(self.counts)
