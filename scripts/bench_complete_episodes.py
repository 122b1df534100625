"""Complete-episode sampling with and without one-step passes, alternating in one process.

    python scripts/bench_complete_episodes.py --config bench_vs_sb3.yaml --rounds 20 \
        --out benchmarks/bench_complete_episodes.json

Builds three `CompleteEpisodesEnvRunner`s of the config in this process (sampling in the
driver, oracle feedback, one torch thread): `rllib_loop` runs RLlib's own sampling loop for
the whole call (every other pass of that loop only steps envs that reset on one-step tasks)
and RLlib's `get_metrics`, which logs every episode (the others log only those the metric
windows keep);
`one_step_rllib_passes` asks RLlib's loop for one episode per env at a time (the runner
before `_one_step_pass`: each pass still runs the connectors on the finished episodes and
creates episodes the next reset discards); `one_step_pass` is the runner as shipped. Each
round times one `sample()` call of each, then its `get_metrics()`, in rotating order, and
counts the module's `forward_exploration` calls. Paired ratios are against `one_step_pass`.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import statistics
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("OMP_NUM_THREADS", "1")

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    import torch
    from ray.rllib.env.single_agent_env_runner import SingleAgentEnvRunner

    from mmrlhf.callbacks.env_runner import CompleteEpisodesEnvRunner
    from mmrlhf.config import load_config
    from mmrlhf.trainers.ppo import build_ppo_config

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--config", default="bench_vs_sb3.yaml", help="a file in configs/")
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--out", default=None)
    args = parser.parse_args()
    torch.set_num_threads(1)

    class RLlibLoop(CompleteEpisodesEnvRunner):
        def _sample(self, **kwargs: Any) -> Any:
            return SingleAgentEnvRunner._sample(self, **kwargs)

        def get_metrics(self) -> Any:
            return SingleAgentEnvRunner.get_metrics(self)

    class RLlibPasses(CompleteEpisodesEnvRunner):
        def _one_step_pass(self, *, explore: bool, random_actions: bool = False) -> Any:
            return SingleAgentEnvRunner._sample(
                self, num_episodes=self.num_envs, explore=explore, random_actions=random_actions
            )

    overrides = ["training.num_env_runners=0", "feedback.enabled=true", "feedback.rater=oracle"]
    cfg = load_config(ROOT / "configs" / args.config, overrides)
    runners = {
        "rllib_loop": RLlibLoop,
        "one_step_rllib_passes": RLlibPasses,
        "one_step_pass": CompleteEpisodesEnvRunner,
    }
    built = {name: cls(config=build_ppo_config(cfg)) for name, cls in runners.items()}
    calls = dict.fromkeys(built, 0)
    for name, runner in built.items():
        runner.sample()  # warm-up; learns the episode length
        runner.get_metrics()
        forward = runner.module.forward_exploration

        def counted(*a: Any, _forward: Any = forward, _name: str = name, **k: Any) -> Any:
            calls[_name] += 1
            return _forward(*a, **k)

        runner.module.forward_exploration = counted
    seconds: dict[str, list[float]] = {name: [] for name in built}
    metrics_seconds: dict[str, list[float]] = {name: [] for name in built}
    steps = dict.fromkeys(built, 0)
    names = list(built)
    for i in range(args.rounds):
        for name in names[i % len(names):] + names[: i % len(names)]:
            gc.collect()
            start = time.perf_counter()
            episodes = built[name].sample()
            seconds[name].append(time.perf_counter() - start)
            steps[name] += sum(len(e) for e in episodes)
            start = time.perf_counter()
            built[name].get_metrics()
            metrics_seconds[name].append(time.perf_counter() - start)
    for runner in built.values():
        runner.stop()
    shipped = seconds["one_step_pass"]
    ratios = {
        name: statistics.median(a / b for a, b in zip(seconds[name], shipped, strict=True))
        for name in built if name != "one_step_pass"
    }  # fmt: skip
    result = {
        "config": args.config,
        "rounds": args.rounds,
        "runners": {
            name: {
                "median_s_per_call": statistics.median(seconds[name]),
                "median_s_per_get_metrics": statistics.median(metrics_seconds[name]),
                "env_steps_per_call": steps[name] / args.rounds,
                "forward_calls_per_call": calls[name] / args.rounds,
            }
            for name in built
        },
        "median_paired_time_ratio_to_one_step_pass": ratios,
    }
    print(json.dumps(result, indent=1))
    if args.out:
        Path(args.out).write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()
