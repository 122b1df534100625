"""Profile one phase of RLlib training on an experiment config (cProfile, stats to stdout).

Builds the config's PPO algorithm, trains `--warmup` iterations, then profiles only one
phase of `--iterations` more: the Learner update (`--phase update`, `learner_group.update`)
or sampling (`--phase sample`, the driver's EnvRunner `sample`; needs num_env_runners: 0),
the other phase running unprofiled, and prints the top functions by own time and by
cumulative time. The profiler inflates Python-heavy code (RLlib's connectors and
bookkeeping) more than torch kernels, so read shares, not seconds.

Run:  .venv/bin/python scripts/profile_training.py --config configs/bench_vs_sb3.yaml \\
          --set training.weight_decay=0.05 --iterations 15   (about 2 minutes on 2 cores)
"""

from __future__ import annotations

import argparse
import cProfile
import os
import pstats
import time
from typing import Any


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", default="configs/bench_vs_sb3.yaml")
    parser.add_argument("--phase", choices=("update", "sample"), default="update")
    parser.add_argument("--iterations", type=int, default=15, help="profiled iterations")
    parser.add_argument("--warmup", type=int, default=3, help="unprofiled iterations first")
    parser.add_argument("--top", type=int, default=40, help="rows per table")
    parser.add_argument("--dump", help="also write the raw cProfile stats here (for pstats)")
    parser.add_argument("--set", dest="overrides", action="append", default=[],
                        help="config override key=value (repeatable)")  # fmt: skip
    args = parser.parse_args()
    os.environ.setdefault("OMP_NUM_THREADS", "1")

    import ray
    import torch

    from mmrlhf.config import load_config, parse_overrides
    from mmrlhf.trainers.ppo import build_ppo_config

    torch.set_num_threads(1)
    ray.init(num_cpus=2, include_dashboard=False, logging_level="WARNING")
    try:
        cfg = load_config(args.config, parse_overrides(args.overrides))
        algo = build_ppo_config(cfg).build_algo()
        for _ in range(args.warmup):
            algo.train()
        if args.phase == "update":
            owner: Any = algo.learner_group
        else:
            owner = algo.env_runner_group.local_env_runner
            if cfg.training.num_env_runners != 0:
                parser.error("--phase sample profiles the driver's EnvRunner: set "
                             "training.num_env_runners=0")  # fmt: skip
        name = "update" if args.phase == "update" else "sample"
        phase = getattr(owner, name)
        profile = cProfile.Profile()

        def profiled(*a: Any, **kw: Any) -> Any:
            profile.enable()
            try:
                return phase(*a, **kw)
            finally:
                profile.disable()

        setattr(owner, name, profiled)
        started = time.perf_counter()
        for _ in range(args.iterations):
            algo.train()
        per_iteration = (time.perf_counter() - started) / args.iterations
        print(f"{per_iteration:.3f} s per iteration ({args.phase} profiled)")
        stats = pstats.Stats(profile)
        if args.dump:
            stats.dump_stats(args.dump)
        stats.sort_stats("tottime").print_stats(args.top)
        stats.sort_stats("cumulative").print_stats(args.top)
        algo.stop()
    finally:
        ray.shutdown()


if __name__ == "__main__":
    main()
