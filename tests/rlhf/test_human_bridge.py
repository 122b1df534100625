"""Human labels from the label store into the reward model (no Ray)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient

from mmrlhf.envs import MyMultimodalEnv
from mmrlhf.feedback.config import FeedbackConfig
from mmrlhf.feedback.human import (
    HumanLabelBridge,
    record_from_sample,
    sample_from_stored_record,
    stored_to_labels,
)
from mmrlhf.feedback.labelstore import LabelStore, StoredLabel
from mmrlhf.feedback.pairs import rollout
from mmrlhf.feedback.preferences import BinaryLabel, PreferenceLabel, RankingLabel, RatingLabel
from mmrlhf.feedback.rlhf import RLHFState, make_spec
from mmrlhf.feedback.samples import EpisodeSample
from mmrlhf.feedback.webapp import create_app
from tests.rlhf.conftest import TINY_RM


def stored(
    rev: int, kind: str, value: object, *, query: int = 1, rater: str = "ann",
    eps: tuple[str, ...] = ("e0",), retracted: bool = False,
) -> StoredLabel:  # fmt: skip
    """A store row as `labels_since` returns it."""
    query_kind = {"compare": "pair", "rank": "ranking"}.get(kind, "single")
    return StoredLabel(
        id=rev, query_id=query, rater_id=rater, kind=kind, value=value, created_at=0.0,
        updated_at=0.0, rev=rev, retracted=retracted, query_kind=query_kind,
        item_ids=list(range(10, 10 + len(eps))), episode_ids=list(eps),
    )  # fmt: skip


def test_stored_to_labels_converts_and_keeps_latest_active_rows() -> None:
    rows = [
        stored(1, "rating", 2, query=1),
        stored(2, "rating", 5, query=1),  # replaces rev 1
        stored(3, "thumbs", "down", query=2, eps=("e1",)),
        stored(4, "compare", "b", query=3, eps=("e0", "e1")),
        stored(5, "rank", [12, 10, 11], query=4, eps=("e0", "e1", "e2")),
        stored(6, "skip", None, query=5),
        stored(7, "thumbs", "up", query=6, eps=("e3",)),
        stored(8, "thumbs", "up", query=6, eps=("e3",), retracted=True),  # undone
        stored(9, "rating", 1, query=1, rater="bob"),
        stored(10, "compare", "both_bad", query=7, eps=("e4", "e5")),
        stored(11, "compare", "both_good", query=8, eps=("e5", "e6")),
    ]
    labels = stored_to_labels(rows)
    assert labels == [
        RatingLabel("e0", 1.0, source="human:ann"),
        BinaryLabel("e1", False, source="human:ann"),
        PreferenceLabel("e0", "e1", 0.0, source="human:ann"),
        RankingLabel(("e0", "e1", "e2"), (1, 2, 0), source="human:ann"),
        RatingLabel("e0", 0.0, source="human:bob"),
        PreferenceLabel("e4", "e5", 0.5, source="human:ann", tie="both_bad"),
        PreferenceLabel("e5", "e6", 0.5, source="human:ann", tie="both_good"),
    ]


@pytest.fixture(scope="module")
def env_samples() -> list[EpisodeSample]:
    """Six real episodes of `MyMultimodalEnv` as the hub receives them."""
    env = MyMultimodalEnv({})
    rng = np.random.default_rng(0)
    out = [
        rollout(
            env,
            seed=i,
            oracle_prob=0.5,
            rng=rng,
            response_len=TINY_RM["rm_response_len"],
            episode_id=f"ep-{i}",
        )[0]
        for i in range(6)
    ]
    env.close()
    return out


def _config(path: Path, **kw: object) -> FeedbackConfig:
    return FeedbackConfig(
        enabled=True, source="reward_model", human_store=str(path), human_enqueue_fraction=1.0,
        human_enqueue_per_iter=4, rm_min_steps=1, rm_max_steps=2, **TINY_RM, **kw,
    )  # fmt: skip


def _spec(config: FeedbackConfig, sample: EpisodeSample) -> object:
    return make_spec(
        config, image_size=sample.image.shape[0], prompt_len=sample.prompt_ids.shape[0],
        vocab_size=MyMultimodalEnv({}).tokenizer.vocab_size,
    )  # fmt: skip


def test_record_round_trip_keeps_reward_model_inputs(
    tmp_path: Path, env_samples: list[EpisodeSample]
) -> None:
    sample = env_samples[0]
    store = LabelStore(tmp_path / "labels.sqlite")
    item = store.add_episode(record_from_sample(sample))
    back = sample_from_stored_record(store.episode(item))
    assert back is not None and back.episode_id == sample.episode_id
    for name in ("image", "prompt_ids", "response_ids"):
        np.testing.assert_array_equal(getattr(back, name), getattr(sample, name))
    assert store.get_item(item).public()["prompt"] == sample.prompt
    assert "rm_prompt_ids" not in str(store.get_item(item).public())


def test_human_labels_reach_the_reward_model(
    tmp_path: Path, env_samples: list[EpisodeSample]
) -> None:
    path = tmp_path / "labels.sqlite"
    config = _config(path)
    state = RLHFState(config)
    state.add_episodes(env_samples, _spec(config, env_samples[0]))

    # Step 1: the newest 4 episodes go to people; no labels yet, the simulated rater is off.
    out = state.step(1)
    assert out["human_labels_added"] == 0 and out["labels_added"] == 0
    assert state.counts["human_enqueued"] == 4 and state.counts["queries"] == 0

    # People label through the store and through the web app.
    store = LabelStore(path)
    pending = {p.items[0].episode_id: p for p in store.pending("alice")}
    assert sorted(pending) == ["ep-2", "ep-3", "ep-4", "ep-5"]
    store.add_label(pending["ep-2"].query.id, "alice", "rating", 5)
    store.add_label(pending["ep-3"].query.id, "alice", "thumbs", "down")
    store.add_label(pending["ep-4"].query.id, "alice", "skip")
    store.add_label(pending["ep-5"].query.id, "alice", "rating", 1)
    store.undo_last("alice")  # ep-5 retracted
    pair = store.add_query("pair", [pending["ep-2"].items[0].id, pending["ep-3"].items[0].id])
    with TestClient(create_app(store)) as client:
        resp = client.post(
            "/api/labels", json={"query_id": pair, "rater_id": "bob", "kind": "compare",
                                 "value": "a"},
        )  # fmt: skip
        assert resp.status_code == 201, resp.text

    out = state.step(2)
    assert out["human_labels_added"] == 3 and out["published"] and state.trainer is not None
    assert state.trainer.labels == [
        RatingLabel("ep-2", 1.0, source="human:alice"),
        BinaryLabel("ep-3", False, source="human:alice"),
        PreferenceLabel("ep-2", "ep-3", 1.0, source="human:bob"),
    ]
    assert state.stats()["human"] == 3 and state.budget.granted == 3
    # Nothing new: nothing added twice.
    assert state.step(3)["human_labels_added"] == 0


def test_labels_on_episodes_out_of_the_pool_are_rebuilt_from_the_store(
    tmp_path: Path, env_samples: list[EpisodeSample]
) -> None:
    path = tmp_path / "labels.sqlite"
    bridge = HumanLabelBridge(path)
    [query] = bridge.enqueue(env_samples[:1])
    bridge.store.add_label(query, "carol", "thumbs", "up")

    # A fresh hub (a restart) whose pool never held the episode.
    config = _config(path)
    state = RLHFState(config)
    state.ensure_model(_spec(config, env_samples[0]))
    assert state.step(1)["human_labels_added"] == 1
    assert state.trainer is not None
    assert state.trainer.labels == [BinaryLabel("ep-0", True, source="human:carol")]


def test_settle_window_keeps_undone_labels_out(
    tmp_path: Path, env_samples: list[EpisodeSample]
) -> None:
    now = [1e12]
    bridge = HumanLabelBridge(tmp_path / "labels.sqlite", settle_s=30.0, clock=lambda: now[0])
    q0, q1 = bridge.enqueue(env_samples[:2])
    bridge.store.add_label(q0, "dan", "rating", 4)
    bridge.store.add_label(q1, "dan", "rating", 2)
    now[0] = 0.0  # labels are "just now" relative to this clock
    assert bridge.poll() == []
    bridge.store.undo_last("dan")  # q1 undone within the window
    now[0] = 1e12
    assert bridge.poll() == [RatingLabel("ep-0", 0.75, source="human:dan")]
    bridge.store.add_label(q0, "dan", "rating", 1, replace=True)
    assert bridge.poll() == [] and bridge.counts["late_changes"] == 1


def test_human_store_needs_reward_model_source(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="human_store"):
        FeedbackConfig(enabled=True, human_store=str(tmp_path / "x.sqlite"))
