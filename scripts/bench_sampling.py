"""Sampling throughput of one EnvRunner with feedback on and off, measured in the same run.

    python scripts/bench_sampling.py --out bench_sampling.json [--task vqa] [--rounds 5]

Builds the quickstart experiment's EnvRunner in this process (the real env, the default
MultimodalModel, the real connectors) twice: once with `FeedbackCallback` rating every episode
with the noisy rater, once with feedback off (the callback then only logs accuracy). It then
alternates `sample()` calls between the two for `--rounds` rounds, so drift on a shared machine
hits both equally, and reports env steps/s for each and the overhead of feedback in percent
(goal: at most 5%).
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("OMP_NUM_THREADS", "1")

ROOT = Path(__file__).resolve().parents[1]


def make_runner(feedback: bool, task: str, envs: int) -> Any:
    from ray.rllib.env.single_agent_env_runner import SingleAgentEnvRunner

    from mmrlhf.config import load_config
    from mmrlhf.trainers.ppo import build_ppo_config

    cfg = load_config(
        ROOT / "configs" / "quickstart.yaml",
        [
            f"env.task={task}",
            f"feedback.enabled={str(feedback).lower()}",
            "feedback.rater=noisy",
            "feedback.sigma=0.5",
            "feedback.epsilon=0.1",
            "training.num_env_runners=0",
            f"training.num_envs_per_env_runner={envs}",
        ],
    )
    config = build_ppo_config(cfg)
    return SingleAgentEnvRunner(config=config)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--task", default="vqa")
    parser.add_argument("--envs", type=int, default=8, help="vectorised envs per runner")
    parser.add_argument("--steps", type=int, default=2048, help="env steps per sample() call")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--out", default=None)
    args = parser.parse_args()

    import torch

    torch.set_num_threads(1)
    runners = {"off": make_runner(False, args.task, args.envs),
               "on": make_runner(True, args.task, args.envs)}  # fmt: skip
    elapsed = {"off": 0.0, "on": 0.0}
    steps = {"off": 0, "on": 0}
    for runner in runners.values():  # warm-up: first calls build caches
        runner.sample(num_timesteps=256, random_actions=False)
    for _ in range(args.rounds):
        for name, runner in runners.items():
            start = time.perf_counter()
            episodes = runner.sample(num_timesteps=args.steps, random_actions=False)
            elapsed[name] += time.perf_counter() - start
            steps[name] += sum(len(e) for e in episodes)
    rate = {k: steps[k] / elapsed[k] for k in runners}
    overhead = 100.0 * (rate["off"] / rate["on"] - 1.0)
    print(f"feedback off: {rate['off']:8,.0f} env steps/s")
    print(f"feedback on:  {rate['on']:8,.0f} env steps/s   overhead {overhead:+.1f}%")
    if args.out:
        Path(args.out).write_text(json.dumps({
            "task": args.task, "envs_per_runner": args.envs, "rounds": args.rounds,
            "steps_per_s": rate, "overhead_percent": overhead,
        }, indent=2))  # fmt: skip
    for runner in runners.values():
        runner.stop()


if __name__ == "__main__":
    main()
