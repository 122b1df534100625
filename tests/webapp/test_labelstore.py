"""LabelStore: items, queries, label rules, undo, cursors, durability, stats (no web)."""

from __future__ import annotations

import pickle
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from mmrlhf.feedback.labelstore import (
    DEFAULT_FILENAME,
    BudgetSpentError,
    InvalidLabelError,
    LabelConflictError,
    LabelStore,
    NotFoundError,
    decode_image,
    encode_image,
    label_agreement,
)
from tests.webapp.conftest import RecordFactory, fill


def test_wal_mode_and_experiment_path(tmp_path: Path) -> None:
    with LabelStore.for_experiment(tmp_path / "run") as s:
        assert s.path == tmp_path / "run" / DEFAULT_FILENAME
        mode = s._conn().execute("PRAGMA journal_mode").fetchone()[0]
        assert mode == "wal"


def test_add_episode_roundtrip_and_idempotent(store: LabelStore, record: RecordFactory) -> None:
    rec = record("ep-a", score=0.5)
    item_id = store.add_episode(rec)
    assert store.add_episode(rec) == item_id  # same episode id: same item, nothing new
    back = store.episode(item_id)
    assert back.episode_id == "ep-a" and back.score == 0.5 and back.extras == {"f1": 0.5}
    assert back.image is not None and rec.image is not None
    np.testing.assert_array_equal(back.image, rec.image)
    png = store.image_png(item_id)
    assert png is not None and png.startswith(b"\x89PNG")
    public = store.get_item(item_id).public()
    assert "ground_truth" not in public and "score" not in public and "success" not in public
    assert public["has_image"] and public["image_shape"] == [16, 16, 3]


def test_items_without_image_and_npy_images(store: LabelStore, record: RecordFactory) -> None:
    no_image = store.add_episode(record("ep-none", image=None))
    assert store.image_png(no_image) is None
    assert store.get_item(no_image).public()["has_image"] is False
    floats = np.linspace(0, 1, 8 * 8 * 3, dtype=np.float32).reshape(8, 8, 3)
    item = store.add_episode(record("ep-float", image=floats))
    assert store.get_item(item).image_format == "npy"
    np.testing.assert_array_equal(store.episode(item).image, floats)
    assert (store.image_png(item) or b"").startswith(b"\x89PNG")  # shown as a PNG anyway
    gray = np.arange(64, dtype=np.uint8).reshape(8, 8, 1)
    data, fmt, shape = encode_image(gray)
    assert fmt == "png"
    np.testing.assert_array_equal(decode_image(data, fmt, shape), gray)


def test_add_query_validation(store: LabelStore, record: RecordFactory) -> None:
    a, b = store.add_episode(record("a")), store.add_episode(record("b"))
    assert store.get_query(store.add_query("pair", [a, b])).item_ids == [a, b]
    with pytest.raises(InvalidLabelError, match="unknown query kind 'triple'; allowed"):
        store.add_query("triple", [a])
    with pytest.raises(InvalidLabelError, match="single query takes exactly 1 item; got 2"):
        store.add_query("single", [a, b])
    with pytest.raises(InvalidLabelError, match="distinct"):
        store.add_query("pair", [a, a])
    with pytest.raises(InvalidLabelError, match="ranking query takes 2 to 8 items; got 1"):
        store.add_query("ranking", [a])
    with pytest.raises(NotFoundError, match=r"unknown item ids \[99\]"):
        store.add_query("pair", [a, 99])
    with pytest.raises(NotFoundError):
        store.get_item(99)
    with pytest.raises(NotFoundError):
        store.get_query(99)


def test_label_kinds_values_and_rewards(store: LabelStore, filled: dict[str, list[int]]) -> None:
    s1, s2, s3 = filled["single"]
    (pair,), (ranking,) = filled["pair"], filled["ranking"]
    assert store.add_label(s1, "ana", "rating", 5).label.reward == 1.0
    assert store.add_label(s2, "ana", "thumbs", "DOWN").label.value == "down"
    assert store.add_label(s3, "ana", "skip").label.reward is None
    lab = store.add_label(pair, "ana", "compare", "b").label
    assert lab.preference == 0.0 and lab.item_ids == filled["items"][:2]
    assert lab.episode_ids == ["ep-0", "ep-1"]  # what RLHF labels name
    order = list(reversed(filled["items"][2:5]))
    ranked = store.add_label(ranking, "ana", "rank", order).label
    assert ranked.value == order and ranked.ranks == [2, 1, 0]
    assert ranked.episode_ids == ["ep-2", "ep-3", "ep-4"]
    assert store.labels_since(0)[0][0].episode_ids == ["ep-0"]
    bad = [
        (s1, "rating", 0, "out of range; allowed: 1 to 5"),
        (s1, "rating", 6, "out of range"),
        (s1, "rating", "five", "whole number of stars from 1 to 5"),
        (s1, "rating", 4.5, "whole number"),
        (s1, "rating", True, "whole number"),
        (s1, "thumbs", "sideways", '"up" or "down"'),
        (s1, "compare", "a", "allowed kinds: rating, thumbs, skip"),
        (pair, "rating", 3, "does not fit query .* \\(pair\\); allowed kinds: compare, skip"),
        (pair, "compare", "c", '"a" .*"b" .*"tie"'),
        (ranking, "rank", [1, 2], "permutation"),
        (ranking, "rank", "abc", "permutation"),
        (s1, "skip", 3, "skip takes no value"),
        (s1, "stars", 3, "allowed kinds"),
    ]
    before = store.labels_since(0)
    for query_id, kind, value, message in bad:
        with pytest.raises(InvalidLabelError, match=message):
            store.add_label(query_id, "bob", kind, value)
    assert store.labels_since(0) == before  # nothing changed
    with pytest.raises(NotFoundError, match="unknown query id 999"):
        store.add_label(999, "bob", "rating", 3)
    for rid in ["", " ", "-x", "a/b", "x" * 65, 5]:
        with pytest.raises(InvalidLabelError, match="rater id"):
            store.add_label(s1, rid, "rating", 3)  # type: ignore[arg-type]


