"""Read an RLlib `SingleAgentEpisode` into an `EpisodeRecord` (the only RLlib-aware reader)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from ray.rllib.env.single_agent_episode import SingleAgentEpisode

from mmrlhf.feedback.records import EpisodeRecord


def first_image(episode: SingleAgentEpisode) -> np.ndarray | None:
    """The episode's first observation's `image` (uint8 HxWx3), or None if it has none."""
    obs = episode.get_observations(0)
    if isinstance(obs, dict) and "image" in obs:
        return np.asarray(obs["image"], dtype=np.uint8)
    return None


def step_infos(episode: SingleAgentEpisode) -> list[dict[str, Any]]:
    """Info dicts after each step of this chunk (drops the chunk's initial info)."""
    # A chunk holds len(actions) + 1 infos: the first is the reset info (or, for a continued
    # chunk, the last info of the previous chunk), then one per step.
    return list(episode.get_infos())[1:]


def record_from_episode(
    episode: SingleAgentEpisode,
    *,
    prev_chunks: Sequence[SingleAgentEpisode] = (),
    env_runner_id: int = -1,
) -> EpisodeRecord:
    """Build the record of a finished episode from its chunks.

    Args:
        episode: The final chunk (the `episode` passed to `on_episode_end`).
        prev_chunks: Chunks already returned by earlier `sample()` calls, oldest first.
        env_runner_id: The EnvRunner's worker_index (-1 outside an EnvRunner).
    """
    chunks = [*prev_chunks, episode]
    infos = [info for chunk in chunks for info in step_infos(chunk)]
    actions = [a for chunk in chunks for a in chunk.get_actions()]
    return EpisodeRecord.from_infos(
        episode_id=episode.id_,
        step_infos=infos,
        actions=actions,
        env_runner_id=env_runner_id,
        image=first_image(chunks[0]),
    )
