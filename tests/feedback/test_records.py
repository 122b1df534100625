"""EpisodeRecord / Label: built from the env info contract, validated."""

from __future__ import annotations

import numpy as np
import pytest

from mmrlhf.feedback.records import EpisodeRecord, Label


def final_info(**extra: object) -> dict[str, object]:
    return {
        "task": "caption",
        "oracle_action": 3,
        "score": 0.75,
        "prompt": "describe",
        "response": "red circle",
        "ground_truth": "big red circle",
        "success": False,
        **extra,
    }


def test_from_infos_reads_the_contract() -> None:
    step = {"task": "caption", "oracle_action": 1, "score": 0.5}
    image = np.zeros((4, 4, 3), np.uint8)
    rec = EpisodeRecord.from_infos(
        episode_id="e1",
        step_infos=[step, final_info(f1=np.float32(0.75), exact_match=False, blob=[1, 2])],
        actions=[np.int64(2), 5],
        env_runner_id=3,
        image=image,
    )
    assert rec.task == "caption" and rec.prompt == "describe" and rec.response == "red circle"
    assert rec.ground_truth == "big red circle" and rec.score == 0.75 and rec.success is False
    assert rec.actions == [2, 5] and rec.length == 2 and rec.env_runner_id == 3
    assert rec.step_scores == [0.5, 0.75]
    assert rec.image is image
    # plain extras only, numpy scalars made Python scalars; contract keys not duplicated
    assert rec.extras == {"f1": 0.75, "exact_match": False}
    assert type(rec.extras["f1"]) is float


def test_from_infos_missing_contract_keys() -> None:
    with pytest.raises(ValueError, match=r"lacks \['success'\]"):
        EpisodeRecord.from_infos(episode_id="e", step_infos=[{"score": 1.0}], actions=[0])
    with pytest.raises(ValueError, match="no steps"):
        EpisodeRecord.from_infos(episode_id="e", step_infos=[], actions=[])


def test_score_and_reward_must_be_in_unit_interval() -> None:
    with pytest.raises(ValueError, match="score"):
        EpisodeRecord.from_infos(episode_id="e", step_infos=[final_info(score=1.5)], actions=[0])
    with pytest.raises(ValueError, match="reward"):
        Label(reward=-0.1, kind="score", raw=0.0, rater="x")
