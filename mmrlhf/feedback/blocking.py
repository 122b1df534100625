"""Blocking human feedback, for debugging a run with a person at the labelling page.

`BlockingHumanRater` shows each finished episode to people (a `single` query in the label
store) and waits up to `timeout_s` for a rating or thumbs; when nobody answers in time it asks
the fallback rater instead and counts the fallback. This stalls sampling by design, so it is
opt-in (`feedback.human_blocking: true`); the normal path (`feedback.human_store` with the
reward model) never waits for a person.
"""

from __future__ import annotations

import logging
from pathlib import Path

from mmrlhf.feedback.raters import Rater
from mmrlhf.feedback.records import EpisodeRecord, Label

logger = logging.getLogger(__name__)


class BlockingHumanRater(Rater):
    """A person's score when one arrives within `timeout_s`, else the fallback rater's.

    Attributes:
        human_labels: Episodes a person rated in time.
        fallbacks: Episodes the fallback rater scored because nobody answered in time.
    """

    name = "human_blocking"

    def __init__(self, store_path: str | Path, timeout_s: float, fallback: Rater) -> None:
        super().__init__(seed=0)
        from mmrlhf.feedback.labelstore import LabelStore

        self.store = LabelStore(store_path)
        self.timeout_s = timeout_s
        self.fallback = fallback
        self.human_labels = 0
        self.fallbacks = 0

    def rate(self, record: EpisodeRecord) -> Label | None:
        (query_id,) = self.store.enqueue_episodes([record])
        stored = self.store.wait_for_label(query_id, self.timeout_s)
        reward = None if stored is None else stored.reward
        if reward is not None:
            self.human_labels += 1
            return Label(reward=float(reward), kind=stored.kind, raw=float(reward),
                         rater=f"human:{stored.rater_id}")  # fmt: skip
        # Nobody answered (or the person skipped): never leave the episode unrated.
        self.fallbacks += 1
        logger.debug("no human label for query %d within %.1fs; fallback", query_id,
                     self.timeout_s)  # fmt: skip
        return self.fallback.rate(record)

    def __repr__(self) -> str:
        return f"BlockingHumanRater(timeout_s={self.timeout_s}, fallback={self.fallback!r})"
