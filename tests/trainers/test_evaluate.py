"""`evaluate` reports each task's metrics from a saved policy module (no Ray needed)."""

from __future__ import annotations

from pathlib import Path

import pytest

from mmrlhf.config import load_config
from mmrlhf.envs import MyMultimodalEnv
from mmrlhf.models import model_spec
from mmrlhf.trainers.evaluate import evaluate, markdown_table


def _saved_module(cfg, path: Path) -> Path:  # type: ignore[no-untyped-def]
    env = MyMultimodalEnv(cfg.env)
    spec = model_spec(cfg.model)
    spec.observation_space, spec.action_space = env.observation_space, env.action_space
    spec.build().save_to_path(str(path))
    return path


@pytest.mark.parametrize(
    ("task", "keys"),
    [
        ("retrieval", ["recall@1", "recall@2", "recall@3"]),
        ("caption", ["attribute_f1", "exact_match"]),
        ("dialogue", ["mean_turns", "success"]),
        ("vqa", ["accuracy"]),
    ],
)
def test_task_metrics(tmp_path: Path, task: str, keys: list[str]) -> None:
    cfg = load_config(None, [f"env.task={task}", "env.image_size=32", "model.embed_dim=16",
                             "env.num_objects=1"])  # fmt: skip
    module_dir = _saved_module(cfg, tmp_path / "module")
    metrics = evaluate(module_dir, cfg=cfg, episodes=30)
    for key in keys:
        assert 0.0 <= metrics[key] <= (cfg.env.max_turns if key == "mean_turns" else 1.0)
    if task == "retrieval":
        assert metrics["recall@1"] <= metrics["recall@2"] <= metrics["recall@3"]
        assert metrics["recall@1"] == metrics["success"]
    assert "| score |" in markdown_table(metrics)


def test_missing_checkpoint_is_named(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="nowhere"):
        evaluate(tmp_path / "nowhere", cfg=load_config(None))


def test_vqa_accuracy_per_question_type(tmp_path: Path) -> None:
    cfg = load_config(None, ["env.task=vqa", "env.image_size=32", "model.embed_dim=16",
                             "env.question_types=[count,exists,position]"])  # fmt: skip
    module_dir = _saved_module(cfg, tmp_path / "module")
    metrics = evaluate(module_dir, cfg=cfg, episodes=60)
    types = ["count", "exists", "position"]
    per_type = sorted(k for k in metrics if k.startswith("accuracy/"))
    assert per_type == [f"accuracy/{t}" for t in types]
    counts = [metrics[f"episodes/{t}"] for t in types]
    assert sum(counts) == 60 and min(counts) > 0
    overall = sum(metrics[f"accuracy/{t}"] * metrics[f"episodes/{t}"] for t in types) / 60
    assert overall == pytest.approx(metrics["accuracy"])


def test_vqa_step_info_names_the_question_type() -> None:
    env = MyMultimodalEnv(task="vqa", image_size=32, question_types=["exists"])
    env.reset(seed=0)
    info = env.step(0)[-1]
    assert info["question_type"] == "exists"
    assert info["prompt"].startswith("is there")
