"""PhaseTimer adds up the seconds of an algorithm's sample and update calls per period."""

from __future__ import annotations

import time
from types import SimpleNamespace
from typing import Any

import pytest

from mmrlhf.trainers.phase_timer import PhaseTimer


class _Slow:
    def __init__(self, name: str, seconds: float) -> None:
        self.name, self.seconds, self.calls = name, seconds, 0

    def run(self, *a: Any, **kw: Any) -> tuple[Any, ...]:
        self.calls += 1
        time.sleep(self.seconds)
        return a, kw


def _algo(num_env_runners: int) -> tuple[Any, _Slow, _Slow]:
    sampler, learner = _Slow("sample", 0.02), _Slow("update", 0.01)
    algo = SimpleNamespace(
        config=SimpleNamespace(num_env_runners=num_env_runners),
        learner_group=SimpleNamespace(update=learner.run),
        env_runner_group=SimpleNamespace(local_env_runner=SimpleNamespace(sample=sampler.run)),
    )
    return algo, sampler, learner


def test_periods_add_up_each_phase_and_calls_pass_through() -> None:
    algo, sampler, learner = _algo(num_env_runners=0)
    timer = PhaseTimer(algo)
    timer.start()
    assert algo.env_runner_group.local_env_runner.sample(1, k=2) == ((1,), {"k": 2})
    algo.env_runner_group.local_env_runner.sample()
    algo.learner_group.update()
    first = timer.stop()
    timer.start()
    second = timer.stop()
    assert sampler.calls == 2 and learner.calls == 1
    assert first["sample"] == pytest.approx(0.04, abs=0.03)
    assert first["update"] == pytest.approx(0.01, abs=0.03)
    assert second == {"sample": 0.0, "update": 0.0}
    assert len(timer.periods) == 2
    assert timer.periods[0] >= first["sample"] + first["update"]
    assert timer.history == {
        "sample": [first["sample"], 0.0],
        "update": [first["update"], 0.0],
    }


def test_remote_sampling_is_not_timed() -> None:
    algo, sampler, _ = _algo(num_env_runners=1)
    timer = PhaseTimer(algo)
    timer.start()
    algo.env_runner_group.local_env_runner.sample()
    assert timer.stop()["sample"] == 0.0 and sampler.calls == 1
