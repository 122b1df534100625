"""`training.gc_freeze`: RLlib iterations with and without the setup objects frozen, paired.

    python scripts/bench_gc_freeze.py --out benchmarks/bench_gc_freeze.json

Builds the config's PPO algorithm once (with `gc_freeze` on, so the driver freezes after
the build and after its first two iterations, where `model.compile_trunk` builds its
graphs), trains `--warmup` iterations, then alternates rounds of `--per-round` timed
iterations with what is alive frozen (`gc.freeze()`, as the callbacks left it) and given
back to the collector (`gc.unfreeze()`, as with `gc_freeze` off), in alternating order, in
one process: the machine's drift hits both alike. Reports each mode's median seconds per
iteration, the collector's seconds per iteration (`gc.callbacks`), and the median ratio of
paired rounds (unfrozen / frozen).
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import statistics
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--config", default="configs/bench_vs_sb3.yaml")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    p.add_argument("--threads", type=int, default=2, help="torch threads of this process")
    p.add_argument("--warmup", type=int, default=3, help="at least 2: the callbacks' freezes")
    p.add_argument("--rounds", type=int, default=12)
    p.add_argument("--per-round", type=int, default=4, help="timed iterations per round")
    p.add_argument("--out")
    args = p.parse_args()

    import ray
    import torch

    from mmrlhf.config import load_config, parse_overrides
    from mmrlhf.trainers.gc_clock import GCClock
    from mmrlhf.trainers.ppo import build_ppo_config

    torch.set_num_threads(args.threads)
    ray.init(num_cpus=2, include_dashboard=False, logging_level="WARNING")
    cfg = load_config(args.config, parse_overrides(["training.gc_freeze=true", *args.overrides]))
    algo = build_ppo_config(cfg).build_algo()
    for _ in range(args.warmup):
        algo.train()
    modes = ("unfrozen", "frozen")
    clock = GCClock()
    rounds: dict[str, list[float]] = {m: [] for m in modes}
    iterations: dict[str, list[float]] = {m: [] for m in modes}
    for r in range(args.rounds):
        for mode in modes if r % 2 == 0 else modes[::-1]:
            if mode == "frozen":
                gc.freeze()
            else:
                gc.unfreeze()
            clock.owner = mode
            start = time.perf_counter()
            for _ in range(args.per_round):
                t = time.perf_counter()
                algo.train()
                iterations[mode].append(time.perf_counter() - t)
            rounds[mode].append(time.perf_counter() - start)
            clock.owner = None
    clock.close()
    algo.stop()
    ray.shutdown()
    n = args.rounds * args.per_round
    result = {
        "config": args.config,
        "overrides": args.overrides,
        "threads": args.threads,
        "rounds": args.rounds,
        "per_round": args.per_round,
        "median_s_per_iteration": {m: statistics.median(iterations[m]) for m in modes},
        "gc_s_per_iteration": {m: clock.seconds.get(m, 0.0) / n for m in modes},
        "median_paired_round_ratio_unfrozen_over_frozen": statistics.median(
            a / b for a, b in zip(rounds["unfrozen"], rounds["frozen"], strict=True)
        ),
    }
    print(json.dumps(result, indent=1))
    if args.out:
        Path(args.out).write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()
