"""The label budget is never exceeded: by the schedule, by rankings, by human labels."""

from __future__ import annotations

import threading

import pytest

from mmrlhf.feedback.config import FeedbackConfig
from mmrlhf.feedback.preferences import PreferenceLabel, RankingLabel, RatingLabel
from mmrlhf.feedback.reward_model import RewardModelSpec
from mmrlhf.feedback.rlhf import RLHFState
from tests.rlhf.conftest import TINY_RM, make_sample


def state(budget: int | None, **overrides: object) -> RLHFState:
    cfg = FeedbackConfig(
        enabled=True, source="reward_model", label_budget=budget, rm_min_steps=1,
        rm_max_steps=1, **{**TINY_RM, **overrides},
    )  # fmt: skip
    return RLHFState(cfg)


@pytest.mark.parametrize(("budget", "k", "per_iter"), [(37, 2, 10), (20, 4, 9), (5, 3, 50)])
def test_schedule_rounds_never_exceed_budget(
    tiny_spec: RewardModelSpec, budget: int, k: int, per_iter: int
) -> None:
    s = state(budget, query_k=k, queries_per_iter=per_iter, query_mode="random")
    for it in range(1, 8):
        s.add_episodes(
            [make_sample(f"{it}-{i}", score=(i % 3) / 2, prompt=1 + i % 2) for i in range(40)],
            tiny_spec,
        )
        s.step(it)
        assert s.budget.granted <= budget
    assert s.budget.granted == budget - (budget % (k - 1))  # spent up to what whole queries fit
    assert s.stats()["labels"] == s.budget.granted <= budget


def test_human_labels_share_the_budget_and_extra_ones_are_refused(
    tiny_spec: RewardModelSpec,
) -> None:
    s = state(5)
    samples = [make_sample(f"e{i}", score=i / 9) for i in range(10)]
    s.add_episodes(samples, tiny_spec)
    ranking = RankingLabel(("e0", "e1", "e2"), (2, 1, 0), source="human")  # costs 2
    assert s.add_labels([ranking]) == 1
    prefs = [PreferenceLabel(f"e{i}", f"e{i + 1}", 0.0, source="human") for i in range(3, 8)]
    assert s.add_labels(prefs) == 3  # 2 + 3 = 5
    assert s.add_labels([RatingLabel("e9", 1.0, source="human")]) == 0
    # a ranking that no longer fits is refused whole, not partly spent
    s2 = state(2)
    s2.add_episodes(samples, tiny_spec)
    assert s2.add_labels([RankingLabel(("e0", "e1", "e2", "e3"), (0, 1, 2, 3))]) == 0
    assert s2.budget.granted == 0
    assert s.budget.granted == 5 and s.stats()["refused"] == 3 and s.stats()["human"] == 4


def test_unknown_episodes_are_refused_without_spending(tiny_spec: RewardModelSpec) -> None:
    s = state(3)
    assert s.add_labels([PreferenceLabel("nope", "nada", 1.0)]) == 0
    assert s.budget.granted == 0


def test_concurrent_label_sources_respect_the_budget(tiny_spec: RewardModelSpec) -> None:
    s = state(50)
    samples = [make_sample(f"e{i}") for i in range(30)]
    s.add_episodes(samples, tiny_spec)
    accepted: list[int] = []

    def label(offset: int) -> None:
        for i in range(40):
            a, b = f"e{(i + offset) % 30}", f"e{(i + offset + 1) % 30}"
            accepted.append(s.add_labels([PreferenceLabel(a, b, 1.0, source="human")]))

    threads = [threading.Thread(target=label, args=(n,)) for n in range(4)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert sum(accepted) == 50 == s.budget.granted
