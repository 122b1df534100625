"""Count-based exploration over what the labels have judged: a bonus for untried answers.

A reward model can only learn that an answer is right from a label that shows it right, and
a label can only show an answer the policy gave. On vqa the policy settled on the five words
its first labels liked; words that an early label happened to call wrong (a random policy's
"red" to a question about a blue object) kept a low reward everywhere, the policy stopped
giving them, and no later label could show them right: 1,000 labels, five of ten words
covered, greedy accuracy capped near 0.5 (docs/architecture.md).

The cure is the classic one for exploration in a table of choices (count-based bonuses, as
in MBIE-EB): while labels can still come, add to an episode's reward

    bonus = scale / sqrt(1 + n)

where n is how many labelled episodes gave this same response (to any prompt). An answer
the labels have judged often gets almost nothing; one they have never judged gets `scale`,
so the policy keeps trying it until the labels have said what it is worth. The counts are
exact-match: where responses rarely repeat (free text), every response is new, the bonus is
the same for all and changes nothing. They are kept per response, not per prompt and
response: counted per prompt, each of the 18 answers of the wrong kind (positions, numbers)
was new again on each of vqa's 10 prompts, and 18% of the labelled episodes were spent
ruling them out one prompt at a time. Nor only episodes shown right: answers that are never
right then keep the whole bonus, and on vqa the policy chased them (docs/architecture.md).

The hub (`feedback.rlhf.RLHFState`) keeps the counts and publishes them with each reward
model, and sets the scale to 0 once the label budget is spent (exploring for labels that
cannot come only costs reward); the EnvRunners' `RewardScorer` adds the bonus.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Mapping

import numpy as np

from mmrlhf.feedback.kinds import answer_word
from mmrlhf.feedback.preferences import RLHFLabel, judged_good
from mmrlhf.feedback.samples import EpisodeSample


def judgement_key(sample: EpisodeSample) -> str:
    """What the counts are kept by: the response (its token ids)."""
    return sample.response_key


def prompt_answer_key(sample: EpisodeSample) -> tuple[str, str]:
    """(prompt, response) token keys: what `JudgedCounts.by_prompt` counts by."""
    return sample.prompt_key, sample.response_key


def novelty_bonus(scale: float, judged: int) -> float:
    """`scale / sqrt(1 + judged)`: the bonus of a response judged `judged` times."""
    if judged < 0:
        raise ValueError(f"a judgement count is >= 0, got {judged}")
    return scale / math.sqrt(1.0 + judged)


class JudgedCounts:
    """How many labelled episodes gave each response (`counts`), and how many of those the
    labels showed right (`shown_right`: strict winners, "both good" ties, thumbs up), from
    every label added; `by_prompt` counts the labelled episodes per prompt and response
    (which answers the labels have judged for which question)."""

    def __init__(self) -> None:
        self.counts: Counter[str] = Counter()
        self.shown_right: Counter[str] = Counter()
        self.by_prompt: Counter[tuple[str, str]] = Counter()
        # One response's token ids per key shown right: what scores a scene against the
        # answers the labels know (feedback.queries.novel_queries, scene_fit).
        self.right_responses: dict[str, np.ndarray] = {}
        # Prompt key -> one-word answers shown right for it (feedback.kinds).
        self.right_words: dict[str, set[int]] = {}

    def add(self, labels: Iterable[RLHFLabel], samples: Mapping[str, EpisodeSample]) -> None:
        """Count each episode every label names.

        Raises:
            KeyError: A label names an episode `samples` does not hold.
        """
        labels = list(labels)  # read twice
        for label in labels:
            for episode in label.episode_ids:
                if episode not in samples:
                    raise KeyError(f"label names episode {episode!r}, which samples do not hold")
                self.counts[judgement_key(samples[episode])] += 1
                self.by_prompt[prompt_answer_key(samples[episode])] += 1
        for episode in judged_good(labels):
            key = judgement_key(samples[episode])
            self.shown_right[key] += 1
            self.right_responses.setdefault(key, samples[episode].response_ids)
            word = answer_word(samples[episode])
            if word is not None:
                self.right_words.setdefault(samples[episode].prompt_key, set()).add(word)

    def snapshot(self) -> dict[str, int]:
        """A plain copy, to publish."""
        return dict(self.counts)
