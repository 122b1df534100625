"""Helpers shared by the feedback tests."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from mmrlhf.feedback.records import EpisodeRecord

RecordFactory = Callable[..., EpisodeRecord]


def make_record(
    score: float = 1.0,
    *,
    step_scores: list[float] | None = None,
    episode_id: str = "ep",
    env_runner_id: int = -1,
) -> EpisodeRecord:
    """A minimal record with the given final score."""
    steps = step_scores if step_scores is not None else [score]
    return EpisodeRecord(
        episode_id=episode_id,
        env_runner_id=env_runner_id,
        task="vqa",
        prompt="what shape is the red object ?",
        response="circle",
        actions=list(range(len(steps))),
        ground_truth="circle",
        score=score,
        success=score >= 1.0,
        step_scores=steps,
    )


@pytest.fixture
def record() -> RecordFactory:
    """Factory for EpisodeRecords: `record(score, step_scores=...)`."""
    return make_record
