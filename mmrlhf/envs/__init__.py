"""Environments: `MyMultimodalEnv`, its config, tasks, scenes and tokenizers.

Importing this package registers the env with Gymnasium (`mmrlhf/MyMultimodalEnv-v0`) and with
RLlib's env registry (`"MyMultimodalEnv"`).
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym

from mmrlhf.envs.config import EnvConfig
from mmrlhf.envs.env import MyMultimodalEnv
from mmrlhf.envs.tasks import Task, get_task, register_task, task_names

GYM_ID = "mmrlhf/MyMultimodalEnv-v0"
RLLIB_NAME = "MyMultimodalEnv"


def make_env(env_config: Any = None) -> MyMultimodalEnv:
    """Env creator for RLlib: `env_config` is the `EnvConfig` fields as a mapping."""
    return MyMultimodalEnv(dict(env_config or {}))


def register() -> None:
    """Register the env with Gymnasium and RLlib (idempotent)."""
    if GYM_ID not in gym.registry:
        gym.register(id=GYM_ID, entry_point="mmrlhf.envs.env:MyMultimodalEnv")
    try:
        from ray.tune.registry import register_env
    except ImportError:  # Ray is a dependency, but the env itself does not need it.
        return
    register_env(RLLIB_NAME, make_env)


register()

__all__ = [
    "GYM_ID",
    "RLLIB_NAME",
    "EnvConfig",
    "MyMultimodalEnv",
    "Task",
    "get_task",
    "make_env",
    "register",
    "register_task",
    "task_names",
]
