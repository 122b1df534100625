"""Small shared settings for Ray tests that must learn something in a few iterations."""

from __future__ import annotations

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
