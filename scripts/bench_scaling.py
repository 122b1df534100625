"""PPO training throughput over the number of EnvRunners, and the memory each process needs.

    python scripts/bench_scaling.py --out benchmarks/bench_scaling.json [--runners 0 1 2 4]
        [--config configs/quickstart.yaml] [--set a.b=v ...] [--warmup 2] [--iterations 8]
        [--cpus N]

Each runner count runs in a fresh Python subprocess (this script again, with `--one N`), which
starts Ray with `--cpus` CPUs (default: `os.cpu_count()`), builds the experiment's PPO
algorithm with `training.num_env_runners=N` (0 = sampling in the driver) and
`training.num_cpus_per_env_runner=min(1, cpus / N)` (so 4 EnvRunners fit on 2 CPUs), runs
`--warmup` untimed and `--iterations` timed `algo.train()` calls, and shuts Ray down. Measured:

1. Scaling: env steps/s = env steps sampled in the timed iterations / their wall clock; mean
   s/iter (`time_this_iter_s`), and mean EnvRunner sampling and Learner update time per
   iteration (RLlib's `env_runner_sampling_timer` and `learner_update_timer`).
2. Memory: peak RSS (`ru_maxrss`, and VmHWM) and current RSS (VmRSS) of the driver and of each
   EnvRunner actor after the timed iterations. Goals: driver <= 1.5 GB, EnvRunner <= 800 MB.

On a 2-core machine more EnvRunners mostly show the overhead of extra processes; the numbers
that show scaling come from a machine with more cores (the script runs there unchanged).

RLlib quirk: the result's `timers` are EMAs (coefficient 0.01) over the whole run, so they
mostly show the first iteration's time. The timed iterations delete those two timers before
each `train()` call, so each result holds that iteration's own time.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from statistics import mean
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
TIMER_KEYS = {"sampling_s": "env_runner_sampling_timer", "learner_s": "learner_update_timer"}
GOAL_DRIVER_MB = 1536.0
GOAL_ENV_RUNNER_MB = 800.0


def memory_now() -> dict[str, Any]:
    """This process's pid, peak RSS (`ru_maxrss`, VmHWM) and current RSS (VmRSS), in MB."""
    import resource

    status: dict[str, float] = {}
    with open("/proc/self/status") as f:
        for line in f:
            key, _, value = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                status[key] = float(value.split()[0]) / 1024.0  # kB -> MB
    out: dict[str, Any] = {
        "pid": os.getpid(),
        # KiB on Linux. Survives exec, so a child's value can include its parent's peak
        # (this orchestrating process stays small); VmHWM is this process image's alone.
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0,
        "hwm_rss_mb": status.get("VmHWM"),
        "rss_mb": status.get("VmRSS"),
    }
    try:
        import torch

        out["torch_threads"] = torch.get_num_threads()
    except ImportError:
        pass
    return out


def env_runner_memory(runner: Any) -> dict[str, Any]:
    """Runs inside an EnvRunner actor (via `foreach_env_runner`)."""
    return {"worker_index": runner.worker_index, **memory_now()}


def _timer(result: dict[str, Any], name: str) -> float | None:
    value = result.get("timers", {}).get(name)
    return float(value) if value is not None else None


def run_one(
    runners: int, cpus: int, config: str, sets: list[str], warmup: int, iterations: int
) -> dict[str, Any]:
    """One runner count, in this (fresh) process: Ray up, train, measure, Ray down."""
    import ray

    from mmrlhf.config import load_config
    from mmrlhf.trainers.metrics import summarize
    from mmrlhf.trainers.ppo import build_ppo_config
    from mmrlhf.trainers.train import apply_torch_threads

    cpus_per_runner = min(1.0, cpus / runners) if runners else 1.0
    overrides = [
        *sets,
        f"training.num_env_runners={runners}",
        f"training.num_cpus_per_env_runner={cpus_per_runner}",
    ]
    cfg = load_config(config, overrides)
    ray.init(num_cpus=cpus, include_dashboard=False, log_to_driver=False)
    try:
        apply_torch_threads(cfg)
        build_start = time.perf_counter()
        algo = build_ppo_config(cfg).build_algo()
        build_s = time.perf_counter() - build_start
        try:
            steps_before = 0
            for _ in range(warmup):
                steps_before = summarize(algo.train())["env_steps"] or 0
            rows: list[dict[str, Any]] = []
            elapsed = 0.0
            for _ in range(iterations):
                for name in TIMER_KEYS.values():
                    algo.metrics.delete("timers", name, key_error=False)
                start = time.perf_counter()
                result = algo.train()
                elapsed += time.perf_counter() - start
                row = summarize(result)
                if row["env_steps"] is None:
                    raise KeyError("result has no env_runners/num_env_steps_sampled_lifetime")
                rows.append(
                    {
                        "env_steps": row["env_steps"],
                        "time_this_iter_s": row["time_this_iter_s"],
                        "accuracy": row["accuracy"],
                        **{k: _timer(result, name) for k, name in TIMER_KEYS.items()},
                    }
                )
            driver = memory_now()
            runner_mem = algo.env_runner_group.foreach_env_runner(
                env_runner_memory, local_env_runner=False
            )
        finally:
            algo.stop()
    finally:
        ray.shutdown()

    steps = rows[-1]["env_steps"] - steps_before if rows else 0

    def avg(key: str) -> float | None:
        values = [r[key] for r in rows if r[key] is not None]
        return mean(values) if values else None

    runner_peaks = [m["peak_rss_mb"] for m in sorted(runner_mem, key=lambda m: m["worker_index"])]
    return {
        "runners": runners,
        "num_cpus_per_env_runner": cpus_per_runner if runners else None,
        "overrides": overrides,
        "build_s": build_s,
        "timed_env_steps": steps,
        "timed_wall_s": elapsed,
        "env_steps_per_s": steps / elapsed if elapsed > 0 else None,
        "s_per_iter": avg("time_this_iter_s"),
        "sampling_s": avg("sampling_s"),
        "learner_s": avg("learner_s"),
        "final_accuracy": rows[-1]["accuracy"] if rows else None,
        "iterations": rows,
        "driver": driver,
        "env_runners": sorted(runner_mem, key=lambda m: m["worker_index"]),
        "env_runner_peak_mb_max": max(runner_peaks) if runner_peaks else None,
        "env_runner_peak_mb": runner_peaks,
    }


