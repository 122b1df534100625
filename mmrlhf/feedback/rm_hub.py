"""`RewardModelHub`: the Ray actor that learns the reward model, and its EnvRunner client.

One named actor per run (like `FeedbackHub`) wraps `RLHFState`. It is a threaded actor
(`max_concurrency`), so EnvRunners' episode sends and weight checks are answered while a
`step` trains; it asks for `rm_num_cpus` CPUs (0 by default: it works between iterations).

Who calls what:

- algorithm process: `reset` once, then `step.remote(iteration)` after each iteration
  (fire-and-forget, never two at once) and `stats` for the result dict;
- EnvRunners (`RewardModelClient`): `add_episodes.remote(batch, spec)` fire-and-forget, and
  `latest.remote(version)` at most every `rm_sync_every` episodes, collected later with a
  zero-timeout `ray.wait`, so sampling never waits for labels, training or weights;
- people / a label store: `add_labels.remote(labels, samples)`, the same path the simulated
  rater's labels take.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import ray
import torch

from mmrlhf.feedback.config import FeedbackConfig
from mmrlhf.feedback.preferences import RLHFLabel
from mmrlhf.feedback.reward_model import PublishedRewardModel, RewardModelSpec
from mmrlhf.feedback.rlhf import RLHFState
from mmrlhf.feedback.samples import EpisodeSample

logger = logging.getLogger(__name__)

# Concurrent method calls the hub serves (a step, sends, weight checks, stats).
HUB_CONCURRENCY = 8


@ray.remote(num_cpus=0, max_concurrency=HUB_CONCURRENCY)
class RewardModelHub:
    """Ray actor around `RLHFState`; methods mirror it. Create with `get_or_create_rm_hub`."""

    def __init__(self, config: FeedbackConfig) -> None:
        # One intra-op thread: the hub shares the machine with EnvRunners and Learners.
        torch.set_num_threads(1)
        self.state = RLHFState(config)

    def reset(self, config: FeedbackConfig) -> None:
        """Start over (new budget, pool, model): a second run in the same driver."""
        self.state = RLHFState(config)

    def add_episodes(
        self, samples: list[EpisodeSample], spec: RewardModelSpec | None = None
    ) -> None:
        """See `RLHFState.add_episodes`."""
        self.state.add_episodes(samples, spec)

    def add_labels(
        self,
        labels: list[RLHFLabel],
        samples: Mapping[str, EpisodeSample] | Sequence[EpisodeSample] = (),
    ) -> int:
        """See `RLHFState.add_labels`."""
        return self.state.add_labels(labels, samples)

    def step(self, iteration: int) -> dict[str, Any]:
        """See `RLHFState.step`."""
        return self.state.step(iteration)

    def latest(self, have_version: int = 0) -> PublishedRewardModel | None:
        """See `RLHFState.latest`."""
        return self.state.latest(have_version)

    def version(self) -> int:
        """Latest published version."""
        return self.state.version

    def training_labels(self) -> list[RLHFLabel]:
        """See `RLHFState.training_labels`."""
        return self.state.training_labels()

    def stats(self) -> dict[str, Any]:
        """See `RLHFState.stats`."""
        return self.state.stats()

    def save(self, path: str) -> str | None:
        """See `RLHFState.save`; returns the directory or None."""
        out = self.state.save(path)
        return None if out is None else str(out)


def get_or_create_rm_hub(name: str, config: FeedbackConfig) -> ray.actor.ActorHandle:
    """Return the reward-model hub actor called `name`, creating it if needed.

    Safe to call from many processes at once (`get_if_exists=True`). The creator (the
    algorithm process, in `on_algorithm_init`) owns it, so it ends with the run.
    """
    return RewardModelHub.options(  # type: ignore[attr-defined]
        name=name, get_if_exists=True, lifetime=None, num_cpus=config.rm_num_cpus
    ).remote(config)


class RewardModelClient:
    """EnvRunner side of the reward-model hub: batched episode sends, non-blocking pulls.

    Args:
        hub: The hub actor handle.
        send_block: Episodes per fire-and-forget send.
        sync_every: Episodes between weight checks.
    """

    def __init__(self, hub: ray.actor.ActorHandle, *, send_block: int = 64, sync_every: int = 32
                 ) -> None:  # fmt: skip
        self.hub = hub
        self.send_block = send_block
        self.sync_every = sync_every
        self._buffer: list[EpisodeSample] = []
        self._spec: RewardModelSpec | None = None
        self._spec_sent = False
        self._pending: ray.ObjectRef | None = None
        self._since_check = sync_every  # check at the first chance
        self.sent = 0
        self.checks = 0

    def add(self, sample: EpisodeSample, spec: RewardModelSpec) -> None:
        """Buffer one episode for the hub; send when the buffer holds `send_block`."""
        self._spec = spec
        self._buffer.append(sample)
        if len(self._buffer) >= self.send_block:
            self.flush()

    def flush(self) -> None:
        """Send buffered episodes without waiting (fire-and-forget)."""
        if self._buffer:
            # The spec rides along until the first send, so the hub can build the model.
            self.hub.add_episodes.remote(self._buffer, None if self._spec_sent else self._spec)
            self._spec_sent = True
            self.sent += len(self._buffer)
            self._buffer = []

    def poll(self, have_version: int, episodes: int = 1) -> PublishedRewardModel | None:
        """Non-blocking: a newer published model if an earlier check has come back.

        Counts `episodes` finished episodes; every `sync_every` of them (and when no check
        is in flight) asks the hub for anything newer than `have_version`. Never waits.
        """
        self._since_check += episodes
        result: PublishedRewardModel | None = None
        if self._pending is not None:
            ready, _ = ray.wait([self._pending], timeout=0)
            if not ready:
                return None
            try:
                result = ray.get(self._pending)
            except ray.exceptions.RayError:
                logger.warning("reward-model hub did not answer a weight check", exc_info=True)
            self._pending = None
        if self._since_check >= self.sync_every:
            self._pending = self.hub.latest.remote(have_version)
            self._since_check = 0
            self.checks += 1
        return result


def save_hub_model(hub: ray.actor.ActorHandle, path: str | Path, timeout_s: float = 120.0
                   ) -> str | None:  # fmt: skip
    """Save the hub's latest published reward model to `path` (blocking; driver use)."""
    return ray.get(hub.save.remote(str(path)), timeout=timeout_s)
