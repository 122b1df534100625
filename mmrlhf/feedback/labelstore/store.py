"""`LabelStore`: the SQLite (WAL) store of items, queries and labels; see the package docstring."""

from __future__ import annotations

import json
import logging
import os
import sqlite3
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from mmrlhf.feedback.labelstore.images import decode_image, encode_image, to_png
from mmrlhf.feedback.labelstore.model import (
    DEFAULT_FILENAME,
    MAX_RANKING,
    QUERY_KINDS,
    BudgetSpentError,
    InvalidLabelError,
    LabelConflictError,
    LabelResult,
    LabelStatus,
    LabelStoreError,
    NotFoundError,
    PendingQuery,
    StoredItem,
    StoredLabel,
    StoredQuery,
)
from mmrlhf.feedback.labelstore.rules import validate_label, validate_rater_id
from mmrlhf.feedback.labelstore.schema import (
    ITEM_COLUMNS,
    LABEL_COLUMNS,
    QUERY_COLUMNS,
    SCHEMA,
    SCHEMA_VERSION,
    item_from_row,
    label_from_row,
    plain_json,
    query_from_row,
)
from mmrlhf.feedback.labelstore.stats import summarize
from mmrlhf.feedback.records import EpisodeRecord

logger = logging.getLogger(__name__)