def run_in_subprocess(args: argparse.Namespace, runners: int) -> dict[str, Any]:
    """`run_one` in a fresh interpreter, so its peak RSS belongs to this runner count alone."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "one.json"
        cmd = [
            sys.executable,
            str(Path(__file__).resolve()),
            "--one",
            str(runners),
            "--json-to",
            str(out),
            "--config",
            args.config,
            "--cpus",
            str(args.cpus),
            "--warmup",
            str(args.warmup),
            "--iterations",
            str(args.iterations),
        ]
        for s in args.set:
            cmd += ["--set", s]
        start = time.perf_counter()
        proc = subprocess.run(cmd, cwd=ROOT, timeout=args.timeout, check=False)
        wall = time.perf_counter() - start
        if proc.returncode != 0 or not out.is_file():
            return {"runners": runners, "error": f"exit code {proc.returncode}", "wall_s": wall}
        return {**json.loads(out.read_text()), "wall_s": wall}


def _version(package: str) -> str | None:
    try:
        return version(package)
    except PackageNotFoundError:
        return None


def _fmt(value: float | None, fmt: str = ",.0f") -> str:
    return "-" if value is None else format(value, fmt)


def print_table(rows: list[dict[str, Any]]) -> None:
    print(
        f"{'runners':>7} {'steps/s':>8} {'s/iter':>7} {'sampling s':>10} {'learner s':>9} "
        f"{'driver peak MB':>14}  EnvRunner peak MB (max; each)"
    )
    for r in rows:
        if "error" in r:
            print(f"{r['runners']:>7} failed: {r['error']}")
            continue
        each = ", ".join(f"{v:,.0f}" for v in r["env_runner_peak_mb"]) or "-"
        print(
            f"{r['runners']:>7} {_fmt(r['env_steps_per_s'], '8,.0f')} "
            f"{_fmt(r['s_per_iter'], '7.2f')} "
            f"{_fmt(r['sampling_s'], '10.2f')} {_fmt(r['learner_s'], '9.2f')} "
            f"{_fmt(r['driver']['peak_rss_mb'], '14,.0f')} "
            f"{_fmt(r['env_runner_peak_mb_max'], ',.0f'):>5}; {each}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runners", type=int, nargs="+", default=[0, 1, 2, 4])
    parser.add_argument("--config", default=str(ROOT / "configs" / "quickstart.yaml"))
    parser.add_argument("--set", action="append", default=[], metavar="A.B=V")
    parser.add_argument("--cpus", type=int, default=os.cpu_count() or 1, help="for ray.init")
    parser.add_argument("--warmup", type=int, default=2, help="untimed iterations")
    parser.add_argument("--iterations", type=int, default=8, help="timed iterations")
    parser.add_argument("--timeout", type=float, default=3600.0, help="seconds per runner count")
    parser.add_argument("--out", default=None)
    parser.add_argument("--one", type=int, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--json-to", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    args.config = str(Path(args.config).resolve())

    if args.one is not None:  # child: one runner count
        row = run_one(args.one, args.cpus, args.config, args.set, args.warmup, args.iterations)
        Path(args.json_to).write_text(json.dumps(row, indent=2))
        return

    rows = []
    for n in args.runners:
        print(f"--- {n} EnvRunner(s) ---", flush=True)
        rows.append(run_in_subprocess(args, n))
    sets = "".join(f" --set {s}" for s in args.set)
    print(
        f"PPO, {Path(args.config).name}{sets}; {args.cpus} CPUs for Ray; "
        f"{args.warmup} warm-up + {args.iterations} timed iterations"
    )
    print_table(rows)
    ok = [r for r in rows if "error" not in r]
    if ok:
        driver_max = max(r["driver"]["peak_rss_mb"] for r in ok)
        runner_max = max((r["env_runner_peak_mb_max"] or 0.0) for r in ok)
        print(
            f"goals: driver peak {driver_max:,.0f} MB (<= {GOAL_DRIVER_MB:,.0f}), "
            f"EnvRunner peak {runner_max:,.0f} MB (<= {GOAL_ENV_RUNNER_MB:,.0f})"
        )
    if args.out:
        report = {
            "config": args.config,
            "overrides": args.set,
            "cpu_count": os.cpu_count(),
            "ray_num_cpus": args.cpus,
            "warmup": args.warmup,
            "iterations": args.iterations,
            "driver_torch_threads": ok[0]["driver"].get("torch_threads") if ok else None,
            "versions": {
                "python": platform.python_version(),
                "ray": _version("ray"),
                "torch": _version("torch"),
            },
            "goals_mb": {"driver": GOAL_DRIVER_MB, "env_runner": GOAL_ENV_RUNNER_MB},
            "results": rows,
        }
        Path(args.out).write_text(json.dumps(report, indent=2))
    if len(ok) < len(rows):
        sys.exit(1)


if __name__ == "__main__":
    main()
