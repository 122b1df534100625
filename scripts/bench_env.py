"""Env throughput: steps/s per task on one core, with Minigrid DoorKey as a reference.

    python scripts/bench_env.py --out bench_env.json [--seconds 3] [--image-size 64]

Counts `step` calls including the `reset` that starts every episode (one-step tasks reset on
every step). Minigrid (`pip install -e ".[bench]"`) runs `MiniGrid-DoorKey-5x5-v0` with
`RGBImgPartialObsWrapper`, random actions, the same way. Expected on this 2-core machine: vqa
well above 20,000 steps/s, Minigrid about 1,500.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import time
from collections.abc import Callable
from typing import Any

import numpy as np

os.environ.setdefault("OMP_NUM_THREADS", "1")

TASKS = ("vqa", "caption", "retrieval", "dialogue")


def time_env(env: Any, seconds: float, seed: int = 0) -> dict[str, float]:
    """Random actions for `seconds`; returns steps/s and episodes/s (best of 3 rounds)."""
    rng = np.random.default_rng(seed)
    n_actions = int(env.action_space.n)
    best: dict[str, float] = {"steps_per_s": 0.0, "episodes_per_s": 0.0}
    env.reset(seed=seed)
    for _ in range(3):
        steps = episodes = 0
        actions = rng.integers(n_actions, size=1_000_000)
        start = time.perf_counter()
        deadline = start + seconds / 3
        env.reset()
        while True:
            _, _, terminated, truncated, _ = env.step(int(actions[steps % len(actions)]))
            steps += 1
            if terminated or truncated:
                episodes += 1
                env.reset()
                if time.perf_counter() > deadline:
                    break
        elapsed = time.perf_counter() - start
        if steps / elapsed > best["steps_per_s"]:
            best = {"steps_per_s": steps / elapsed, "episodes_per_s": episodes / elapsed}
    return best


def minigrid_factory() -> Callable[[], Any] | None:
    try:
        import gymnasium as gym
        import minigrid  # noqa: F401  (registers MiniGrid envs)
        from minigrid.wrappers import RGBImgPartialObsWrapper
    except ImportError:
        return None
    return lambda: RGBImgPartialObsWrapper(gym.make("MiniGrid-DoorKey-5x5-v0").unwrapped)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=3.0, help="time per env")
    parser.add_argument("--image-size", type=int, default=64)
    parser.add_argument("--out", default=None, help="write results as JSON here")
    args = parser.parse_args()

    with contextlib.suppress(AttributeError, OSError):  # not every OS can pin
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})  # one core
    from mmrlhf.envs import MyMultimodalEnv

    rows: dict[str, dict[str, float]] = {}
    for task in TASKS:
        rows[task] = time_env(MyMultimodalEnv(task=task, image_size=args.image_size), args.seconds)
    make_minigrid = minigrid_factory()
    if make_minigrid is not None:
        rows["minigrid_doorkey_5x5_rgb"] = time_env(make_minigrid(), args.seconds)
    ref = rows.get("minigrid_doorkey_5x5_rgb", {}).get("steps_per_s")

    print(f"{'env':28s} {'steps/s':>10s} {'episodes/s':>11s} {'x minigrid':>11s}")
    for name, r in rows.items():
        ratio = f"{r['steps_per_s'] / ref:.1f}" if ref else "-"
        print(f"{name:28s} {r['steps_per_s']:10,.0f} {r['episodes_per_s']:11,.0f} {ratio:>11s}")
    if args.out:
        meta = {"image_size": args.image_size, "python": platform.python_version(), "cores": 1}
        with open(args.out, "w") as fh:
            json.dump({"meta": meta, "results": rows}, fh, indent=2)


if __name__ == "__main__":
    main()
