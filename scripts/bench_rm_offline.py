"""Offline reward-model ceiling: fit an experiment's reward model to oracle pairs, then score it.

Fits the `feedback.rm_*` reward model of an experiment config (contrastive pretraining first,
`rm_pretrain_steps`) to `--pairs` strict oracle-ordered pairs of its env, saves it, and
reports for each env split its preference accuracy on 500 fresh `random` pairs and its
greedy ceiling: how often it rates the right answer best of all answers to a fresh scene,
the accuracy of a policy that maximises it (`mmrlhf reward-model eval --greedy`). No PPO:
this isolates what the reward model can learn from the labels from what the online loop
makes of it (`scripts/bench_rlhf.py`).

Run:  .venv/bin/python scripts/bench_rm_offline.py --config configs/rlhf_vqa.yaml \
          --out rm_offline.json   (about 6 minutes on 2 cores)
      --set feedback.rm_head=compare --set feedback.rm_winner_weight=0   (another variant)
      --labels results/bench_rlhf/rlhf_1000/labels   (refit an online run's labels)
      --never-right green blue orange triangle   (no label shows these right; the greedy
          ceiling's by_truth says whether the model learns them anyway)
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from pathlib import Path
from typing import Any

logger = logging.getLogger("bench_rm_offline")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", default="configs/rlhf_vqa.yaml")
    parser.add_argument("--pairs", type=int, default=1000, help="strict training pairs")
    parser.add_argument(
        "--distractor", choices=["swap", "random"], default="swap",
        help="the worse answer of a training pair (see mmrlhf.feedback.pairs)",
    )  # fmt: skip
    parser.add_argument(
        "--labels", metavar="DIR",
        help="fit an online run's saved labels (feedback.rm_label_log) instead of oracle pairs",
    )  # fmt: skip
    parser.add_argument(
        "--never-right", nargs="+", default=[], metavar="ANSWER",
        help="leave out the labels that show these answers right (they stay as losers)",
    )  # fmt: skip
    parser.add_argument("--rounds", type=int, default=20, help="train() calls of rm_epochs each")
    parser.add_argument("--unlabeled", type=int, default=2000, help="extra pretraining episodes")
    parser.add_argument("--greedy", type=int, default=500, help="scenes per split (ceiling)")
    parser.add_argument("--eval-pairs", type=int, default=500)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=2, help="torch threads")
    parser.add_argument("--work-dir", default="results/bench_rm_offline")
    parser.add_argument("--set", dest="overrides", action="append", default=[],
                        help="config override key=value (repeatable)")  # fmt: skip
    parser.add_argument("--out", help="write the results as JSON here")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")

    import torch

    from mmrlhf.config import load_config, parse_overrides
    from mmrlhf.trainers.reward_model import evaluate_reward_model, train_reward_model

    torch.set_num_threads(args.threads)
    cfg = load_config(args.config, parse_overrides(args.overrides))
    checkpoint = Path(args.work_dir) / "reward_model"
    started = time.monotonic()
    fit = train_reward_model(
        cfg.env, checkpoint, feedback=cfg.feedback, n_pairs=args.pairs, rounds=args.rounds,
        seed=args.seed, distractor=args.distractor, unlabeled=args.unlabeled,
        label_log=args.labels, never_right=args.never_right,
    )  # fmt: skip
    logger.info("fitted in %.0f s: %s", time.monotonic() - started, fit)
    report: dict[str, Any] = {
        "config": args.config,
        "overrides": args.overrides,
        "pairs": args.pairs if args.labels is None else None,
        "distractor": args.distractor if args.labels is None else None,
        "labels": args.labels,
        "never_right": args.never_right,
        "rounds": args.rounds,
        "unlabeled": args.unlabeled,
        "seed": args.seed,
        "fit": fit,
    }
    for split in ("train", "test"):
        metrics = evaluate_reward_model(
            checkpoint, cfg.env, args.eval_pairs, split=split, greedy_episodes=args.greedy
        )
        report[split] = {
            "random_pair_accuracy": metrics["preference_accuracy"],
            "greedy": metrics["greedy"],
        }
        logger.info("%s split: random pairs %.3f, greedy %.3f %s %s optimistic %s", split,
                    metrics["preference_accuracy"], metrics["greedy"]["accuracy"],
                    metrics["greedy"]["by_kind"], metrics["greedy"]["by_truth"],
                    metrics["greedy"]["optimistic_by_truth"])  # fmt: skip
    text = json.dumps(report, indent=2, default=str)
    if args.out:
        Path(args.out).write_text(text + "\n")
    print(text)


if __name__ == "__main__":
    main()
