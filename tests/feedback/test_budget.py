"""Label budget: never exceeded, blocks, exhaustion."""

from __future__ import annotations

import numpy as np
import pytest

from mmrlhf.feedback.budget import LabelAllowance, LabelBudget


def test_reserve_grants_at_most_remaining() -> None:
    b = LabelBudget(10)
    assert b.reserve(4) == 4 and b.reserve(4) == 4 and b.reserve(4) == 2 and b.reserve(4) == 0
    assert b.exhausted and b.remaining == 0 and b.granted == 10


def test_unlimited_budget() -> None:
    b = LabelBudget(None)
    assert b.reserve(1000) == 1000 and b.remaining is None and not b.exhausted


def test_negative_values_rejected() -> None:
    with pytest.raises(ValueError, match="budget"):
        LabelBudget(-1)
    with pytest.raises(ValueError, match="negative"):
        LabelBudget(3).reserve(-1)
    with pytest.raises(ValueError, match="block"):
        LabelAllowance(reserve=LabelBudget(3).reserve, block=0)


@pytest.mark.parametrize("total", [0, 1, 7, 100])
def test_shared_budget_never_exceeded_by_interleaved_runners(total: int) -> None:
    shared = LabelBudget(total)
    runners = [LabelAllowance(reserve=shared.reserve, block=b) for b in (1, 3, 8)]
    rng = np.random.default_rng(0)
    for _ in range(500):
        runner = runners[int(rng.integers(len(runners)))]
        if runner.available():
            runner.spend()
    spent = sum(r.spent for r in runners)
    assert spent <= total
    assert shared.granted <= total
    # nothing is lost but labels still held in other runners' blocks
    assert spent + sum(r.held for r in runners) == shared.granted == total


def test_allowance_refills_per_block_and_stops_asking_after_exhaustion() -> None:
    calls: list[int] = []
    budget = LabelBudget(5)

    def reserve(n: int) -> int:
        calls.append(n)
        return budget.reserve(n)

    allowance = LabelAllowance(reserve=reserve, block=2)
    spent = 0
    for _ in range(50):
        if allowance.available():
            allowance.spend()
            spent += 1
    assert spent == 5
    assert calls == [2, 2, 2, 2]  # 2 + 2 + 1, then one refusal; never asked again
    assert allowance.exhausted and allowance.refills == 4


def test_spend_without_available_label_raises() -> None:
    with pytest.raises(RuntimeError, match="available"):
        LabelAllowance(reserve=lambda n: 0).spend()


def test_local_and_unbounded() -> None:
    assert LabelAllowance.local(None).unlimited
    local = LabelAllowance.local(3, block=10)
    got = 0
    while local.available():
        local.spend()
        got += 1
    assert got == 3
