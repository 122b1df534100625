"""The ways to run an experiment; the Python API mirrors the CLI.

- `build_ppo_config(cfg) -> PPOConfig` (the one place the typed config becomes RLlib's),
- `train(cfg, debug=..., resume=...)`, `tune(cfg, resume=...)`, `evaluate(checkpoint, ...)`,
- `submit(config_path, address, ...)` (a Ray Job on a cluster).
"""

from __future__ import annotations

import importlib
from typing import Any

_LAZY: dict[str, str] = {
    "build_ppo_config": "mmrlhf.trainers.ppo",
    "train": "mmrlhf.trainers.train",
    "TrainResult": "mmrlhf.trainers.train",
    "tune": "mmrlhf.trainers.tune",
    "evaluate": "mmrlhf.trainers.evaluate",
    "submit": "mmrlhf.trainers.submit",
}

__all__ = list(_LAZY)


def __getattr__(name: str) -> Any:
    # Lazy: importing RLlib and Tune costs seconds; `mmrlhf.trainers.plot` should not pay it.
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'mmrlhf.trainers' has no attribute {name!r}")
