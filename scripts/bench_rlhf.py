"""Label efficiency of RLHF on vqa: policy accuracy against simulated preference labels.

Trains `configs/rlhf_vqa.yaml` (env reward off; a reward-model ensemble learned from
simulated pairwise preferences scores every episode) once per label budget, plus the oracle
run (the per-episode ground-truth score as reward, i.e. a label on 100% of episodes), each
for the same number of iterations, then evaluates every final policy greedily on fresh
episodes of the training distribution (`split=train`, unseen seeds) and of the held-out
colour-shape pairs (`split=test`). RLHF rows also report the reward model's preference
accuracy on 500 held-out oracle-ordered pairs: against random answers, and against the right
answer for another image with the same question (`swap`), and how often it rates the right
answer best of all answers to a fresh scene of each split (`greedy`: the ceiling of a policy
that maximises it).

Run:  .venv/bin/python scripts/bench_rlhf.py --out bench_rlhf.json
      .venv/bin/python scripts/bench_rlhf.py --quick --out bench_rlhf_quick.json  (minutes)
Goal: >= 90% accuracy with <= 1,000 labels on <= 2% of the episodes. Expect a full run (4
trainings of 100 iterations x 512 episodes) to take about 1.5-3 hours on 2 busy CPU cores.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import shutil
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("OMP_NUM_THREADS", "1")
logger = logging.getLogger("bench_rlhf")

CONFIG = Path(__file__).resolve().parent.parent / "configs" / "rlhf_vqa.yaml"


def run_one(name: str, overrides: dict[str, Any], args: argparse.Namespace) -> dict[str, Any]:
    """Train one configuration, evaluate it, return its table row."""
    from mmrlhf.config import load_config, parse_overrides
    from mmrlhf.trainers.evaluate import evaluate
    from mmrlhf.trainers.train import train

    out_dir = Path(args.work_dir)
    base = {
        "name": name,
        "output_dir": str(out_dir),
        "stop.iterations": args.iterations,
        "stop.accuracy": None,
        "checkpoint.every": 0,
        "training.train_batch_size": args.batch,
        "training.minibatch_size": min(128, args.batch),
        "training.seed": args.seed,
        "feedback.seed": args.seed,
    }
    cfg = load_config(CONFIG, {**base, **overrides, **parse_overrides(args.overrides)})
    if cfg.feedback.rm_label_log and Path(cfg.feedback.rm_label_log).exists():
        # A label log appends: an earlier run's labels would mix with this run's.
        shutil.rmtree(cfg.feedback.rm_label_log)
    started = time.monotonic()
    result = train(cfg, progress=lambda line: logger.info("%s: %s", name, line))
    wall = time.monotonic() - started
    assert result.checkpoint is not None
    final = result.final
    episodes = int(final.get("episodes") or 0)
    labels = int(final.get("labels") or 0) if cfg.feedback.source == "reward_model" else episodes
    row: dict[str, Any] = {
        "run": name,
        "source": cfg.feedback.source,
        "label_budget": cfg.feedback.label_budget,
        "labels": labels,
        "episodes": episodes,
        "labels_per_episode": labels / episodes if episodes else math.nan,
        # A pair shows two episodes to the rater.
        "episodes_shown_fraction": (
            min(1.0, labels * cfg.feedback.query_k / episodes)
            if cfg.feedback.source == "reward_model" and episodes
            else 1.0
        ),
        "train_accuracy_last_iter": final.get("accuracy"),
        # Queries asked and how many came back as ties (both answers equally good: no signal
        # about which is better), from the hub's totals.
        "label_queries": final.get("label_queries"),
        "label_ties": final.get("label_ties"),
        # Ties the rater marked "both bad" (feedback.preference_both_bad).
        "label_both_bad": final.get("label_both_bad"),
        "label_challenger_wins": final.get("label_challenger_wins"),
        "rm_refits": final.get("rm_refits"),
        "wall_s": round(wall, 1),
        "curve": [(r.get("episodes"), r.get("accuracy"), r.get("labels")) for r in result.history],
    }
    if cfg.feedback.rm_label_log and Path(cfg.feedback.rm_label_log).is_dir():
        from mmrlhf.feedback.coverage import label_coverage
        from mmrlhf.feedback.label_log import load_label_log

        # Which answers the labels ever showed right: the reward model cannot rate the rest.
        coverage = label_coverage(*load_label_log(cfg.feedback.rm_label_log)).to_dict()
        row["label_responses_shown_good"] = coverage["responses_shown_good"]
        row["label_coverage"] = coverage["by_response"]
    for split in ("train", "test"):
        metrics = evaluate(result.checkpoint, cfg=cfg, split=split, episodes=args.eval_episodes)
        row[f"accuracy_{split}_split"] = metrics["accuracy"]
    if cfg.feedback.source == "reward_model" and cfg.feedback.rm_save_dir:
        from mmrlhf.trainers.reward_model import evaluate_reward_model

        rm = evaluate_reward_model(cfg.feedback.rm_save_dir, cfg.env, n_pairs=args.rm_pairs)
        row["rm_preference_accuracy"] = rm["preference_accuracy"]
        row["rm_version"] = rm["version"]
        # The hard test: the right answer against another image's right answer to the same
        # question (see mmrlhf.feedback.pairs). Train split only: on this task's test split
        # each question has one answer (one held-out colour per shape), so there are no
        # such pairs.
        swap = evaluate_reward_model(
            cfg.feedback.rm_save_dir, cfg.env, n_pairs=args.rm_pairs, distractor="swap"
        )
        row["rm_swap_accuracy"] = swap["preference_accuracy"]
        # The policy's ceiling under this reward model: how often the right answer is rated
        # best of all answers to a fresh scene (feedback.audit.greedy_answers).
        if args.rm_greedy > 0:
            for split in ("train", "test"):
                found = evaluate_reward_model(
                    cfg.feedback.rm_save_dir, cfg.env, n_pairs=args.rm_pairs, split=split,
                    greedy_episodes=args.rm_greedy,
                )  # fmt: skip
                row[f"rm_greedy_{split}_split"] = found["greedy"]["accuracy"]
                row[f"rm_greedy_{split}_by_kind"] = found["greedy"]["by_kind"]
                if "greedy_plain" in found:
                    row[f"rm_greedy_plain_{split}_split"] = found["greedy_plain"]["accuracy"]
    logger.info("%s: %s", name, {k: v for k, v in row.items() if k != "curve"})
    return row


def rlhf_overrides(budget: int, args: argparse.Namespace) -> dict[str, Any]:
    """Spread `budget` labels evenly over the first `--label-iterations` iterations (default:
    the whole run), after an initial batch of 2%."""
    initial = max(10, budget // 50)
    spread = args.label_iterations or args.iterations
    per_iter = max(1, math.ceil((budget - initial) / spread))
    overrides: dict[str, Any] = {
        "feedback.label_budget": budget,
        "feedback.initial_queries": initial,
        "feedback.queries_per_iter": per_iter,
        "feedback.rm_save_dir": str(Path(args.work_dir) / f"rlhf_{budget}" / "reward_model"),
        # Every label with its episodes, to refit offline (bench_rm_offline.py --labels).
        "feedback.rm_label_log": str(Path(args.work_dir) / f"rlhf_{budget}" / "labels"),
    }
    if args.query_mode:
        # The floor rotation's options act on novel challengers only, and refuse other modes.
        overrides.update({
            "feedback.query_mode": args.query_mode,
            "feedback.query_challenger_scenes": "random",
            "feedback.query_give_up_rounds": 1,
            "feedback.query_confirmations": 1,
        })  # fmt: skip
    return overrides


def markdown(rows: list[dict[str, Any]]) -> str:
    """The results as a Markdown table."""
    head = ("| run | labels | episodes | labels/episode | acc (train split) | acc (test split) "
            "| RM pair acc: random / swap | RM greedy: train / test | wall s |")  # fmt: skip
    lines = [head, "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for r in rows:
        rm, greedy = (
            " / ".join("-" if r.get(k) is None else f"{r[k]:.3f}" for k in keys)
            for keys in (
                ("rm_preference_accuracy", "rm_swap_accuracy"),
                ("rm_greedy_train_split", "rm_greedy_test_split"),
            )
        )
        lines.append(
            f"| {r['run']} | {r['labels']:,} | {r['episodes']:,} | "
            f"{r['labels_per_episode']:.3%} | {r['accuracy_train_split']:.3f} | "
            f"{r['accuracy_test_split']:.3f} | {rm} | {greedy} | {r['wall_s']:.0f} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--budgets", type=int, nargs="*", default=[250, 500, 1000],
        help="label budgets, one RLHF run each (none: the oracle run alone)",
    )
    parser.add_argument("--iterations", type=int, default=100)
    parser.add_argument(
        "--label-iterations", type=int, metavar="N",
        help="spend each budget over the first N iterations (default: all of them); the "
        "policy then trains on the finished labels' reward model for the rest",
    )  # fmt: skip
    parser.add_argument("--batch", type=int, default=512, help="episodes per iteration")
    parser.add_argument("--eval-episodes", type=int, default=500)
    parser.add_argument("--rm-pairs", type=int, default=500)
    parser.add_argument(
        "--rm-greedy", type=int, default=500, metavar="N",
        help="fresh scenes per split on which every answer is scored (0 = skip)",
    )  # fmt: skip
    parser.add_argument(
        "--query-mode",
        choices=["active", "optimistic", "random"],
        help="override the config's feedback.query_mode; also sets the floor rotation's "
        "query_challenger_scenes=random, query_give_up_rounds=1 and query_confirmations=1, "
        "which act on novel challengers only",
    )
    parser.add_argument("--no-oracle", action="store_true", help="skip the oracle run")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--work-dir", default="results/bench_rlhf")
    parser.add_argument(
        "--quick",
        action="store_true",
        help="reduced size: budgets 100 200, 12 iterations, 200 eval episodes, 100 greedy scenes",
    )
    parser.add_argument("--set", dest="overrides", action="append", default=[],
                        metavar="KEY=VALUE", help="config override for every run (repeatable)")
    parser.add_argument("--out", help="write the results as JSON here")
    args = parser.parse_args()
    if args.quick:
        args.budgets, args.iterations, args.eval_episodes, args.rm_pairs = [100, 200], 12, 200, 200
        args.rm_greedy = min(args.rm_greedy, 100)
    if args.label_iterations is not None and not 1 <= args.label_iterations <= args.iterations:
        parser.error(f"--label-iterations must be in 1..--iterations ({args.iterations}), "
                     f"got {args.label_iterations}")  # fmt: skip
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    for noisy in ("ray", "mmrlhf.models.multimodal"):
        logging.getLogger(noisy).setLevel(logging.WARNING)

    started = time.monotonic()
    rows = []
    if not args.no_oracle:
        # The oracle rater scores every episode (no budget): the ceiling RLHF is measured against.
        oracle = {
            "feedback.source": "rater",
            "feedback.rater": "oracle",
            "feedback.label_budget": None,
        }
        rows.append(run_one("oracle", oracle, args))
    for budget in args.budgets:
        rows.append(run_one(f"rlhf_{budget}", rlhf_overrides(budget, args), args))
    table = markdown(rows)
    print(table)
    from mmrlhf.config import load_config

    config_query_mode = load_config(CONFIG).feedback.query_mode
    report = {
        "benchmark": "rlhf_vqa label efficiency",
        "config": str(CONFIG),
        "iterations": args.iterations,
        "label_iterations": args.label_iterations or args.iterations,
        "episodes_per_iteration": args.batch,
        "query_mode": args.query_mode or config_query_mode,
        "overrides": args.overrides,
        "goal": ">= 0.90 accuracy with <= 1000 labels on <= 2% of episodes",
        "rows": rows,
        "table": table,
        "total_wall_s": round(time.monotonic() - started, 1),
    }
    if args.out:
        Path(args.out).write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
