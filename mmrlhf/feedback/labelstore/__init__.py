"""Durable human-label store (SQLite, WAL mode) shared by training and the labelling web app.

One SQLite file per experiment (`labels.sqlite` in the experiment directory, see
`LabelStore.for_experiment`) holds three things:

- **items**: snapshots of finished episodes (`EpisodeRecord`): task, prompt, response, ground
  truth, score, actions, the first image (PNG, or `.npy` bytes when it is not a PNG-able uint8
  array). Ground truth, score and success are stored for training and evaluation but are never
  part of `StoredItem.public()`, which is all the web page sees.
- **queries**: what a person is asked about: `single` (rate one item), `pair` (compare two
  items: A, B or tie) or `ranking` (order 2..`MAX_RANKING` items, best first).
- **labels**: one row per (query, rater): kind, JSON value, timestamps, and a revision number
  `rev` that grows with every write. Undo *retracts* a label (the row stays as a tombstone with
  `retracted=True` and a new `rev`), so a reader polling `labels_since` learns about undos too.

Label kinds allowed per query kind, and their values (`validate_label`):

==========  ==========  ==================================================================
query       label kind  value
==========  ==========  ==================================================================
single      rating      stars, an integer 1..`RATING_LEVELS` (reward = (stars-1)/(levels-1))
single      thumbs      `"up"` or `"down"` (reward 1 or 0)
pair        compare     `"a"`, `"b"` or `"tie"` (a = the query's first item is better)
ranking     rank        the query's item ids, best first (a permutation)
any         skip        `null` (the rater declines; the query leaves their queue)
==========  ==========  ==================================================================

Rules:

- A label is committed (`synchronous=FULL`) before `add_label` returns.
- (query_id, rater_id) is unique. Sending the same kind and value again is a no-op
  (`status="unchanged"`); a different kind or value raises `LabelConflictError` unless
  `replace=True`, which overwrites it (`status="replaced"`, new `rev`).
- `undo_last(rater_id)` retracts that rater's most recently written active label; the query is
  pending for them again. Labelling it again revives the row (`status="created"`).
- `pending(rater_id)` = queries with no active label from that rater, oldest first.
- With a budget (`set_budget`), new non-skip labels beyond it raise `BudgetSpentError`.

Every process (EnvRunners, the reward-model trainer, the web server) opens its own
`LabelStore(path)`; each thread gets its own connection and the object pickles as its path.
Writers serialise on SQLite's write lock (`BEGIN IMMEDIATE`, `busy_timeout`); readers never
block writers (WAL). WAL needs a local filesystem (not NFS).

Modules: `model` (records, errors, constants), `rules` (label validation, agreement),
`images` (PNG / npy), `schema` (SQLite schema, rows), `stats`, `store` (`LabelStore`).

Training side (any process; never per episode on the sampling path):

- EnvRunners / the hub: buffer `EpisodeRecord`s and call `enqueue_episodes(records)` once per
  `sample()` (one transaction, ~1 ms an episode) to queue them for rating; or `add_episodes`
  plus `add_query("pair" | "ranking", item_ids)` for comparisons chosen by a query sampler.
- Reward-model trainers poll `labels_since(cursor)` and keep the latest row per
  (query_id, rater_id), dropping retracted ones and skips. Each `StoredLabel` carries the
  query's `episode_ids`, `reward` (rating / thumbs), `preference` and `tie` (compare) and
  `ranks` (rank);
  `episode(item_id)` rebuilds the full `EpisodeRecord`.
- The opt-in `blocking` debug mode waits with `wait_for_label(query_id, timeout_s)`.
"""

from mmrlhf.feedback.labelstore.images import decode_image, encode_image
from mmrlhf.feedback.labelstore.model import (
    COMPARE_CHOICES,
    DEFAULT_FILENAME,
    LABEL_KINDS,
    MAX_RANKING,
    QUERY_KINDS,
    RATING_LEVELS,
    THUMBS,
    BudgetSpentError,
    InvalidLabelError,
    LabelConflictError,
    LabelKind,
    LabelResult,
    LabelStatus,
    LabelStoreError,
    NotFoundError,
    PendingQuery,
    QueryKind,
    StoredItem,
    StoredLabel,
    StoredQuery,
)
from mmrlhf.feedback.labelstore.rules import label_agreement, validate_label, validate_rater_id
from mmrlhf.feedback.labelstore.store import LabelStore

__all__ = [
    "COMPARE_CHOICES",
    "DEFAULT_FILENAME",
    "LABEL_KINDS",
    "MAX_RANKING",
    "QUERY_KINDS",
    "RATING_LEVELS",
    "THUMBS",
    "BudgetSpentError",
    "InvalidLabelError",
    "LabelConflictError",
    "LabelKind",
    "LabelResult",
    "LabelStatus",
    "LabelStore",
    "LabelStoreError",
    "NotFoundError",
    "PendingQuery",
    "QueryKind",
    "StoredItem",
    "StoredLabel",
    "StoredQuery",
    "decode_image",
    "encode_image",
    "label_agreement",
    "validate_label",
    "validate_rater_id",
]
