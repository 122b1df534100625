"""Un-smoothed seconds an RLlib algorithm spends sampling and updating, per iteration.

RLlib's own `timers` are exponential moving averages (coefficient 0.01, started at the first
iteration's value), which on a machine whose speed drifts say little about any one
iteration. `PhaseTimer` wraps two methods on their instances instead and adds up their
seconds: the driver's EnvRunner `sample` (only with `num_env_runners: 0`; remote sampling
runs in other processes) and the LearnerGroup's `update`.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

PHASES = ("sample", "update")


class PhaseTimer:
    """Seconds in each phase of `algo`, and of the whole period, one entry per
    `start()`/`stop()` period."""

    def __init__(self, algo: Any) -> None:
        self.history: dict[str, list[float]] = {phase: [] for phase in PHASES}
        self.periods: list[float] = []
        self._now = dict.fromkeys(PHASES, 0.0)
        self._started = time.perf_counter()
        owners: dict[str, Any] = {"update": algo.learner_group}
        local = getattr(algo.env_runner_group, "local_env_runner", None)
        if local is not None and algo.config.num_env_runners == 0:
            owners["sample"] = local
        for phase, owner in owners.items():
            setattr(owner, phase, self._timed(phase, getattr(owner, phase)))

    def _timed(self, phase: str, method: Callable[..., Any]) -> Callable[..., Any]:
        def timed(*a: Any, **kw: Any) -> Any:
            t0 = time.perf_counter()
            try:
                return method(*a, **kw)
            finally:
                self._now[phase] += time.perf_counter() - t0

        return timed

    def start(self) -> None:
        """Begin a period (usually one `algo.train()` call)."""
        self._now = dict.fromkeys(PHASES, 0.0)
        self._started = time.perf_counter()

    def stop(self) -> dict[str, float]:
        """End the period: record its seconds (`periods`) and per phase (`history`; 0 where
        not wrapped), and return the latter."""
        self.periods.append(time.perf_counter() - self._started)
        for phase, seconds in self._now.items():
            self.history[phase].append(seconds)
        return dict(self._now)
