"""Learning benchmarks: env steps and wall-clock to a target, then train/test-split evaluation.

    python scripts/bench_learning.py --suite env --out bench_learning_env.json
    python scripts/bench_learning.py --suite feedback --out bench_learning_feedback.json

Suites (each run is a shipped config plus overrides, trained with `mmrlhf.trainers.train`
until the training accuracy target, or the step/time cap, then evaluated greedily on 1,000
fresh episodes of each split):

- env: vqa and retrieval with the env reward (targets: 95% vqa accuracy, 90% recall@1).
- feedback: vqa from oracle and from noisy (sigma 0.5, epsilon 0.1) feedback only, caption from
  oracle feedback only (targets: 90% / 85% vqa test accuracy, 0.8 caption attribute F1).
"""

from __future__ import annotations

import argparse
import json
import logging
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mmrlhf.config import load_config
from mmrlhf.trainers.evaluate import evaluate
from mmrlhf.trainers.train import train

ROOT = Path(__file__).resolve().parents[1]


@dataclass
class Run:
    name: str
    config: str
    overrides: list[str]
    metric: str  # the evaluation metric the goal is about
    goal: float


SUITES: dict[str, list[Run]] = {
    "env": [
        Run("vqa_env", "vqa_env.yaml", [], "accuracy", 0.95),
        Run("retrieval_env", "retrieval_env.yaml", ["stop.accuracy=0.95"], "recall@1", 0.90),
    ],
    "feedback": [
        Run("vqa_oracle", "vqa_feedback.yaml", ["feedback.rater=oracle", "stop.accuracy=0.95"],
            "accuracy", 0.90),
        Run("vqa_noisy", "vqa_feedback.yaml",
            ["feedback.rater=noisy", "feedback.sigma=0.5", "feedback.epsilon=0.1",
             "stop.accuracy=0.93"], "accuracy", 0.85),
        Run("caption_oracle", "caption_feedback.yaml",
            ["feedback.rater=oracle", "stop.accuracy=0.9"], "attribute_f1", 0.80),
    ],
}


def run_one(
    run: Run, out_dir: Path, max_minutes: float, episodes: int, extra: list[str]
) -> dict[str, Any]:
    overrides = [
        *run.overrides,
        *extra,
        f"stop.wall_time_s={max_minutes * 60}",
        "stop.iterations=100000",
        f"output_dir={out_dir}",
        f"name={run.name}",
        "checkpoint.every=0",
    ]
    cfg = load_config(ROOT / "configs" / run.config, overrides)
    start = time.monotonic()
    result = train(cfg, progress=logging.getLogger(run.name).info)
    wall = time.monotonic() - start
    assert result.checkpoint is not None
    evals = {
        split: evaluate(result.checkpoint, cfg=cfg, split=split, episodes=episodes)
        for split in ("train", "test")
    }
    row = {
        "config": run.config,
        "overrides": [*run.overrides, *extra],
        "env_steps": result.final.get("env_steps"),
        "iterations": result.final.get("iteration"),
        "wall_clock_s": round(wall, 1),
        "stop_reason": result.stop_reason,
        "metric": run.metric,
        "goal": run.goal,
        "train": evals["train"],
        "test": evals["test"],
    }
    row["goal_met"] = all(evals[s][run.metric] >= run.goal for s in ("train", "test"))
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--suite", choices=[*SUITES, "all"], default="all")
    parser.add_argument("--only", nargs="*", help="run names to keep")
    parser.add_argument("--max-minutes", type=float, default=20.0, help="cap per run")
    parser.add_argument("--episodes", type=int, default=1000, help="eval episodes per split")
    parser.add_argument("--set", dest="overrides", action="append", default=[],
                        metavar="KEY=VALUE", help="config override for every run (repeatable)")
    parser.add_argument("--out", default=None)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")

    runs = [r for name, rs in SUITES.items() if args.suite in (name, "all") for r in rs]
    if args.only:
        runs = [r for r in runs if r.name in args.only]
    rows: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for run in runs:
            rows[run.name] = run_one(
                run, Path(tmp), args.max_minutes, args.episodes, args.overrides
            )
            if args.out:  # keep partial results if a later run is interrupted
                Path(args.out).write_text(json.dumps(rows, indent=2))
    print(f"{'run':16s} {'metric':13s} {'train':>7s} {'test':>7s} {'goal':>5s} "
          f"{'env steps':>10s} {'wall s':>7s}")  # fmt: skip
    for name, r in rows.items():
        m = r["metric"]
        print(f"{name:16s} {m:13s} {r['train'][m]:7.3f} {r['test'][m]:7.3f} {r['goal']:5.2f} "
              f"{r['env_steps']:10,d} {r['wall_clock_s']:7.0f}")  # fmt: skip


if __name__ == "__main__":
    main()