def test_idempotent_conflict_and_replace(store: LabelStore, filled: dict[str, list[int]]) -> None:
    q = filled["single"][0]
    first = store.add_label(q, "ana", "rating", 4)
    assert first.status == "created"
    again = store.add_label(q, "ana", "rating", 4)
    assert again.status == "unchanged" and again.label.rev == first.label.rev
    with pytest.raises(LabelConflictError, match="already labelled query .* replace=true") as err:
        store.add_label(q, "ana", "rating", 2)
    assert err.value.existing.value == 4
    assert store.labels(query_id=q)[0].value == 4  # the conflict changed nothing
    replaced = store.add_label(q, "ana", "thumbs", "up", replace=True)
    assert replaced.status == "replaced" and replaced.label.rev > first.label.rev
    assert replaced.label.id == first.label.id
    assert [lab.value for lab in store.labels(query_id=q)] == ["up"]


def test_undo_pending_and_tombstones(store: LabelStore, filled: dict[str, list[int]]) -> None:
    s1, s2, _ = filled["single"]
    assert [p.query.id for p in store.pending("ana", 2)] == [s1, s2]
    store.add_label(s1, "ana", "rating", 3)
    store.add_label(s2, "ana", "rating", 4)
    assert s1 not in [p.query.id for p in store.pending("ana")]
    assert len(store.pending("bob")) == 5  # other raters still see everything
    labels, cursor = store.labels_since(0)
    assert [lab.query_id for lab in labels] == [s1, s2]
    undone = store.undo_last("ana")
    assert undone is not None and undone.query_id == s2 and undone.retracted
    assert store.pending("ana", 1)[0].query.id == s2
    changes, cursor2 = store.labels_since(cursor)
    assert [(c.query_id, c.retracted) for c in changes] == [(s2, True)]  # readers see the undo
    assert store.undo_last("ana") is not None  # undo again: s1
    assert store.undo_last("ana") is None  # nothing left
    relabel = store.add_label(s2, "ana", "rating", 1)
    assert relabel.status == "created" and relabel.label.id == undone.id
    assert store.labels_since(cursor2)[0][-1].value == 1
    assert store.labels(rater_id="ana")[0].query_id == s2


def test_pending_filters_and_order(store: LabelStore, filled: dict[str, list[int]]) -> None:
    pairs = store.pending("ana", kinds=["pair"])
    assert [p.query.kind for p in pairs] == ["pair"]
    assert [i.id for i in pairs[0].items] == filled["items"][:2]
    newest = store.pending("ana", 1, newest_first=True)
    assert newest[0].query.id == filled["ranking"][0]
    with pytest.raises(InvalidLabelError, match="unknown query kinds"):
        store.pending("ana", kinds=["pairs"])


def test_labels_since_pages(store: LabelStore, filled: dict[str, list[int]]) -> None:
    for rater in ("a1", "a2", "a3"):
        store.add_label(filled["single"][0], rater, "rating", 3)
    got, cursor = [], 0
    while True:
        page, cursor = store.labels_since(cursor, limit=2)
        if not page:
            break
        got += page
    assert [lab.rater_id for lab in got] == ["a1", "a2", "a3"] and cursor == got[-1].rev


def test_budget(store: LabelStore, filled: dict[str, list[int]]) -> None:
    s1, s2, s3 = filled["single"]
    store.set_budget(1)
    store.add_label(s1, "ana", "rating", 3)
    store.add_label(s2, "ana", "skip")  # skips are free
    with pytest.raises(BudgetSpentError, match="budget of 1 is spent"):
        store.add_label(s3, "ana", "rating", 3)
    store.add_label(s1, "ana", "rating", 5, replace=True)  # changing a label is not a new one
    assert store.progress("ana")["budget_left"] == 0
    store.set_budget(None)
    store.add_label(s3, "ana", "rating", 3)
    with pytest.raises(ValueError, match="non-negative"):
        store.set_budget(-1)


