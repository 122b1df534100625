"""Contact sheets: rendered final frames of several episodes tiled into one PNG."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from mmrlhf.envs.env import MyMultimodalEnv

Policy = Callable[[dict[str, np.ndarray], dict[str, Any]], int]


def random_policy(env: MyMultimodalEnv) -> Policy:
    """Uniform random actions from the env's own action space (seeded by `env.reset`)."""
    return lambda obs, info: int(env.action_space.sample())


def oracle_policy(obs: dict[str, np.ndarray], info: dict[str, Any]) -> int:
    """The perfect policy: reads `info["oracle_action"]` (ground truth lives in `info`)."""
    return int(info["oracle_action"])


def rollout_frames(
    env: MyMultimodalEnv, policy: Policy, episodes: int, seed: int = 0
) -> tuple[list[np.ndarray], list[float]]:
    """Run `episodes` episodes and return each one's final rendered frame and score."""
    frames, scores = [], []
    env.action_space.seed(seed)
    for ep in range(episodes):
        obs, info = env.reset(seed=seed + ep)
        done = False
        while not done:
            obs, _, terminated, truncated, info = env.step(policy(obs, info))
            done = terminated or truncated
        frame = env.render()
        if frame is None:
            raise ValueError("contact sheets need an env built with render_mode='rgb_array'")
        frames.append(frame)
        scores.append(float(info["score"]))
    return frames, scores


def tile(frames: list[np.ndarray], columns: int = 4) -> np.ndarray:
    """Tile frames of possibly different sizes on a white grid."""
    h = max(f.shape[0] for f in frames)
    w = max(f.shape[1] for f in frames)
    rows = -(-len(frames) // columns)
    sheet = np.full((rows * h, min(columns, len(frames)) * w, 3), 255, dtype=np.uint8)
    for i, f in enumerate(frames):
        r, c = divmod(i, columns)
        sheet[r * h : r * h + f.shape[0], c * w : c * w + f.shape[1]] = f
    return sheet


def write_contact_sheet(
    env: MyMultimodalEnv, out: str | Path, episodes: int = 8, policy: str = "random", seed: int = 0
) -> dict[str, Any]:
    """Roll out `episodes` episodes, write their final frames as one PNG, return a summary."""
    from PIL import Image

    if policy not in ("random", "oracle"):
        raise ValueError(f"policy {policy!r} unknown; allowed: random, oracle")
    act = oracle_policy if policy == "oracle" else random_policy(env)
    frames, scores = rollout_frames(env, act, episodes, seed)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(tile(frames)).save(out)
    return {
        "task": env.cfg.task,
        "episodes": episodes,
        "policy": policy,
        "mean_score": float(np.mean(scores)),
        "sheet": str(out),
    }