class LabelStore:
    """Durable SQLite store of episode items, queries and human labels (see module docstring).

    Args:
        path: SQLite file (created with its parent folders when missing).
        timeout_s: How long a writer waits for the write lock before `sqlite3.OperationalError`.
    """

    def __init__(self, path: str | os.PathLike[str], *, timeout_s: float = 10.0) -> None:
        self.path = Path(path)
        self.timeout_s = float(timeout_s)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._reset_connections()
        self._closed = False
        self._init_schema()

    @classmethod
    def for_experiment(cls, experiment_dir: str | os.PathLike[str], **kwargs: Any) -> LabelStore:
        """The store of an experiment: `<experiment_dir>/labels.sqlite`."""
        return cls(Path(experiment_dir) / DEFAULT_FILENAME, **kwargs)

    # --- connections ---------------------------------------------------------------------------

    def _reset_connections(self) -> None:
        self._local = threading.local()
        self._conns: list[sqlite3.Connection] = []
        self._pid = os.getpid()

    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(
            self.path, timeout=self.timeout_s, isolation_level=None, check_same_thread=False
        )
        conn.execute(f"PRAGMA busy_timeout = {int(self.timeout_s * 1000)}")
        conn.execute("PRAGMA journal_mode = WAL")
        # FULL: a commit is on disk before add_label returns, even across an OS crash.
        conn.execute("PRAGMA synchronous = FULL")
        conn.execute("PRAGMA foreign_keys = ON")
        return conn

    def _conn(self) -> sqlite3.Connection:
        if self._closed:
            raise LabelStoreError(f"label store {self.path} is closed")
        if os.getpid() != self._pid:
            # A forked child must not share the parent's SQLite connections.
            self._reset_connections()
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = self._connect()
            self._local.conn = conn
            with self._lock:
                self._conns.append(conn)
        return conn

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        """One write transaction (takes the write lock up front; commits on success)."""
        conn = self._conn()
        conn.execute("BEGIN IMMEDIATE")
        try:
            yield conn
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")

    @contextmanager
    def _read(self) -> Iterator[sqlite3.Connection]:
        """One read transaction: a consistent snapshot across several SELECTs."""
        conn = self._conn()
        conn.execute("BEGIN")
        try:
            yield conn
        finally:
            conn.execute("COMMIT")

    def _init_schema(self) -> None:
        with self._write() as conn:
            version = conn.execute("PRAGMA user_version").fetchone()[0]
            if version > SCHEMA_VERSION:
                raise LabelStoreError(
                    f"{self.path} has schema version {version}; this mmrlhf reads up to "
                    f"{SCHEMA_VERSION}. Upgrade mmrlhf."
                )
            for statement in SCHEMA.split(";"):
                if statement.strip():
                    conn.execute(statement)
            conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")

    def close(self) -> None:
        """Close every connection this object opened (in this process)."""
        with self._lock:
            conns, self._conns = self._conns, []
        if os.getpid() == self._pid:
            for conn in conns:
                conn.close()
        self._local = threading.local()
        self._closed = True

    def __enter__(self) -> LabelStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __getstate__(self) -> dict[str, Any]:
        # Pickles as its path, so a store can be handed to Ray actors / EnvRunners.
        return {"path": str(self.path), "timeout_s": self.timeout_s}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(state["path"], timeout_s=state["timeout_s"])  # type: ignore[misc]

    def __repr__(self) -> str:
        return f"LabelStore({str(self.path)!r})"

    # --- budget --------------------------------------------------------------------------------

    @property
    def budget(self) -> int | None:
        """Most non-skip labels the store accepts in all (None = unlimited)."""
        row = self._conn().execute("SELECT value FROM meta WHERE key = 'budget'").fetchone()
        return None if row is None else json.loads(row[0])

    def set_budget(self, budget: int | None) -> None:
        """Set (or with None, remove) the label budget. Labels already given stay."""
        if budget is not None and (isinstance(budget, bool) or budget < 0):
            raise ValueError(f"budget must be a non-negative integer or None, got {budget!r}")
        with self._write() as conn:
            conn.execute(
                "INSERT INTO meta (key, value) VALUES ('budget', ?) "
                "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                (json.dumps(budget),),
            )

    # --- items and queries ---------------------------------------------------------------------

    def add_episode(self, record: EpisodeRecord, *, meta: dict[str, Any] | None = None) -> int:
        """Store one episode snapshot; return its item id.

        Idempotent per `record.episode_id`: a record whose episode id is already stored
        returns the stored item's id and changes nothing.
        """
        return self.add_episodes([record], meta=meta)[0]

    def add_episodes(
        self, records: Sequence[EpisodeRecord], *, meta: dict[str, Any] | None = None
    ) -> list[int]:
        """Store several episodes in one transaction (one fsync); return their item ids."""
        rows = _episode_rows(records, meta)
        with self._write() as conn:
            return [self._insert_item(conn, row)[0] for row in rows]

    def enqueue_episodes(
        self, records: Sequence[EpisodeRecord], *, meta: dict[str, Any] | None = None
    ) -> list[int]:
        """Store episodes and ask raters to rate each one (`single` queries); return query ids.

        One transaction (one fsync, ~1 ms an episode) for the whole batch: the way to feed
        the queue from training (buffer records, call once per `sample()`), since a commit per
        episode costs ~15 ms. An episode stored earlier keeps its existing single query.
        """
        rows = _episode_rows(records, meta)
        query_ids: list[int] = []
        with self._write() as conn:
            for row in rows:
                item_id, created = self._insert_item(conn, row)
                existing = None
                if not created:
                    existing = conn.execute(
                        "SELECT id FROM queries WHERE kind = 'single' AND item_ids = ?",
                        (json.dumps([item_id]),),
                    ).fetchone()
                query_ids.append(
                    int(existing[0])
                    if existing is not None
                    else self._insert_query(conn, "single", [item_id], meta)
                )
        return query_ids

    def add_query(
        self, kind: str, item_ids: Sequence[int], *, meta: dict[str, Any] | None = None
    ) -> int:
        """Ask raters about items; return the query id.

        Args:
            kind: `single` (1 item), `pair` (2 distinct items) or `ranking` (2..MAX_RANKING
                distinct items).
            item_ids: Stored item ids, in display order (A then B for pairs).
            meta: Free JSON for the caller (e.g. how the query was chosen).

        Raises:
            InvalidLabelError: Unknown kind, wrong number of items or repeated items.
            NotFoundError: An item id that is not stored.
        """
        ids = [int(i) for i in item_ids]
        sizes = {"single": "exactly 1 item", "pair": "exactly 2 items"}
        if kind not in QUERY_KINDS:
            raise InvalidLabelError(
                f"unknown query kind {kind!r}; allowed: {', '.join(QUERY_KINDS)}"
            )
        n_ok = {"single": len(ids) == 1, "pair": len(ids) == 2}.get(
            kind, 2 <= len(ids) <= MAX_RANKING
        )
        if not n_ok:
            wanted = sizes.get(kind, f"2 to {MAX_RANKING} items")
            raise InvalidLabelError(f"a {kind} query takes {wanted}; got {len(ids)}")
        if len(set(ids)) != len(ids):
            raise InvalidLabelError(f"a {kind} query needs distinct items; got {ids}")
        with self._write() as conn:
            marks = ",".join("?" * len(ids))
            found = {r[0] for r in conn.execute(f"SELECT id FROM items WHERE id IN ({marks})", ids)}
            missing = [i for i in ids if i not in found]
            if missing:
                raise NotFoundError(f"unknown item ids {missing}")
            return self._insert_query(conn, kind, ids, meta)

    @staticmethod
    def _insert_item(conn: sqlite3.Connection, row: tuple[Any, ...]) -> tuple[int, bool]:
        """Insert one item row unless its episode id is stored; (item id, created)."""
        existing = conn.execute("SELECT id FROM items WHERE episode_id = ?", (row[0],)).fetchone()
        if existing is not None:
            return int(existing[0]), False
        cur = conn.execute(
            "INSERT INTO items (episode_id, env_runner_id, task, prompt, response, "
            "ground_truth, score, success, actions, step_scores, extras, image, "
            "image_format, image_shape, meta, created_at) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            row,
        )
        return int(cur.lastrowid or 0), True

    @staticmethod
    def _insert_query(
        conn: sqlite3.Connection, kind: str, ids: list[int], meta: dict[str, Any] | None
    ) -> int:
        cur = conn.execute(
            "INSERT INTO queries (kind, item_ids, meta, created_at) VALUES (?, ?, ?, ?)",
            (kind, json.dumps(ids), plain_json(meta or {}), time.time()),
        )
        return int(cur.lastrowid or 0)

    def get_item(self, item_id: int) -> StoredItem:
        """The stored item (without image bytes). Raises `NotFoundError`."""
        row = (
            self._conn()
            .execute(f"SELECT {ITEM_COLUMNS} FROM items WHERE id = ?", (int(item_id),))
            .fetchone()
        )
        if row is None:
            raise NotFoundError(f"unknown item id {item_id}")
        return item_from_row(row)

    def get_query(self, query_id: int) -> StoredQuery:
        """The stored query. Raises `NotFoundError`."""
        row = (
            self._conn()
            .execute(
                f"SELECT {QUERY_COLUMNS} FROM queries WHERE id = ?",
                (int(query_id),),
            )
            .fetchone()
        )
        if row is None:
            raise NotFoundError(f"unknown query id {query_id}")
        return query_from_row(row)

    def get_pending_query(self, query_id: int) -> PendingQuery:
        """A query with its items (whether or not it is pending for anyone)."""
        with self._read() as conn:
            query = self.get_query(query_id)
            return PendingQuery(query, self._items(conn, query.item_ids))

    def image_png(self, item_id: int) -> bytes | None:
        """The item's image as PNG bytes (None when it has none). Raises `NotFoundError`."""
        row = (
            self._conn()
            .execute(
                "SELECT image, image_format, image_shape FROM items WHERE id = ?", (int(item_id),)
            )
            .fetchone()
        )
        if row is None:
            raise NotFoundError(f"unknown item id {item_id}")
        if row[0] is None:
            return None
        return to_png(row[0], row[1], json.loads(row[2]) if row[2] else None)

    def episode(self, item_id: int) -> EpisodeRecord:
        """Rebuild the stored `EpisodeRecord` (image decoded bit-exactly) for training."""
        item = self.get_item(item_id)
        row = (
            self._conn().execute("SELECT image FROM items WHERE id = ?", (int(item_id),)).fetchone()
        )
        image = (
            decode_image(row[0], item.image_format, item.image_shape)
            if item.image_format is not None
            else None
        )
        return EpisodeRecord(
            episode_id=item.episode_id,
            env_runner_id=item.env_runner_id,
            task=item.task,
            prompt=item.prompt,
            response=item.response,
            actions=item.actions,
            ground_truth=item.ground_truth,
            score=item.score,
            success=item.success,
            step_scores=item.step_scores,
            image=image,
            extras=item.extras,
        )

    def _items(self, conn: sqlite3.Connection, ids: Sequence[int]) -> list[StoredItem]:
        marks = ",".join("?" * len(ids))
        rows = conn.execute(f"SELECT {ITEM_COLUMNS} FROM items WHERE id IN ({marks})", list(ids))
        by_id = {item.id: item for item in map(item_from_row, rows)}
        return [by_id[i] for i in ids]

    # --- the queue -----------------------------------------------------------------------------

    def pending(
        self,
        rater_id: str,
        limit: int = 20,
        *,
        kinds: Sequence[str] | None = None,
        newest_first: bool = False,
    ) -> list[PendingQuery]:
        """Queries with no active label from `rater_id` (oldest first), with their items.

        Args:
            rater_id: The rater.
            limit: Most queries returned.
            kinds: Only these query kinds (default: all).
            newest_first: Newest queries first (live training: the current policy's episodes).
        """
        rid = validate_rater_id(rater_id)
        kinds = list(kinds) if kinds else list(QUERY_KINDS)
        bad = [k for k in kinds if k not in QUERY_KINDS]
        if bad:
            raise InvalidLabelError(f"unknown query kinds {bad}; allowed: {', '.join(QUERY_KINDS)}")
        marks = ",".join("?" * len(kinds))
        order = "DESC" if newest_first else "ASC"
        with self._read() as conn:
            rows = conn.execute(
                f"SELECT {QUERY_COLUMNS} FROM queries q "
                f"WHERE kind IN ({marks}) AND NOT EXISTS (SELECT 1 FROM labels l "
                "WHERE l.query_id = q.id AND l.rater_id = ? AND l.retracted = 0) "
                f"ORDER BY id {order} LIMIT ?",
                (*kinds, rid, max(0, int(limit))),
            ).fetchall()
            queries = [query_from_row(r) for r in rows]
            all_ids = sorted({i for q in queries for i in q.item_ids})
            items = {it.id: it for it in self._items(conn, all_ids)} if all_ids else {}
        return [PendingQuery(q, [items[i] for i in q.item_ids]) for q in queries]

    # --- labels --------------------------------------------------------------------------------

    def add_label(
        self,
        query_id: int,
        rater_id: str,
        kind: str,
        value: Any = None,
        *,
        replace: bool = False,
    ) -> LabelResult:
        """Record a rater's label for a query; committed to disk before this returns.

        Args:
            query_id: The query answered.
            rater_id: Who answers (see `validate_rater_id`).
            kind: Label kind allowed for the query's kind (see the module docstring).
            value: The label's value for that kind.
            replace: Overwrite an existing different label instead of raising.

        Returns:
            The stored label and `created`, `unchanged` (same label already stored: nothing
            written) or `replaced`.

        Raises:
            NotFoundError: Unknown query id.
            InvalidLabelError: Bad rater id, label kind or value (nothing is written).
            LabelConflictError: A different active label exists and `replace` is False.
            BudgetSpentError: The budget is spent and this would be a new non-skip label.
        """
        rid = validate_rater_id(rater_id)
        with self._write() as conn:
            query = self.get_query(query_id)
            kind, value = validate_label(query, kind, value)
            encoded = json.dumps(value)
            row = conn.execute(
                "SELECT id, kind, value, retracted FROM labels WHERE query_id = ? AND rater_id = ?",
                (query.id, rid),
            ).fetchone()
            now = time.time()
            active = row is not None and not row[3]
            if active and row[1] == kind and json.loads(row[2]) == value:
                return LabelResult(self._label(conn, row[0]), "unchanged")
            if active and not replace:
                existing = self._label(conn, row[0])
                raise LabelConflictError(
                    f"rater {rid!r} already labelled query {query.id} as {existing.kind} "
                    f"{json.dumps(existing.value)}; send replace=true to change it, or undo it",
                    existing,
                )
            counted_before = active and row[1] != "skip"
            if kind != "skip" and not counted_before:
                self._check_budget(conn)
            rev = self._next_rev(conn)
            if row is None:
                cur = conn.execute(
                    "INSERT INTO labels (query_id, rater_id, kind, value, created_at, "
                    "updated_at, rev) VALUES (?, ?, ?, ?, ?, ?, ?)",
                    (query.id, rid, kind, encoded, now, now, rev),
                )
                label_id = int(cur.lastrowid or 0)
            else:
                label_id = int(row[0])
                conn.execute(
                    "UPDATE labels SET kind = ?, value = ?, updated_at = ?, rev = ?, "
                    "retracted = 0 WHERE id = ?",
                    (kind, encoded, now, rev, label_id),
                )
            status: LabelStatus = "replaced" if active else "created"
            result = LabelResult(self._label(conn, label_id), status)
        logger.debug("label %s: %s", status, result.label)
        return result

    def undo_last(self, rater_id: str) -> StoredLabel | None:
        """Retract the rater's most recently written active label; None if there is none.

        The query is pending for the rater again. The row stays as a tombstone
        (`retracted=True`, new `rev`) so `labels_since` readers see the undo.
        """
        rid = validate_rater_id(rater_id)
        with self._write() as conn:
            row = conn.execute(
                "SELECT id FROM labels WHERE rater_id = ? AND retracted = 0 "
                "ORDER BY rev DESC LIMIT 1",
                (rid,),
            ).fetchone()
            if row is None:
                return None
            conn.execute(
                "UPDATE labels SET retracted = 1, updated_at = ?, rev = ? WHERE id = ?",
                (time.time(), self._next_rev(conn), row[0]),
            )
            return self._label(conn, row[0])

    def labels_since(self, cursor: int = 0, limit: int = 1000) -> tuple[list[StoredLabel], int]:
        """Label changes after `cursor` (a revision), oldest first, and the new cursor.

        Start with 0 and pass back the returned cursor. A (query, rater) pair may appear again
        when it is replaced, undone (`retracted=True`) or relabelled: keep the latest row per
        (query_id, rater_id). Skips are included (`kind == "skip"`).
        """
        rows = (
            self._conn()
            .execute(
                f"SELECT {LABEL_COLUMNS} FROM labels l JOIN queries q ON q.id = l.query_id "
                "WHERE l.rev > ? ORDER BY l.rev LIMIT ?",
                (int(cursor), max(1, int(limit))),
            )
            .fetchall()
        )
        labels = self._labels_from_rows(rows)
        return labels, (labels[-1].rev if labels else int(cursor))

    def labels(
        self, *, rater_id: str | None = None, query_id: int | None = None
    ) -> list[StoredLabel]:
        """Active (not retracted) labels, optionally of one rater and/or one query, by rev."""
        where, args = ["l.retracted = 0"], []
        if rater_id is not None:
            where.append("l.rater_id = ?")
            args.append(validate_rater_id(rater_id))
        if query_id is not None:
            where.append("l.query_id = ?")
            args.append(int(query_id))
        rows = self._conn().execute(
            f"SELECT {LABEL_COLUMNS} FROM labels l JOIN queries q ON q.id = l.query_id "
            f"WHERE {' AND '.join(where)} ORDER BY l.rev",
            args,
        )
        return self._labels_from_rows(rows.fetchall())

    def wait_for_label(
        self,
        query_id: int,
        timeout_s: float,
        *,
        rater_id: str | None = None,
        poll_s: float = 0.25,
    ) -> StoredLabel | None:
        """Block until the query has an active label (from `rater_id`, if given), or time out.

        For the opt-in `blocking` debug mode only: nothing else on the sampling path waits for
        a person. Polls the database (any process may write the label), starting at 20 ms and
        backing off to `poll_s`. Returns the label (a `skip` label too: check `label.kind`),
        or None after `timeout_s`. Raises `NotFoundError` for an unknown query.
        """
        self.get_query(query_id)
        sql = (
            f"SELECT {LABEL_COLUMNS} FROM labels l JOIN queries q ON q.id = l.query_id "
            "WHERE l.query_id = ? AND l.retracted = 0"
        )
        args: list[Any] = [int(query_id)]
        if rater_id is not None:
            sql += " AND l.rater_id = ?"
            args.append(validate_rater_id(rater_id))
        sql += " ORDER BY l.rev LIMIT 1"
        deadline = time.monotonic() + max(0.0, float(timeout_s))
        delay = 0.02
        while True:
            row = self._conn().execute(sql, args).fetchone()
            if row is not None:
                return self._labels_from_rows([row])[0]
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return None
            time.sleep(min(delay, remaining))
            delay = min(delay * 2, poll_s)

    # --- stats ---------------------------------------------------------------------------------

    def progress(self, rater_id: str | None = None) -> dict[str, Any]:
        """Counts for a progress line: labels (all raters and this one), budget left, queue."""
        with self._read() as conn:
            total_q = conn.execute("SELECT COUNT(*) FROM queries").fetchone()[0]
            total = conn.execute(
                "SELECT COUNT(*) FROM labels WHERE retracted = 0 AND kind != 'skip'"
            ).fetchone()[0]
            out: dict[str, Any] = {"queries": total_q, "labels": total}
            if rater_id is not None:
                rid = validate_rater_id(rater_id)
                mine = conn.execute(
                    "SELECT kind = 'skip', COUNT(*) FROM labels "
                    "WHERE rater_id = ? AND retracted = 0 GROUP BY kind = 'skip'",
                    (rid,),
                ).fetchall()
                counts = {bool(k): n for k, n in mine}
                out.update(
                    rater_id=rid,
                    rater_labels=counts.get(False, 0),
                    rater_skips=counts.get(True, 0),
                    pending=total_q - counts.get(False, 0) - counts.get(True, 0),
                )
            budget = self.budget
            out.update(
                budget=budget, budget_left=None if budget is None else max(0, budget - total)
            )
            out["cursor"] = conn.execute("SELECT COALESCE(MAX(rev), 0) FROM labels").fetchone()[0]
        return out

    def stats(self) -> dict[str, Any]:
        """Totals, per-rater counts and inter-rater agreement (on queries labelled by several).

        Returns a JSON-ready dict: `items`, `queries` (per kind and `total`), `labels`
        (active, non-skip), `skips`, `retracted`, `budget`, `budget_left`, `cursor`,
        `raters` ({rater: labels, skips, pending, agreement, compared}) and `agreement`
        (`overall`, `comparisons`, `pairs`: one entry per rater pair with shared labels).
        """
        with self._read() as conn:
            items = conn.execute("SELECT COUNT(*) FROM items").fetchone()[0]
            per_kind = dict(conn.execute("SELECT kind, COUNT(*) FROM queries GROUP BY kind"))
            retracted = conn.execute("SELECT COUNT(*) FROM labels WHERE retracted = 1")
            n_retracted = retracted.fetchone()[0]
            rows = conn.execute(
                f"SELECT {LABEL_COLUMNS} FROM labels l JOIN queries q ON q.id = l.query_id "
                "WHERE l.retracted = 0 ORDER BY l.rev"
            ).fetchall()
            cursor = conn.execute("SELECT COALESCE(MAX(rev), 0) FROM labels").fetchone()[0]
            budget = self.budget
        return summarize(
            [label_from_row(r) for r in rows],
            queries_per_kind=per_kind,
            items=items,
            retracted=n_retracted,
            cursor=cursor,
            budget=budget,
        )

    # --- internals -----------------------------------------------------------------------------

    def _next_rev(self, conn: sqlite3.Connection) -> int:
        # Rows are never deleted, so MAX(rev) only grows; writers are serialised by
        # BEGIN IMMEDIATE, so revisions commit in order and a reader never sees a gap fill.
        return int(conn.execute("SELECT COALESCE(MAX(rev), 0) + 1 FROM labels").fetchone()[0])

    def _check_budget(self, conn: sqlite3.Connection) -> None:
        row = conn.execute("SELECT value FROM meta WHERE key = 'budget'").fetchone()
        budget = None if row is None else json.loads(row[0])
        if budget is None:
            return
        used = conn.execute(
            "SELECT COUNT(*) FROM labels WHERE retracted = 0 AND kind != 'skip'"
        ).fetchone()[0]
        if used >= budget:
            raise BudgetSpentError(
                f"the label budget of {budget} is spent ({used} labels given); "
                "skips and undo still work"
            )

    def _label(self, conn: sqlite3.Connection, label_id: int) -> StoredLabel:
        row = conn.execute(
            f"SELECT {LABEL_COLUMNS} FROM labels l JOIN queries q ON q.id = l.query_id "
            "WHERE l.id = ?",
            (label_id,),
        ).fetchone()
        return self._labels_from_rows([row], conn)[0]

    def _labels_from_rows(
        self, rows: Sequence[Sequence[Any]], conn: sqlite3.Connection | None = None
    ) -> list[StoredLabel]:
        """Labels from LABEL_COLUMNS rows, with their items' episode ids looked up."""
        conn = conn or self._conn()
        item_ids = sorted({i for row in rows for i in json.loads(row[10])})
        episodes: dict[int, str] = {}
        for start in range(0, len(item_ids), 500):  # stay under SQLite's variable limit
            chunk = item_ids[start : start + 500]
            marks = ",".join("?" * len(chunk))
            found = conn.execute(f"SELECT id, episode_id FROM items WHERE id IN ({marks})", chunk)
            episodes.update((int(i), e) for i, e in found)
        return [label_from_row(row, episodes) for row in rows]


def _episode_rows(
    records: Sequence[EpisodeRecord], meta: dict[str, Any] | None
) -> list[tuple[Any, ...]]:
    """Item rows for `records` (images encoded here, outside the write transaction)."""
    now = time.time()
    rows = []
    for rec in records:
        image = fmt = shape = None
        if rec.image is not None:
            image, fmt, shape_list = encode_image(rec.image)
            shape = json.dumps(shape_list)
        rows.append(
            (
                rec.episode_id, rec.env_runner_id, rec.task, rec.prompt, rec.response,
                rec.ground_truth, float(rec.score), int(bool(rec.success)),
                plain_json(list(rec.actions)), plain_json(list(rec.step_scores)),
                plain_json(dict(rec.extras)), image, fmt, shape, plain_json(meta or {}), now,
            )
        )  # fmt: skip
    return rows
