"""EnvConfig validation: unknown keys and bad values name the field and what is allowed."""

from __future__ import annotations

import pytest

from mmrlhf.envs import EnvConfig, MyMultimodalEnv


def test_unknown_key_is_named_with_suggestions() -> None:
    with pytest.raises(ValueError, match=r"image_sise: unknown key; did you mean image_size"):
        MyMultimodalEnv({"task": "vqa", "image_sise": 32})


def test_unknown_task_lists_the_allowed_ones() -> None:
    with pytest.raises(ValueError, match=r"allowed: caption, dataset, dialogue, retrieval, vqa"):
        EnvConfig.from_mapping({"task": "vqaa"})


@pytest.mark.parametrize(
    ("field", "value", "fragment"),
    [
        ("image_size", 8, "image_size: Input should be greater than or equal to 16"),
        ("split", "val", "split: Input should be 'train' or 'test'"),
        ("reward_mode", "dense", "reward_mode: Input should be 'env' or 'none'"),
        ("question_types", ["colour"], "question_types.0: Input should be 'color'"),
        ("num_objects", 9, "num_objects: Input should be less than or equal to 6"),
        ("question_types", [], "question_types: needs at least one of"),
    ],
)
def test_bad_values_name_field_and_allowed(field: str, value: object, fragment: str) -> None:
    with pytest.raises(ValueError) as err:
        EnvConfig.from_mapping({field: value})
    assert fragment in str(err.value)


def test_task_level_constraints() -> None:
    with pytest.raises(ValueError, match="max_caption_len=5 is shorter than the 7 words"):
        MyMultimodalEnv(task="caption", num_objects=2, max_caption_len=5)
    with pytest.raises(ValueError, match="needs max_text_len >= 37"):
        MyMultimodalEnv(task="retrieval", num_candidates=9, max_text_len=32)
    with pytest.raises(ValueError, match="needs dataset_path"):
        MyMultimodalEnv(task="dataset")


def test_rllib_style_env_context_is_accepted() -> None:
    from ray.rllib.env.env_context import EnvContext

    env = MyMultimodalEnv(EnvContext({"task": "retrieval", "num_candidates": 6}, worker_index=1))
    assert env.action_space.n == 6
