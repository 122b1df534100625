"""Median time to the target over several `bench_vs_sb3.py` runs (one JSON per seed).

    python scripts/bench_vs_sb3_summary.py benchmarks/bench_vs_sb3.json \
        benchmarks/bench_vs_sb3_seed{1,2,3,4}.json

Prints one row per run (seconds and env steps to the target test accuracy for each side, or
"not reached" with the best accuracy and the run's cap) and the medians. A side that did not
reach the target within its cap counts as slower than the cap: a median that lands on such a
run is reported as "> cap", and the ratio of medians is then a bound, not a number.

Per-run ratios swing both ways, so it also counts which side got there first on each seed
(paired: both sides of a run share the seed) and, with `--bootstrap N`, resamples the seeds N
times to tell how often RLlib's median is at or below SB3's: how much the verdict rests on
which seeds were run.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

FRAMEWORKS = ("sb3", "rllib")


def threshold_key(target: float) -> str:
    """How bench_vs_sb3.py keys a timed accuracy in its JSON (its `_th_key`)."""
    return f"{target:g}"


def side_result(run: dict[str, Any], side: str, key: str) -> dict[str, Any]:
    """One side of one run: seconds and env steps to the target (None if not reached), the
    run's cap in seconds, its best test accuracy and its env steps per second."""
    if side not in run["results"]:
        raise ValueError(f"run with seed {run['seed']} has no {side!r} side")
    res = run["results"][side]
    timed = res["thresholds"]
    if key not in timed:
        raise ValueError(
            f"run with seed {run['seed']} did not time {key} for {side}; "
            f"timed: {', '.join(sorted(timed))}"
        )
    hit = timed[key] or {}
    return {
        "seconds": hit.get("seconds"),
        "env_steps": hit.get("env_steps"),
        "cap_s": float(run["protocol"]["max_minutes"]) * 60.0,
        "best_accuracy": res["best_accuracy"],
        "steps_per_s": res["steps_per_s"],
    }


