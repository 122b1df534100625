"""`FeedbackHub`: one named Ray actor holding feedback state shared by all EnvRunners.

The hub keeps the global label budget, per-EnvRunner counts, and a log of every rated episode
(episode id, runner id, label). EnvRunners talk to it through `HubClient`, which keeps the
sampling path cheap:

- budget: one blocking `reserve` call per block of `hub_block` labels (`LabelAllowance`),
  never one per episode;
- log: entries are buffered and sent fire-and-forget (`log.remote(...)`, no `ray.get`) once
  per `sample()` call or when the buffer fills.

`HubState` is the plain-Python state (tested without Ray); `FeedbackHub` wraps it as an actor
with `num_cpus=0` so it never takes a CPU slot from the EnvRunners.
"""

from __future__ import annotations

import logging
from collections import deque
from dataclasses import dataclass, field
from typing import Any

import ray

from mmrlhf.feedback.budget import LabelAllowance, LabelBudget

logger = logging.getLogger(__name__)

DEFAULT_LOG_CAPACITY = 100_000


@dataclass
class RunnerCounts:
    """What one EnvRunner did, as the hub saw it."""

    reserved: int = 0
    labels: int = 0
    skipped: int = 0
    logged: int = 0


@dataclass
class HubState:
    """Shared feedback state: global budget, per-runner counts, bounded label log.

    Args:
        label_budget: Labels allowed across all runners (None = unlimited).
        log_capacity: Most recent log entries kept (counts are kept for all).
    """

    label_budget: int | None = None
    log_capacity: int = DEFAULT_LOG_CAPACITY
    budget: LabelBudget = field(init=False)
    runners: dict[int, RunnerCounts] = field(init=False)
    entries: deque[dict[str, Any]] = field(init=False)
    total_logged: int = field(init=False)

    def __post_init__(self) -> None:
        self.reset(self.label_budget)

    def reset(self, label_budget: int | None) -> None:
        """Start over with a new budget: counts and log cleared."""
        self.label_budget = label_budget
        self.budget = LabelBudget(label_budget)
        self.runners = {}
        self.entries = deque(maxlen=self.log_capacity)
        self.total_logged = 0

    def _runner(self, env_runner_id: int) -> RunnerCounts:
        return self.runners.setdefault(int(env_runner_id), RunnerCounts())

    def reserve(self, env_runner_id: int, n: int) -> int:
        """Grant up to `n` labels to one runner; 0 once the budget is spent."""
        granted = self.budget.reserve(n)
        self._runner(env_runner_id).reserved += granted
        return granted

    def log(self, entries: list[dict[str, Any]]) -> None:
        """Record rated episodes (dicts from `engine.hub_entry`)."""
        for entry in entries:
            counts = self._runner(entry.get("env_runner_id", -1))
            counts.logged += 1
            if entry.get("status") == "labelled":
                counts.labels += 1
            elif entry.get("status") == "skipped":
                counts.skipped += 1
            self.entries.append(entry)
        self.total_logged += len(entries)

    def stats(self) -> dict[str, Any]:
        """Totals and per-runner counts as plain values."""
        return {
            "label_budget": self.budget.total,
            "reserved": self.budget.granted,
            "remaining": self.budget.remaining,
            "labels": sum(c.labels for c in self.runners.values()),
            "skipped": sum(c.skipped for c in self.runners.values()),
            "logged": self.total_logged,
            "per_runner": {k: vars(c).copy() for k, c in sorted(self.runners.items())},
        }

    def labels(self, start: int = 0) -> list[dict[str, Any]]:
        """Kept log entries from position `start` on (oldest first)."""
        return list(self.entries)[start:]


@ray.remote(num_cpus=0)
class FeedbackHub:
    """Ray actor around `HubState`; methods mirror it. Create with `get_or_create_hub`."""

    def __init__(
        self, label_budget: int | None = None, log_capacity: int = DEFAULT_LOG_CAPACITY
    ) -> None:
        self.state = HubState(label_budget=label_budget, log_capacity=log_capacity)

    def reset(self, label_budget: int | None) -> None:
        """See `HubState.reset`."""
        self.state.reset(label_budget)

    def reserve(self, env_runner_id: int, n: int) -> int:
        """See `HubState.reserve`."""
        return self.state.reserve(env_runner_id, n)

    def log(self, entries: list[dict[str, Any]]) -> None:
        """See `HubState.log`."""
        self.state.log(entries)

    def stats(self) -> dict[str, Any]:
        """See `HubState.stats`."""
        return self.state.stats()

    def labels(self, start: int = 0) -> list[dict[str, Any]]:
        """See `HubState.labels`."""
        return self.state.labels(start)


def get_or_create_hub(
    name: str, *, label_budget: int | None = None, log_capacity: int = DEFAULT_LOG_CAPACITY
) -> ray.actor.ActorHandle:
    """Return the hub actor called `name`, creating it if it does not exist yet.

    Safe to call from many processes at once (`get_if_exists=True`). The first caller owns
    the actor: it lives as long as that process (the algorithm process calls this in
    `on_algorithm_init`, before any EnvRunner samples, and then `reset`s it, so a second run
    in the same driver starts from a full budget), and a finished run does not leave a
    detached actor behind on a long-lived cluster. `label_budget` only matters for the
    caller that creates it.
    """
    return FeedbackHub.options(  # type: ignore[attr-defined]
        name=name, get_if_exists=True, lifetime=None
    ).remote(label_budget=label_budget, log_capacity=log_capacity)


class HubClient:
    """EnvRunner side of the hub: block-wise budget and buffered fire-and-forget logging.

    Args:
        hub: The hub actor handle.
        env_runner_id: This runner's worker_index (for counts and the log).
        label_budget: Whether a budget exists at all (None: never call `reserve`).
        block: Labels reserved per round trip; also the log buffer size that forces a flush.
    """

    def __init__(
        self,
        hub: ray.actor.ActorHandle,
        *,
        env_runner_id: int,
        label_budget: int | None,
        block: int = 32,
    ) -> None:
        self.hub = hub
        self.env_runner_id = env_runner_id
        self.block = block
        self._buffer: list[dict[str, Any]] = []
        self.allowance = (
            LabelAllowance.unbounded()
            if label_budget is None
            else LabelAllowance(reserve=self._reserve, block=block)
        )

    def _reserve(self, n: int) -> int:
        # The one blocking call on the sampling path, once per block of labels.
        return int(ray.get(self.hub.reserve.remote(self.env_runner_id, n)))

    def log(self, entry: dict[str, Any]) -> None:
        """Buffer one log entry; send the buffer when it holds `block` entries."""
        self._buffer.append(entry)
        if len(self._buffer) >= self.block:
            self.flush()

    def flush(self) -> None:
        """Send buffered entries without waiting for the hub (fire-and-forget)."""
        if self._buffer:
            self.hub.log.remote(self._buffer)
            self._buffer = []
