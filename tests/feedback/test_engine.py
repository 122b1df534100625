"""FeedbackEngine: fraction of episodes rated, budget, skips, reward shaping."""

from __future__ import annotations

import pytest

from mmrlhf.feedback.config import FeedbackConfig
from mmrlhf.feedback.engine import FeedbackEngine, hub_entry, shape_rewards


def run(engine: FeedbackEngine, record, n: int, score: float = 1.0) -> list[str]:
    return [engine.process(record(score)).status for _ in range(n)]


def test_rate_fraction_respected(record) -> None:
    cfg = FeedbackConfig(enabled=True, rate_fraction=0.3, seed=1)
    statuses = run(FeedbackEngine(cfg, stream=0), record, 5000)
    assert abs(statuses.count("labelled") / 5000 - 0.3) < 0.02
    assert set(statuses) == {"labelled", "not_sampled"}


def test_budget_caps_labels(record) -> None:
    cfg = FeedbackConfig(enabled=True, label_budget=10)
    statuses = run(FeedbackEngine(cfg), record, 100)
    assert statuses.count("labelled") == 10
    assert statuses[:10] == ["labelled"] * 10 and set(statuses[10:]) == {"no_budget"}


def test_skipped_episodes_do_not_spend_budget(record) -> None:
    cfg = FeedbackConfig(enabled=True, rater="skip", skip_prob=0.5, label_budget=20, seed=2)
    statuses = run(FeedbackEngine(cfg), record, 200)
    assert statuses.count("labelled") == 20
    assert statuses.count("skipped") > 5


def test_budget_and_fraction_together(record) -> None:
    cfg = FeedbackConfig(enabled=True, rate_fraction=0.5, label_budget=30, seed=3)
    statuses = run(FeedbackEngine(cfg), record, 400)
    assert statuses.count("labelled") == 30
    first_no_budget = statuses.index("no_budget")
    assert 40 < first_no_budget < 90  # about 60 episodes to spend 30 labels at 50 %


def test_outcome_agreement_and_reward(record) -> None:
    eng = FeedbackEngine(FeedbackConfig(enabled=True, rater="mistake", epsilon=1.0))
    out = eng.process(record(1.0))
    assert out.status == "labelled" and out.feedback_reward == 0.0 and out.agreement is False
    good = FeedbackEngine(FeedbackConfig(enabled=True)).process(record(1.0))
    assert good.feedback_reward == 1.0 and good.agreement is True


def test_same_seed_same_outcomes(record) -> None:
    cfg = FeedbackConfig(enabled=True, rater="noisy", rate_fraction=0.5, seed=4)
    eng1, eng2 = FeedbackEngine(cfg, stream=1), FeedbackEngine(cfg, stream=1)
    a = [eng1.process(record(0.5)) for _ in range(100)]
    b = [eng2.process(record(0.5)) for _ in range(100)]
    assert a == b


def test_shape_rewards() -> None:
    assert shape_rewards([0.0, 0.0, 1.0], 0.5, env_weight=0.5, feedback_weight=2.0) == [
        0.0,
        0.0,
        1.5,
    ]
    assert shape_rewards([1.0, 2.0], None, env_weight=0.0, feedback_weight=1.0) == [0.0, 0.0]
    with pytest.raises(ValueError, match="empty"):
        shape_rewards([], 1.0, env_weight=1.0, feedback_weight=1.0)


def test_hub_entry(record) -> None:
    out = FeedbackEngine(FeedbackConfig(enabled=True)).process(record(1.0))
    entry = hub_entry(record(1.0, episode_id="x", env_runner_id=2), out)
    assert entry["episode_id"] == "x" and entry["env_runner_id"] == 2
    assert entry["status"] == "labelled" and entry["reward"] == 1.0 and entry["rater"] == "oracle"