def censored_median(times: Sequence[tuple[float | None, float]]) -> tuple[float, bool]:
    """Median of times where None means "more than its cap"; returns (value, is_lower_bound).

    Unreached runs sort after every reached one (each is only known to exceed its cap). A
    median that falls on an unreached run is returned as that run's cap, flagged as a bound.
    """
    if not times:
        raise ValueError("no runs to summarise")
    reached = sorted(t for t, _ in times if t is not None)
    capped = sorted(cap for t, cap in times if t is None)
    ordered = [(t, False) for t in reached] + [(cap, True) for cap in capped]
    n = len(ordered)
    mid = ordered[(n - 1) // 2 : n // 2 + 1]
    return statistics.fmean(v for v, _ in mid), any(bound for _, bound in mid)


def first_there(row: dict[str, Any]) -> str:
    """Which side of one run reached the target first: `sb3`, `rllib`, `tie` (same second)
    or `neither` (a side that did not reach it counts as slower than one that did)."""
    sb3, rllib = row["sb3"]["seconds"], row["rllib"]["seconds"]
    if sb3 is None and rllib is None:
        return "neither"
    if sb3 is None or (rllib is not None and rllib < sb3):
        return "rllib"
    if rllib is None or sb3 < rllib:
        return "sb3"
    return "tie"


def rllib_at_or_below(rllib: tuple[float, bool], sb3: tuple[float, bool]) -> bool | None:
    """Whether RLlib's median (value, is_lower_bound) is at or below SB3's; None when two
    bounds cannot be ordered (each median only known to exceed its cap)."""
    if rllib[1]:
        return False if not sb3[1] else None
    return True if sb3[1] else rllib[0] <= sb3[0]


def bootstrap(rows: Sequence[dict[str, Any]], resamples: int, seed: int = 0) -> dict[str, Any]:
    """Resample the runs (with replacement, each run's two sides together) `resamples` times:
    the share of resamples in which RLlib's median is at or below SB3's, above it, or cannot
    be ordered, and the 5th/50th/95th percentiles of the ratio of medians where both are
    numbers."""
    if resamples < 1:
        raise ValueError(f"bootstrap resamples must be >= 1, got {resamples}")
    rng = random.Random(seed)
    counts = {"rllib_at_or_below": 0, "rllib_above": 0, "unordered": 0}
    ratios = []
    for _ in range(resamples):
        drawn = [rows[rng.randrange(len(rows))] for _ in rows]
        rllib, sb3 = (
            censored_median([(r[side]["seconds"], r[side]["cap_s"]) for r in drawn])
            for side in ("rllib", "sb3")
        )
        verdict = rllib_at_or_below(rllib, sb3)
        counts[{True: "rllib_at_or_below", False: "rllib_above", None: "unordered"}[verdict]] += 1
        if not rllib[1] and not sb3[1]:
            ratios.append(rllib[0] / sb3[0])
    ratios.sort()

    def pct(q: float) -> float | None:
        return ratios[min(len(ratios) - 1, int(q * len(ratios)))] if ratios else None

    return {
        "resamples": resamples,
        "seed": seed,
        **{k: v / resamples for k, v in counts.items()},
        "ratio_percentiles": {"5": pct(0.05), "50": pct(0.5), "95": pct(0.95)},
    }


def summarise(runs: Sequence[dict[str, Any]], target: float) -> dict[str, Any]:
    """Per-run times and per-side medians to `target`, the ratio of the medians and which side
    got there first on how many runs."""
    key = threshold_key(target)
    rows = [
        {
            "seed": run["seed"],
            "git": run.get("git"),
            **{side: side_result(run, side, key) for side in FRAMEWORKS},
        }
        for run in runs
    ]
    medians = {}
    for side in FRAMEWORKS:
        value, bound = censored_median([(r[side]["seconds"], r[side]["cap_s"]) for r in rows])
        medians[side] = {"seconds": value, "lower_bound": bound}
    sb3, rllib = medians["sb3"], medians["rllib"]
    exact = not sb3["lower_bound"] and not rllib["lower_bound"]
    ratio = rllib["seconds"] / sb3["seconds"] if exact else None
    first = {k: 0 for k in ("rllib", "sb3", "tie", "neither")}
    for row in rows:
        first[first_there(row)] += 1
    return {
        "target": target,
        "runs": rows,
        "medians": medians,
        "ratio_of_medians": ratio,
        "first_there": first,
    }


def _cell(side: dict[str, Any]) -> str:
    if side["seconds"] is None:
        return f"> {side['cap_s']:.0f} s (best {side['best_accuracy']:.2f})"
    return f"{side['seconds']:.1f} s ({side['env_steps']:,} steps)"


def print_summary(summary: dict[str, Any]) -> None:
    print(f"seconds of training to {summary['target']} test accuracy")
    print(f"{'seed':<8}{'sb3':<30}{'rllib':<30}rllib/sb3")
    for row in summary["runs"]:
        sb3, rllib = row["sb3"], row["rllib"]
        both = sb3["seconds"] is not None and rllib["seconds"] is not None
        ratio = f"{rllib['seconds'] / sb3['seconds']:.2f}" if both else "-"
        print(f"{row['seed']:<8}{_cell(sb3):<30}{_cell(rllib):<30}{ratio}")
    cells = []
    for side in FRAMEWORKS:
        m = summary["medians"][side]
        cells.append(("> " if m["lower_bound"] else "") + f"{m['seconds']:.1f} s")
    ratio = summary["ratio_of_medians"]
    shown = "-" if ratio is None else f"{ratio:.2f}"
    print(f"{'median':<8}{cells[0]:<30}{cells[1]:<30}{shown}")
    first = summary["first_there"]
    print(
        f"first to the target: rllib {first['rllib']}, sb3 {first['sb3']}, "
        f"tie {first['tie']}, neither {first['neither']} (of {len(summary['runs'])} runs)"
    )
    boot = summary.get("bootstrap")
    if boot:
        p = boot["ratio_percentiles"]
        spread = "-" if p["50"] is None else f"{p['5']:.2f} / {p['50']:.2f} / {p['95']:.2f}"
        print(
            f"bootstrap ({boot['resamples']} resamples of the runs): rllib median at or below "
            f"sb3's in {boot['rllib_at_or_below']:.1%}, above in {boot['rllib_above']:.1%}, "
            f"unordered in {boot['unordered']:.1%}; ratio of medians 5th/50th/95th "
            f"percentile {spread}"
        )


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("runs", nargs="+", type=Path, help="bench_vs_sb3.py --out JSON files")
    p.add_argument("--target", type=float, default=0.95, help="test accuracy (a timed one)")
    p.add_argument(
        "--bootstrap",
        type=int,
        default=0,
        metavar="N",
        help="resample the runs N times (default 0: off); see the module docstring",
    )
    p.add_argument("--out", type=Path, help="write the summary here as JSON")
    args = p.parse_args(argv)
    runs = [json.loads(path.read_text()) for path in args.runs]
    try:
        summary = summarise(runs, args.target)
        if args.bootstrap:
            summary["bootstrap"] = bootstrap(summary["runs"], args.bootstrap)
    except (KeyError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print_summary(summary)
    if args.out:
        args.out.write_text(json.dumps(summary, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
