"""label_server helpers: store path resolution and demo episodes from the real env."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from mmrlhf.feedback.labelstore import DEFAULT_FILENAME, LabelStore
from mmrlhf.trainers.label_server import (
    _is_loopback,
    add_demo_items,
    resolve_store_path,
    rollout_records,
)


def test_resolve_store_path(tmp_path: Path) -> None:
    assert resolve_store_path(tmp_path) == tmp_path / DEFAULT_FILENAME
    assert resolve_store_path(tmp_path / "new-exp") == tmp_path / "new-exp" / DEFAULT_FILENAME
    assert resolve_store_path(tmp_path / "x.sqlite") == tmp_path / "x.sqlite"
    existing = tmp_path / "labels"
    existing.write_bytes(b"")
    assert resolve_store_path(existing) == existing


def test_loopback() -> None:
    assert _is_loopback("127.0.0.1") and _is_loopback("localhost") and _is_loopback("::1")
    assert not _is_loopback("0.0.0.0") and not _is_loopback("example.org")


def test_rollouts_same_scene_differ_in_response() -> None:
    records = rollout_records("dialogue", 3, seed=3, same_scene=True)
    assert len({r.prompt for r in records}) == 1
    assert len({r.response for r in records}) == 3
    assert all(r.image is not None and r.image.dtype == np.uint8 for r in records)
    assert records[0].image is not None and records[0].image.shape == (64, 64, 3)
    np.testing.assert_array_equal(records[0].image, records[1].image)


def test_add_demo_items(tmp_path: Path) -> None:
    with LabelStore(tmp_path / "labels.sqlite") as store:
        counts = add_demo_items(store, episodes_per_task=2, tasks=("vqa", "caption"))
        assert counts == {"items": 14, "single": 4, "pair": 2, "ranking": 2}
        stats = store.stats()
        assert stats["items"] == 14
        assert stats["queries"] == {"single": 4, "pair": 2, "ranking": 2, "total": 8}
        tasks = [p.items[0].task for p in store.pending("ana", 100)]
        assert tasks == ["vqa"] * 4 + ["caption"] * 4
