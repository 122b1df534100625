"""The dataset task: the user's JSONL + images, and every way the file can be wrong."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from mmrlhf.envs import MyMultimodalEnv
from mmrlhf.envs.sheet import oracle_policy
from mmrlhf.envs.tasks.dataset import DatasetError

from .conftest import write_dataset


def test_loads_resizes_and_answers(vqa_dataset: dict[str, str]) -> None:
    env = MyMultimodalEnv(task="dataset", image_size=32, **vqa_dataset)
    assert env.action_names() == ["blue", "green", "red"]
    for seed in range(10):
        obs, info = env.reset(seed=seed)
        assert obs["image"].shape == (32, 32, 3)
        _, reward, done, _, info = env.step(oracle_policy(obs, info))
        assert done and reward == 1.0 and info["success"]
        color = info["ground_truth"]
        channel = {"red": 0, "blue": 2}[color]
        assert obs["image"][..., channel].min() == 255  # the right picture was loaded
    assert "<sep>" in info["prompt"]  # choices are shown in the text


def test_splits_filter_rows(vqa_dataset: dict[str, str]) -> None:
    train = MyMultimodalEnv(task="dataset", split="train", **vqa_dataset)
    test = MyMultimodalEnv(task="dataset", split="test", **vqa_dataset)
    assert {r.line for r in train.task.rows} == {1, 2}
    assert {r.line for r in test.task.rows} == {3, 4}
    assert train.action_space == test.action_space


def test_images_are_cached(vqa_dataset: dict[str, str]) -> None:
    env = MyMultimodalEnv(task="dataset", image_cache_size=1, **vqa_dataset)
    for seed in range(20):
        env.reset(seed=seed)
    assert len(env.task._images) == 1


def _rows(tmp_path: Path, **change: object) -> list[dict[str, object]]:
    Image.fromarray(np.zeros((4, 4, 3), dtype=np.uint8)).save(tmp_path / "a.png")
    good = {"image": "a.png", "question": "q?", "answer": "x"}
    return [good, {**good, **change}]


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"image": "missing.png"}, r"data.jsonl:2: image file .*missing.png.* not found"),
        ({"answer": ""}, r"data.jsonl:2: 'answer' must be a non-empty string"),
        ({"choices": ["y", "z"]}, r"data.jsonl:2: answer 'x' is not among choices"),
        ({"split": "dev"}, r"data.jsonl:2: 'split' must be 'train' or 'test'"),
        ({"colour": "red"}, r"data.jsonl:2: unknown keys \['colour'\]"),
    ],
)
def test_bad_rows_name_file_and_line(tmp_path: Path, change: dict, message: str) -> None:
    path = write_dataset(tmp_path, _rows(tmp_path, **change))
    with pytest.raises(DatasetError, match=message):
        MyMultimodalEnv(task="dataset", dataset_path=str(path))


def test_bad_json_names_the_line(tmp_path: Path) -> None:
    good = _rows(tmp_path)[0]
    path = tmp_path / "data.jsonl"
    path.write_text(json.dumps(good) + "\n{oops\n")
    with pytest.raises(DatasetError, match=r"data.jsonl:2: not valid JSON"):
        MyMultimodalEnv(task="dataset", dataset_path=str(path))


def test_undecodable_image_names_file_and_line(tmp_path: Path) -> None:
    (tmp_path / "bad.png").write_text("not an image")
    path = write_dataset(tmp_path, [{"image": "bad.png", "question": "q", "answer": "x"}])
    env = MyMultimodalEnv(task="dataset", dataset_path=str(path))
    with pytest.raises(DatasetError, match=r"data.jsonl:1: cannot read image"):
        env.reset(seed=0)


def test_missing_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="nowhere.jsonl"):
        MyMultimodalEnv(task="dataset", dataset_path=str(tmp_path / "nowhere.jsonl"))
