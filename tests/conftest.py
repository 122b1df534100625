"""Shared fixtures. Ray tests use one session-scoped cluster (2 CPUs, no dashboard)."""

from __future__ import annotations

import gc
import os
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from mmrlhf.config import ExperimentConfig

# Keep torch from oversubscribing the 2 cores the Ray workers also use.
os.environ.setdefault("OMP_NUM_THREADS", "1")


@pytest.fixture(scope="session")
def ray_session() -> Iterator[None]:
    """Start Ray once for the whole test session and shut it down at the end."""
    import ray

    started = False
    if not ray.is_initialized():
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
        started = True
    yield
    if started:
        ray.shutdown()


@pytest.fixture(autouse=True)
def collect_frozen_objects() -> Iterator[None]:
    """Tests build algorithms in this process, and each build `gc.freeze()`s what is alive
    (`training.gc_freeze`); unfreezing after each test lets the collector free them."""
    yield
    gc.unfreeze()


# A tiny, fast experiment for trainer and RLHF tests.
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


# Overrides (on top of TINY) for RLHF fed by people: feedback only, the label store in the
# run directory, the labelling page on a free port, every hub episode queued for people.
HUMAN_RLHF = {
    "env.reward_mode": "none",
    "feedback.enabled": True,
    "feedback.source": "human",
    "feedback.human_app_port": 0,
    "feedback.human_enqueue_fraction": 1.0,
}


@pytest.fixture
def tiny_cfg(tmp_path: Path) -> ExperimentConfig:
    from mmrlhf.config import load_config

    return load_config(None, [*TINY, f"output_dir={tmp_path}", "name=tiny"])
