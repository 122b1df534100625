"""Two variants of one experiment, trained in turns in one process: seconds per iteration.

    python scripts/bench_paired.py --config configs/bench_vs_sb3.yaml \\
        --b model.compile_trunk=true [--a key=value ...] [--set key=value ...] \\
        [--warmup 3] [--iterations 20] [--threads 1] --out bench_paired.json

Builds variant A (the config, `--set`, then `--a`) and variant B (the config, `--set`, then
`--b`) as RLlib PPO algorithms in this process, trains each `--warmup` untimed iterations
(the first one holds one-off costs such as torch.compile's, reported as `first_s`), then
alternates timed `algo.train()` calls, A then B. This machine's speed drifts by tens of
percent over minutes; taking turns gives both variants the same spells, and the median of the
per-pair ratios B/A is the figure to read. Per variant it also times the driver's EnvRunner
`sample` (with `num_env_runners: 0`) and the LearnerGroup's `update` per iteration.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

os.environ.setdefault("OMP_NUM_THREADS", "1")


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--config", default="configs/bench_vs_sb3.yaml")
    p.add_argument("--set", dest="common", action="append", default=[], metavar="KEY=VALUE",
                   help="override for both variants (repeatable)")  # fmt: skip
    p.add_argument("--a", action="append", default=[], metavar="KEY=VALUE",
                   help="override for variant A only (repeatable)")  # fmt: skip
    p.add_argument("--b", action="append", default=[], metavar="KEY=VALUE",
                   help="override for variant B only (repeatable)")  # fmt: skip
    p.add_argument("--warmup", type=int, default=3, help="untimed iterations per variant")
    p.add_argument("--iterations", type=int, default=20, help="timed iterations per variant")
    p.add_argument("--threads", type=int, default=1, help="torch threads of this process")
    p.add_argument("--out", help="write the results here as JSON")
    args = p.parse_args(argv)
    if not args.a and not args.b:
        p.error("give at least one --a or --b override: the variants would be identical")
    if args.warmup < 1 or args.iterations < 1:
        p.error("--warmup and --iterations must be at least 1")
    return args


class Variant:
    """One PPO algorithm whose iterations, and their sample/update calls, are timed."""

    def __init__(self, name: str, cfg: Any) -> None:
        from mmrlhf.trainers.phase_timer import PhaseTimer
        from mmrlhf.trainers.ppo import build_ppo_config

        self.name = name
        self.algo = build_ppo_config(cfg).build_algo()
        self.phases = PhaseTimer(self.algo)

    def train(self) -> None:
        """One timed `algo.train()`."""
        self.phases.start()
        self.algo.train()
        self.phases.stop()

    def timed_s(self, warmup: int) -> list[float]:
        """Seconds of each iteration after the first `warmup`."""
        return self.phases.periods[warmup:]

    def summary(self, warmup: int) -> dict[str, Any]:
        def med(xs: list[float]) -> float | None:
            return round(statistics.median(xs), 4) if xs and any(xs) else None

        timed = self.timed_s(warmup)
        return {
            "first_s": round(self.phases.periods[0], 3),
            "median_s": med(timed),
            "mean_s": round(statistics.mean(timed), 4),
            "sample_median_s": med(self.phases.history["sample"][warmup:]),
            "update_median_s": med(self.phases.history["update"][warmup:]),
            "iteration_s": [round(s, 4) for s in timed],
        }


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    import ray
    import torch

    from mmrlhf.config import load_config, parse_overrides

    torch.set_num_threads(args.threads)
    ray.init(num_cpus=2, include_dashboard=False, logging_level="WARNING")
    try:
        configs = {
            name: load_config(args.config, parse_overrides([*args.common, *extra]))
            for name, extra in (("a", args.a), ("b", args.b))
        }
        variants = [Variant(name, cfg) for name, cfg in configs.items()]
        for v in variants:
            for _ in range(args.warmup):
                v.train()
        for _ in range(args.iterations):
            for v in variants:
                v.train()
        a, b = (v.timed_s(args.warmup) for v in variants)
        ratios = [sb / sa for sa, sb in zip(a, b, strict=True)]
        report = {
            "command": [sys.executable, *sys.argv],
            "config": args.config,
            "common": args.common,
            "overrides": {"a": args.a, "b": args.b},
            "threads": args.threads,
            "warmup": args.warmup,
            "iterations": args.iterations,
            "variants": {v.name: v.summary(args.warmup) for v in variants},
            "ratio_b_over_a_median": round(statistics.median(ratios), 4),
        }
        for v in variants:
            s = report["variants"][v.name]
            print(f"{v.name}: first {s['first_s']:.2f} s, median {s['median_s']:.3f} s/iteration "
                  f"(sample {s['sample_median_s']}, update {s['update_median_s']})")  # fmt: skip
        print(f"median paired ratio b/a: {report['ratio_b_over_a_median']:.3f}")
        if args.out:
            Path(args.out).write_text(json.dumps(report, indent=2))
            print(f"wrote {args.out}")
        for v in variants:
            v.algo.stop()
    finally:
        ray.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
