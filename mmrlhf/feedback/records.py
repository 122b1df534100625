"""What a rater sees (`EpisodeRecord`) and what it answers (`Label`).

Both are plain dataclasses with no Ray or RLlib types in them, so raters, budgets and the
hub can be tested with hand-made records. `EpisodeRecord.from_infos` is the one place that
reads the env's info contract (docs/architecture.md, "Environment contract").
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

logger = logging.getLogger(__name__)

# Keys of the final-step info that have their own field in EpisodeRecord; every other
# plain-valued key of the final info goes to `extras`.
CONTRACT_KEYS: frozenset[str] = frozenset(
    {"task", "oracle_action", "score", "prompt", "response", "ground_truth", "success"}
)
# Keys the final info must carry for a record to be built.
REQUIRED_FINAL_KEYS: tuple[str, ...] = ("score", "success")

PlainValue = str | int | float | bool | None


@dataclass(frozen=True)
class EpisodeRecord:
    """One finished episode, as a rater sees it.

    Attributes:
        episode_id: RLlib episode id (`SingleAgentEpisode.id_`).
        env_runner_id: `EnvRunner.worker_index` of the runner that sampled it: 0 for the local
            EnvRunner in the algorithm process, 1..N for remote ones, -1 when not sampled by
            an EnvRunner (tests, offline records).
        task: Task name from the info (`"vqa"`, `"caption"`, ...).
        prompt: Decoded prompt text shown to the agent.
        response: Decoded agent response.
        actions: Actions taken, one per step.
        ground_truth: The correct answer / caption / target as a string.
        score: Final task score in [0, 1] (the oracle's graded judgement).
        success: Whether the task was solved, per ground truth.
        step_scores: `info["score"]` after each step (same length as `actions` when the env
            follows the contract); used by myopic raters.
        image: First image observation, uint8 HxWx3, if the observation has an image.
        extras: Other plain-valued keys of the final info (`f1`, `turns`, ...).
    """

    episode_id: str
    env_runner_id: int
    task: str
    prompt: str
    response: str
    actions: list[int]
    ground_truth: str
    score: float
    success: bool
    step_scores: list[float] = field(default_factory=list)
    image: np.ndarray | None = None
    extras: dict[str, PlainValue] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not (math.isfinite(self.score) and 0.0 <= self.score <= 1.0):
            raise ValueError(f"EpisodeRecord.score must be in [0, 1], got {self.score!r}")

    @property
    def length(self) -> int:
        """Number of steps in the episode."""
        return len(self.actions)

    @classmethod
    def from_infos(
        cls,
        *,
        episode_id: str,
        step_infos: Sequence[Mapping[str, Any]],
        actions: Sequence[Any],
        env_runner_id: int = -1,
        image: np.ndarray | None = None,
    ) -> EpisodeRecord:
        """Build a record from the per-step info dicts of a finished episode.

        Args:
            episode_id: Episode id.
            step_infos: One info dict per step (not the reset info); the last one is the
                final-step info with `prompt`, `response`, `ground_truth`, `success`.
            actions: Actions taken, one per step.
            env_runner_id: See the class docstring.
            image: First image observation, or None.

        Raises:
            ValueError: If there are no steps or the final info lacks `score` / `success`
                (the env does not follow the info contract).
        """
        if not step_infos:
            raise ValueError(f"episode {episode_id}: no steps, nothing to rate")
        final = step_infos[-1]
        missing = [k for k in REQUIRED_FINAL_KEYS if k not in final]
        if missing:
            raise ValueError(
                f"episode {episode_id}: final info lacks {missing} (has {sorted(final)}); "
                "the env must follow the info contract in docs/architecture.md"
            )
        extras = {k: _plain(v) for k, v in final.items() if k not in CONTRACT_KEYS and _is_plain(v)}
        return cls(
            episode_id=str(episode_id),
            env_runner_id=int(env_runner_id),
            task=str(final.get("task", "")),
            prompt=str(final.get("prompt", "")),
            response=str(final.get("response", "")),
            actions=[int(a) for a in actions],
            ground_truth=str(final.get("ground_truth", "")),
            score=float(final["score"]),
            success=bool(final["success"]),
            # A step without a score counts as no progress, not as an error: only the final
            # score is part of the hard contract.
            step_scores=[float(info.get("score", 0.0)) for info in step_infos],
            image=image,
            extras=extras,
        )


@dataclass(frozen=True)
class Label:
    """One piece of feedback on one episode.

    Attributes:
        reward: Feedback reward in [0, 1] (1 = best).
        kind: What kind of signal it came from: `"score"`, `"binary"`, `"rating"`, `"click"`,
            `"dwell"` or `"panel"`.
        raw: The rater's raw answer before mapping to [0, 1] (stars, seconds, 0/1, ...).
        rater: Name of the rater that produced it.
    """

    reward: float
    kind: str
    raw: float
    rater: str

    def __post_init__(self) -> None:
        if not (math.isfinite(self.reward) and 0.0 <= self.reward <= 1.0):
            raise ValueError(f"Label.reward must be in [0, 1], got {self.reward!r}")


def _is_plain(value: Any) -> bool:
    return value is None or isinstance(value, str | int | float | bool | np.generic)


def _plain(value: Any) -> PlainValue:
    # numpy scalars (np.float32 from the env) become Python scalars so records pickle small
    # and serialise to JSON.
    return value.item() if isinstance(value, np.generic) else value
