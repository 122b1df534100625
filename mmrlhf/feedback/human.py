"""Human labels from the SQLite label store into the reward model (RLHF), in plain Python.

`HumanLabelBridge` is what the reward-model hub (`RLHFState.step`) uses when
`FeedbackConfig.human_store` is set; nothing here waits for a person:

- `enqueue(samples)`: episodes the hub received go to the store as `single` queries (one
  transaction). The record keeps the reward-model inputs the text cannot give back exactly
  (prompt and response token ids) in its `extras`, which the page never shows, so the hub can
  train on a labelled episode after it has left its pool, or after a restart.
- `poll()`: label changes since the bridge's cursor (`labels_since`), latest row per
  (query, rater), retracted rows and skips dropped, converted by `stored_to_labels`. A
  (query, rater) is used once: a later replace or undo is counted (`late_changes`) but does not
  reach the reward model, which has no way to forget a label. `settle_s` holds a label back until
  it has not changed for that long, so an undo in time keeps it out.
- `samples(episode_ids)`: rebuilds the `EpisodeSample`s of labelled episodes from the store.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import numpy as np

from mmrlhf.feedback.labelstore import LabelStore, NotFoundError, StoredLabel
from mmrlhf.feedback.preferences import (
    BinaryLabel,
    PreferenceLabel,
    RankingLabel,
    RatingLabel,
    RLHFLabel,
)
from mmrlhf.feedback.records import EpisodeRecord
from mmrlhf.feedback.samples import EpisodeSample

logger = logging.getLogger(__name__)

# `EpisodeRecord.extras` keys holding the reward-model token ids (space-separated ints).
PROMPT_IDS_KEY = "rm_prompt_ids"
RESPONSE_IDS_KEY = "rm_response_ids"
# Task name of records built from samples (a sample does not know its env task).
SAMPLE_TASK = "rlhf"
# Label sources start with this, then the rater id ("simulated" is the simulated rater).
HUMAN_SOURCE = "human"

LabelKey = tuple[int, str]


def stored_to_label(stored: StoredLabel) -> RLHFLabel | None:
    """One store label as a reward-model label; None for skips and retracted rows.

    rating 1..5 -> `RatingLabel` (reward in [0, 1]); thumbs -> `BinaryLabel`; compare ->
    `PreferenceLabel` (`p_a` = P(first item better)); rank -> `RankingLabel`.

    Raises:
        ValueError: If the label's episode ids do not fit its kind.
    """
    if stored.retracted or stored.kind == "skip":
        return None
    source = f"{HUMAN_SOURCE}:{stored.rater_id}"
    eps = list(stored.episode_ids)
    if not eps:
        raise ValueError(f"label {stored.id} has no episode ids")
    if stored.kind == "rating":
        return RatingLabel(eps[0], float(stored.reward), source=source)  # type: ignore[arg-type]
    if stored.kind == "thumbs":
        return BinaryLabel(eps[0], bool(stored.reward), source=source)
    if stored.kind == "compare":
        if len(eps) != 2:
            raise ValueError(f"compare label {stored.id} needs 2 episodes, got {len(eps)}")
        return PreferenceLabel(eps[0], eps[1], float(stored.preference), source=source,  # type: ignore[arg-type]
                               tie=stored.tie)  # type: ignore[arg-type]
    if stored.kind == "rank":
        return RankingLabel(tuple(eps), tuple(stored.ranks or ()), source=source)
    raise ValueError(f"unknown label kind {stored.kind!r} (label {stored.id})")


def latest_rows(stored: Iterable[StoredLabel]) -> dict[LabelKey, StoredLabel]:
    """The latest row (highest `rev`) per (query_id, rater_id)."""
    latest: dict[LabelKey, StoredLabel] = {}
    for row in stored:
        key = (row.query_id, row.rater_id)
        if key not in latest or row.rev > latest[key].rev:
            latest[key] = row
    return latest


def stored_to_labels(stored: Sequence[StoredLabel]) -> list[RLHFLabel]:
    """Reward-model labels from store rows: latest row per (query, rater), minus retracted
    rows and skips, in `rev` order."""
    rows = sorted(latest_rows(stored).values(), key=lambda r: r.rev)
    return [label for label in map(stored_to_label, rows) if label is not None]


def _ids_text(ids: np.ndarray) -> str:
    return " ".join(str(int(i)) for i in np.asarray(ids).ravel())


def _ids_array(text: Any) -> np.ndarray:
    return np.asarray([int(t) for t in str(text).split()], dtype=np.int64)


def record_from_sample(sample: EpisodeSample) -> EpisodeRecord:
    """The label-store record of a hub sample (token ids kept in `extras`, never shown)."""
    return EpisodeRecord(
        episode_id=sample.episode_id,
        env_runner_id=sample.env_runner_id,
        task=SAMPLE_TASK,
        prompt=sample.prompt,
        response=sample.response,
        actions=[],
        ground_truth="",
        score=float(sample.score),
        success=False,
        image=sample.image,
        extras={
            PROMPT_IDS_KEY: _ids_text(sample.prompt_ids),
            RESPONSE_IDS_KEY: _ids_text(sample.response_ids),
        },
    )


def sample_from_stored_record(record: EpisodeRecord) -> EpisodeSample | None:
    """The `EpisodeSample` of a record written by `record_from_sample`; None when the record
    has no image or no stored token ids (e.g. enqueued by something else)."""
    extras = record.extras
    if record.image is None or PROMPT_IDS_KEY not in extras or RESPONSE_IDS_KEY not in extras:
        return None
    return EpisodeSample(
        episode_id=record.episode_id,
        image=np.ascontiguousarray(record.image, dtype=np.uint8),
        prompt_ids=_ids_array(extras[PROMPT_IDS_KEY]),
        response_ids=_ids_array(extras[RESPONSE_IDS_KEY]),
        score=float(record.score),
        prompt=record.prompt,
        response=record.response,
        env_runner_id=record.env_runner_id,
    )


class HumanLabelBridge:
    """Label store <-> reward-model hub: enqueue episodes for people, poll their labels.

    Args:
        store: A `LabelStore` or the path of its SQLite file (created if missing).
        settle_s: Seconds a label must stay unchanged before it is used (0 = at once).
        cursor: Store revision to start after (0 = every label in the store).
        clock: Time source (tests).
    """

    def __init__(
        self,
        store: LabelStore | str | os.PathLike[str],
        *,
        settle_s: float = 0.0,
        cursor: int = 0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.store = store if isinstance(store, LabelStore) else LabelStore(store)
        self.settle_s = float(settle_s)
        self.cursor = int(cursor)
        self._clock = clock
        self._waiting: dict[LabelKey, StoredLabel] = {}
        self._used: set[LabelKey] = set()
        self._items: dict[str, int] = {}  # episode id -> store item id
        self.counts = {"enqueued": 0, "polled": 0, "used": 0, "late_changes": 0, "unusable": 0}

    def enqueue(self, samples: Sequence[EpisodeSample]) -> list[int]:
        """Queue episodes for people (`single` queries, one transaction); return query ids."""
        if not samples:
            return []
        query_ids = self.store.enqueue_episodes([record_from_sample(s) for s in samples])
        self.counts["enqueued"] += len(query_ids)
        return query_ids

    def poll(self, limit: int = 1000) -> list[RLHFLabel]:
        """New usable labels since the last poll (never waits for a person)."""
        while True:
            rows, self.cursor = self.store.labels_since(self.cursor, limit)
            self.counts["polled"] += len(rows)
            for row in rows:
                self._items.update(zip(row.episode_ids, row.item_ids, strict=False))
            self._waiting.update(latest_rows([*self._waiting.values(), *rows]))
            if len(rows) < limit:
                break
        now = self._clock()
        out: list[RLHFLabel] = []
        for key, row in sorted(self._waiting.items(), key=lambda kv: kv[1].rev):
            if now - row.updated_at < self.settle_s:
                continue
            del self._waiting[key]
            if key in self._used:
                self.counts["late_changes"] += 1
                logger.info("label of query %d by %r changed after training used it", *key)
                continue
            try:
                label = stored_to_label(row)
            except ValueError:
                self.counts["unusable"] += 1
                logger.warning("unusable human label %d", row.id, exc_info=True)
                continue
            if label is not None:
                self._used.add(key)
                out.append(label)
        self.counts["used"] += len(out)
        return out

    def samples(self, episode_ids: Iterable[str]) -> dict[str, EpisodeSample]:
        """Rebuild the samples of labelled episodes from the store (missing ones left out)."""
        found: dict[str, EpisodeSample] = {}
        for episode_id in dict.fromkeys(episode_ids):
            item_id = self._items.get(episode_id)
            if item_id is None:
                continue
            try:
                sample = sample_from_stored_record(self.store.episode(item_id))
            except NotFoundError:
                sample = None
            if sample is not None:
                found[episode_id] = sample
        return found

    def close(self) -> None:
        """Close the store's connections."""
        self.store.close()
