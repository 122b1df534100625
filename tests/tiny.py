"""Small shared settings and helpers for Ray tests (tiny tasks that learn in a few iterations)."""

from __future__ import annotations

import copy
from typing import Any

# One question type, one object, tiny images: learnable in a few PPO iterations on a CPU.
# The action space is the whole 28-word answer vocabulary, so chance is about 1/28.
SHAPE_VQA_ENV: dict[str, Any] = {
    "task": "vqa",
    "reward_mode": "none",
    "question_types": ("shape",),
    "num_objects": 1,
    "image_size": 16,
}


def learner_batch(learner: Any, episodes: list[Any], pipeline: Any = None) -> dict[str, Any]:
    """The train batch a Learner's connector pipeline (or `pipeline`) makes of copies of
    `episodes`, for the default module."""
    pipeline = pipeline if pipeline is not None else learner._learner_connector
    batch = pipeline(
        rl_module=learner.module, batch={}, episodes=copy.deepcopy(episodes),
        shared_data={}, metrics=learner.metrics,
    )  # fmt: skip
    return batch["default_policy"]
