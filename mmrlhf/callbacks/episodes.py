"""Read an RLlib `SingleAgentEpisode` into an `EpisodeRecord`, and write its rewards back (the
only module that touches episode buffers)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
from ray.rllib.core.columns import Columns
from ray.rllib.env.single_agent_episode import SingleAgentEpisode

from mmrlhf.feedback.records import EpisodeRecord


def _items(buffer: Any, get_all: Callable[[], Any]) -> list[Any]:
    """All items of an episode buffer after its lookback, oldest first.

    While an episode is being sampled its buffers hold plain lists; slicing them directly is
    several times cheaper than `SingleAgentEpisode.get_*()`, which the feedback callback
    would otherwise pay for every episode. Finalized (numpy) buffers go through RLlib.
    """
    data = getattr(buffer, "data", None)
    if isinstance(data, list) and not getattr(buffer, "finalized", True):
        return data[int(getattr(buffer, "lookback", 0)) :]
    return list(get_all())


def episode_infos(episode: SingleAgentEpisode) -> list[dict[str, Any]]:
    """Every info dict of this chunk: the reset info (or the previous chunk's last), then one
    per step."""
    return _items(episode.infos, episode.get_infos)


def episode_actions(episode: SingleAgentEpisode) -> list[Any]:
    """The actions of this chunk, one per step."""
    return _items(episode.actions, episode.get_actions)


def episode_rewards(episode: SingleAgentEpisode) -> list[float]:
    """The rewards of this chunk, one per step."""
    return _items(episode.rewards, episode.get_rewards)


def episode_action_logps(episode: SingleAgentEpisode) -> list[float]:
    """The sampling policy's log-probability of each action of this chunk (empty when the
    module did not output them, e.g. random actions)."""
    buffer = episode.extra_model_outputs.get(Columns.ACTION_LOGP)
    if buffer is None:
        return []
    items = _items(buffer, lambda: episode.get_extra_model_outputs(Columns.ACTION_LOGP))
    return [float(x) for x in items]


def floor_share(chunks: Sequence[SingleAgentEpisode], floor_logp: float | None) -> float | None:
    """How likely it is that a policy floor's uniform part drew every action of the episode.

    A policy with a floor samples from the mixture (1 - f) softmax(z) + f / N, so the posterior
    that an action a of probability p(a) came from the uniform part is (f / N) / p(a); over the
    steps, the product. Episodes kept with this probability are a sample of uniform answers to
    their scenes, which is what an unbiased look at a rarely given answer needs
    (`feedback.queries.novel_queries`).

    Args:
        chunks: The episode's chunks, oldest first.
        floor_logp: log(f / N) (`MultimodalModel.floor_logp`); None = no floor.

    Returns:
        The share in [0, 1], or None without a floor or without action log-probabilities.
    """
    if floor_logp is None:
        return None
    logps = [lp for chunk in chunks for lp in episode_action_logps(chunk)]
    actions = sum(len(episode_actions(chunk)) for chunk in chunks)
    if not logps or len(logps) != actions:
        return None
    return float(min(1.0, np.exp(sum(floor_logp - lp for lp in logps))))


def set_episode_rewards(episode: SingleAgentEpisode, rewards: Sequence[float]) -> None:
    """Overwrite the rewards of this chunk (one per step, lookback untouched).

    An unfinished chunk's rewards are a plain list, written in place; that is what
    `SingleAgentEpisode.set_rewards` does too, after slice bookkeeping that costs about as
    much as the rest of the feedback callback. Finalized (numpy) buffers go through RLlib.

    Raises:
        ValueError: If `rewards` has not exactly one value per step of the chunk.
    """
    buffer = episode.rewards
    data = getattr(buffer, "data", None)
    if isinstance(data, list) and not getattr(buffer, "finalized", True):
        start = int(getattr(buffer, "lookback", 0))
        if len(data) - start != len(rewards):
            raise ValueError(
                f"episode {episode.id_} has {len(data) - start} rewards, got {len(rewards)}"
            )
        data[start:] = list(rewards)
        return
    values = np.asarray(rewards, dtype=np.float32)
    episode.set_rewards(new_data=values, at_indices=slice(0, len(rewards)))


def final_info(episode: SingleAgentEpisode) -> dict[str, Any]:
    """The info after the chunk's last step (empty if there is none)."""
    infos = episode_infos(episode)
    return (infos[-1] or {}) if infos else {}


def first_image(episode: SingleAgentEpisode) -> np.ndarray | None:
    """The episode's first observation's `image` (uint8 HxWx3), or None if it has none."""
    observations = _items(episode.observations, episode.get_observations)
    obs = observations[0] if observations else None
    if isinstance(obs, dict) and "image" in obs:
        return np.asarray(obs["image"], dtype=np.uint8)
    return None


def step_infos(episode: SingleAgentEpisode) -> list[dict[str, Any]]:
    """Info dicts after each step of this chunk (drops the chunk's initial info)."""
    # A chunk holds len(actions) + 1 infos: the first is the reset info (or, for a continued
    # chunk, the last info of the previous chunk), then one per step.
    return episode_infos(episode)[1:]


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
    actions = [a for chunk in chunks for a in episode_actions(chunk)]
    return EpisodeRecord.from_infos(
        episode_id=episode.id_,
        step_infos=infos,
        actions=actions,
        env_runner_id=env_runner_id,
        image=first_image(chunks[0]),
    )
