"""A tiny, fast experiment for trainer tests."""

from __future__ import annotations

from pathlib import Path

import pytest

from mmrlhf.config import ExperimentConfig, load_config

TINY = [
    "env.image_size=32",
    "env.num_objects=2",
    "env.question_types=[color]",
    "model.embed_dim=32",
    "training.train_batch_size=64",
    "training.minibatch_size=32",
    "training.num_epochs=1",
    "training.num_envs_per_env_runner=4",
    "checkpoint.every=1",
]


@pytest.fixture
def tiny_cfg(tmp_path: Path) -> ExperimentConfig:
    return load_config(None, [*TINY, f"output_dir={tmp_path}", "name=tiny"])
