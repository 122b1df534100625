"""The SQLite schema, column lists and row -> record conversion."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from mmrlhf.feedback.labelstore.model import StoredItem, StoredLabel, StoredQuery

SCHEMA_VERSION = 1

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS items (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    episode_id TEXT NOT NULL UNIQUE,
    env_runner_id INTEGER NOT NULL,
    task TEXT NOT NULL,
    prompt TEXT NOT NULL,
    response TEXT NOT NULL,
    ground_truth TEXT NOT NULL,
    score REAL NOT NULL,
    success INTEGER NOT NULL,
    actions TEXT NOT NULL,
    step_scores TEXT NOT NULL,
    extras TEXT NOT NULL,
    image BLOB,
    image_format TEXT,
    image_shape TEXT,
    meta TEXT NOT NULL,
    created_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS queries (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    kind TEXT NOT NULL CHECK (kind IN ('single', 'pair', 'ranking')),
    item_ids TEXT NOT NULL,
    meta TEXT NOT NULL,
    created_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS labels (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    query_id INTEGER NOT NULL REFERENCES queries(id),
    rater_id TEXT NOT NULL,
    kind TEXT NOT NULL,
    value TEXT NOT NULL,
    created_at REAL NOT NULL,
    updated_at REAL NOT NULL,
    rev INTEGER NOT NULL UNIQUE,
    retracted INTEGER NOT NULL DEFAULT 0,
    UNIQUE (query_id, rater_id)
);
CREATE INDEX IF NOT EXISTS labels_by_rater ON labels (rater_id, retracted, rev);
"""

LABEL_COLUMNS = (
    "l.id, l.query_id, l.rater_id, l.kind, l.value, l.created_at, l.updated_at, l.rev, "
    "l.retracted, q.kind, q.item_ids"
)
ITEM_COLUMNS = (
    "id, episode_id, env_runner_id, task, prompt, response, ground_truth, score, success, "
    "actions, step_scores, extras, image_format, image_shape, meta, created_at"
)
QUERY_COLUMNS = "id, kind, item_ids, meta, created_at"


def plain_json(value: Any) -> str:
    """Compact JSON; numpy scalars and arrays become plain numbers and lists."""

    def default(o: Any) -> Any:
        if isinstance(o, np.generic):
            return o.item()
        if isinstance(o, np.ndarray):
            return o.tolist()
        return str(o)

    return json.dumps(value, default=default, separators=(",", ":"))


def item_from_row(row: Sequence[Any]) -> StoredItem:
    """Build a `StoredItem` from a row of `ITEM_COLUMNS`."""
    return StoredItem(
        id=int(row[0]),
        episode_id=row[1],
        env_runner_id=int(row[2]),
        task=row[3],
        prompt=row[4],
        response=row[5],
        ground_truth=row[6],
        score=float(row[7]),
        success=bool(row[8]),
        actions=json.loads(row[9]),
        step_scores=json.loads(row[10]),
        extras=json.loads(row[11]),
        image_format=row[12],
        image_shape=json.loads(row[13]) if row[13] else None,
        meta=json.loads(row[14]),
        created_at=float(row[15]),
    )


def query_from_row(row: Sequence[Any]) -> StoredQuery:
    """Build a `StoredQuery` from a row of `QUERY_COLUMNS`."""
    return StoredQuery(
        id=int(row[0]),
        kind=row[1],
        item_ids=json.loads(row[2]),
        meta=json.loads(row[3]),
        created_at=float(row[4]),
    )


def label_from_row(row: Sequence[Any], episodes: Mapping[int, str] | None = None) -> StoredLabel:
    """Build a `StoredLabel` from a row of `LABEL_COLUMNS` (labels `l` joined with queries `q`);
    `episodes` maps item ids to episode ids (without it, `episode_ids` stays empty)."""
    item_ids = json.loads(row[10])
    return StoredLabel(
        id=int(row[0]),
        query_id=int(row[1]),
        rater_id=row[2],
        kind=row[3],
        value=json.loads(row[4]),
        created_at=float(row[5]),
        updated_at=float(row[6]),
        rev=int(row[7]),
        retracted=bool(row[8]),
        query_kind=row[9],
        item_ids=item_ids,
        episode_ids=[episodes[i] for i in item_ids] if episodes is not None else [],
    )
