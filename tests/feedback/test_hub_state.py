"""HubState (the FeedbackHub's plain state) without Ray."""

from __future__ import annotations

from mmrlhf.feedback.hub import HubState


def entry(runner: int, status: str = "labelled", i: int = 0) -> dict[str, object]:
    return {"episode_id": f"e{runner}-{i}", "env_runner_id": runner, "status": status}


def test_reserve_counts_per_runner_and_respects_budget() -> None:
    hub = HubState(label_budget=10)
    assert hub.reserve(1, 4) == 4
    assert hub.reserve(2, 4) == 4
    assert hub.reserve(1, 4) == 2
    assert hub.reserve(2, 4) == 0
    stats = hub.stats()
    assert stats["reserved"] == 10 and stats["remaining"] == 0
    assert stats["per_runner"][1]["reserved"] == 6 and stats["per_runner"][2]["reserved"] == 4


def test_log_counts_labels_and_skips() -> None:
    hub = HubState()
    hub.log([entry(1, i=0), entry(1, "skipped", 1), entry(2, i=2)])
    stats = hub.stats()
    assert stats["labels"] == 2 and stats["skipped"] == 1 and stats["logged"] == 3
    assert stats["per_runner"][1] == {"reserved": 0, "labels": 1, "skipped": 1, "logged": 2}
    assert [e["episode_id"] for e in hub.labels(1)] == ["e1-1", "e2-2"]


def test_log_is_bounded_but_counts_are_not() -> None:
    hub = HubState(log_capacity=5)
    hub.log([entry(0, i=i) for i in range(12)])
    assert len(hub.labels()) == 5 and hub.labels()[0]["episode_id"] == "e0-7"
    assert hub.stats()["labels"] == 12


def test_reset_starts_over() -> None:
    hub = HubState(label_budget=3)
    hub.reserve(1, 3)
    hub.log([entry(1)])
    hub.reset(5)
    stats = hub.stats()
    assert stats["reserved"] == 0 and stats["remaining"] == 5 and stats["labels"] == 0
    assert stats["per_runner"] == {} and hub.labels() == []