def test_stats_and_agreement(store: LabelStore, filled: dict[str, list[int]]) -> None:
    s1, s2, s3 = filled["single"]
    (pair,), (ranking,) = filled["pair"], filled["ranking"]
    items = filled["items"]
    store.add_label(s1, "ana", "rating", 5)
    store.add_label(s1, "bob", "rating", 4)  # within one star: agree
    store.add_label(s2, "ana", "thumbs", "up")
    store.add_label(s2, "bob", "rating", 1)  # disagree
    store.add_label(s3, "ana", "skip")
    store.add_label(s3, "bob", "rating", 2)  # skip: not compared
    store.add_label(pair, "ana", "compare", "a")
    store.add_label(pair, "bob", "compare", "a")  # agree
    store.add_label(ranking, "ana", "rank", items[2:5])
    store.add_label(ranking, "bob", "rank", [items[3], items[2], items[4]])  # 2 of 3 pairs
    stats = store.stats()
    assert stats["labels"] == 9 and stats["skips"] == 1 and stats["queries"]["total"] == 5
    assert stats["raters"]["ana"] == {
        "labels": 4,
        "skips": 1,
        "pending": 0,
        "agreement": pytest.approx((1 + 0 + 1 + 2 / 3) / 4),
        "compared": 4,
    }
    assert stats["agreement"]["comparisons"] == 4
    assert stats["agreement"]["pairs"][0]["raters"] == ["ana", "bob"]
    progress = store.progress("ana")
    assert progress["labels"] == 9 and progress["rater_labels"] == 4 and progress["pending"] == 0
    skip, rating = store.labels(query_id=s3)
    assert label_agreement(skip, rating) is None


def test_wait_for_label(store: LabelStore, filled: dict[str, list[int]]) -> None:
    q = filled["single"][0]
    t0 = time.monotonic()
    assert store.wait_for_label(q, timeout_s=0.2) is None
    assert 0.2 <= time.monotonic() - t0 < 1.5
    other = LabelStore(store.path)  # a person labelling from another connection

    def label_later() -> None:
        time.sleep(0.2)
        other.add_label(q, "ana", "rating", 2)

    thread = threading.Thread(target=label_later)
    thread.start()
    got = store.wait_for_label(q, timeout_s=10, rater_id="ana")
    thread.join()
    other.close()
    assert got is not None and got.value == 2 and got.reward == 0.25
    with pytest.raises(NotFoundError):
        store.wait_for_label(12345, timeout_s=0)


def test_restart_keeps_labels_and_queue(store_path: Path) -> None:
    s = LabelStore(store_path)
    ids = fill(s)
    s.add_label(ids["single"][0], "ana", "rating", 4)
    s.add_label(ids["pair"][0], "ana", "compare", "tie")
    s.add_label(ids["single"][1], "ana", "thumbs", "up")
    s.undo_last("ana")
    labels_before, pending_before = s.labels_since(0), s.pending("ana")
    s.close()
    with pytest.raises(Exception, match="closed"):
        s.pending("ana")
    reopened = LabelStore(store_path)
    assert reopened.labels_since(0) == labels_before
    assert [p.query.id for p in reopened.pending("ana")] == [p.query.id for p in pending_before]
    assert ids["single"][1] in [p.query.id for p in reopened.pending("ana")]
    reopened.close()


def test_pickles_as_path_and_threads_share_it(store: LabelStore, record: RecordFactory) -> None:
    clone = pickle.loads(pickle.dumps(store))
    assert clone.path == store.path
    item = clone.add_episode(record("from-clone"))
    queries = []

    def add(n: int) -> None:
        for _ in range(n):
            queries.append(store.add_query("single", [item]))

    threads = [threading.Thread(target=add, args=(10,)) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(set(queries)) == 40 and store.progress()["queries"] == 40
    clone.close()


def test_enqueue_episodes_one_transaction(store: LabelStore, record: RecordFactory) -> None:
    records = [record(f"live-{i}", seed=i) for i in range(3)]
    query_ids = store.enqueue_episodes(records, meta={"iteration": 7})
    assert len(set(query_ids)) == 3
    pending = store.pending("ana")
    assert [p.query.id for p in pending] == query_ids
    assert [p.items[0].episode_id for p in pending] == ["live-0", "live-1", "live-2"]
    assert pending[0].query.kind == "single" and pending[0].query.meta == {"iteration": 7}
    # Sending the same episodes again (a retried flush) adds nothing.
    assert store.enqueue_episodes(records) == query_ids
    assert store.progress()["queries"] == 3
