"""mmrlhf: multimodal (image + text) reinforcement learning from human and simulated feedback.

Importing the package registers `MyMultimodalEnv` with Gymnasium (`mmrlhf/MyMultimodalEnv-v0`)
and RLlib (`"MyMultimodalEnv"`). The other public names load on first use, so `import mmrlhf`
stays cheap for code that only needs the env:

    from mmrlhf import load_config, build_ppo_config, train
    cfg = load_config("configs/quickstart.yaml", ["feedback.rater=noisy"])
    algo = build_ppo_config(cfg).build_algo()   # or: train(cfg)
"""

from __future__ import annotations

import importlib
from typing import Any

from mmrlhf.envs import EnvConfig, MyMultimodalEnv

__version__ = "0.1.0"

_LAZY: dict[str, str] = {
    "MultimodalModel": "mmrlhf.models",
    "ModelConfig": "mmrlhf.models",
    "FeedbackCallback": "mmrlhf.callbacks",
    "FeedbackConfig": "mmrlhf.feedback",
    "ExperimentConfig": "mmrlhf.config",
    "load_config": "mmrlhf.config",
    "build_ppo_config": "mmrlhf.trainers",
    "train": "mmrlhf.trainers",
    "tune": "mmrlhf.trainers",
    "evaluate": "mmrlhf.trainers",
    "submit": "mmrlhf.trainers",
}

__all__ = ["EnvConfig", "MyMultimodalEnv", *_LAZY]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'mmrlhf' has no attribute {name!r}")
