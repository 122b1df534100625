"""Sampling cost per env step of one EnvRunner: env, model inference, framework; feedback on/off.

    python scripts/bench_sampling.py --out benchmarks/bench_sampling.json [--task vqa]
        [--envs 1 8 16 32] [--steps 2048] [--rounds 10] [--overhead-rounds 30]

Builds the quickstart experiment's EnvRunner in this process (the real env, the default
cnn + transformer MultimodalModel, the real connectors and callbacks). Two measurements:

1. Breakdown, for each `--envs` (vectorised envs per runner), feedback on: wall time per env
   step split into env time (vector env `step`/`reset`), model inference
   (`forward_exploration`), and framework time = the rest (connectors, episode bookkeeping,
   callbacks, metrics). Goal: framework at most 0.5 ms per env step.
2. Feedback overhead at the trainer's default `num_envs_per_env_runner`: one runner rating
   every episode with the noisy rater, one with feedback off (the callback then only logs
   accuracy), in `--overhead-rounds` paired rounds of one `sample()` call each (single rounds
   move by +-10% or more on a shared machine, so many), and the callback's own
   time per episode in both (its difference is the cost of rating). Goal: at most 5%.

Torch runs with one thread, as in an EnvRunner actor.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

os.environ.setdefault("OMP_NUM_THREADS", "1")

ROOT = Path(__file__).resolve().parents[1]


def make_runner(feedback: bool, task: str, envs: int) -> Any:
    """The quickstart experiment's EnvRunner, built in this process."""
    from mmrlhf.callbacks.env_runner import CompleteEpisodesEnvRunner
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
    return CompleteEpisodesEnvRunner(config=build_ppo_config(cfg))


class Stopwatch:
    """Wraps callables and sums the time spent inside them."""

    def __init__(self) -> None:
        self.seconds = 0.0

    def wrap(self, fn: Callable[..., Any]) -> Callable[..., Any]:
        def timed(*args: Any, **kwargs: Any) -> Any:
            start = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                self.seconds += time.perf_counter() - start

        return timed


def breakdown(task: str, envs: int, steps: int, rounds: int) -> dict[str, float]:
    """ms per env step: total, env, inference and framework (the rest)."""
    runner = make_runner(True, task, envs)
    runner.sample(num_timesteps=256, random_actions=False)  # warm-up: caches, first resets
    env_time, model_time = Stopwatch(), Stopwatch()
    runner.env.step = env_time.wrap(runner.env.step)
    runner.env.reset = env_time.wrap(runner.env.reset)
    runner.module.forward_exploration = model_time.wrap(runner.module.forward_exploration)
    total, done = 0.0, 0
    for _ in range(rounds):
        start = time.perf_counter()
        episodes = runner.sample(num_timesteps=steps, random_actions=False)
        total += time.perf_counter() - start
        done += sum(len(e) for e in episodes)
    runner.stop()
    ms = 1000.0 / done
    return {
        "envs": envs,
        "env_steps": done,
        "steps_per_s": done / total,
        "total_ms": total * ms,
        "env_ms": env_time.seconds * ms,
        "inference_ms": model_time.seconds * ms,
        "framework_ms": (total - env_time.seconds - model_time.seconds) * ms,
    }


def feedback_overhead(task: str, envs: int, steps: int, rounds: int) -> dict[str, Any]:
    """env steps/s with feedback off and on, in paired rounds; overhead in percent.

    Each round times one `sample()` call per runner, in alternating order; the overhead is
    the median over rounds of the paired ratio, which drift on a shared machine (and the
    garbage collector's timing) moves far less than totals.
    """
    from mmrlhf.callbacks.feedback import FeedbackCallback

    runners = {"off": make_runner(False, task, envs), "on": make_runner(True, task, envs)}
    callback_time = {name: Stopwatch() for name in runners}
    episodes_ended = {name: 0 for name in runners}
    for name, runner in runners.items():
        runner.sample(num_timesteps=256, random_actions=False)
        [callback] = [c for c in runner._callbacks if isinstance(c, FeedbackCallback)]
        callback.on_episode_end = callback_time[name].wrap(callback.on_episode_end)
    rates: dict[str, list[float]] = {"off": [], "on": []}
    for i in range(rounds):
        order = ("off", "on") if i % 2 == 0 else ("on", "off")
        for name in order:
            gc.collect()  # both start each call with the same garbage-collector state
            start = time.perf_counter()
            episodes = runners[name].sample(num_timesteps=steps, random_actions=False)
            rates[name].append(sum(len(e) for e in episodes) / (time.perf_counter() - start))
            episodes_ended[name] += len(episodes)
    for runner in runners.values():
        runner.stop()
    ratios = sorted(off / on for off, on in zip(rates["off"], rates["on"], strict=True))
    callback_ms = {k: 1000.0 * callback_time[k].seconds / episodes_ended[k] for k in runners}
    step_ms = 1000.0 / statistics.median(rates["on"])
    return {
        "envs": envs,
        "callback_ms_per_episode": callback_ms,
        # What rating adds to each episode's callback, as a share of an env step (one-step
        # episodes: one episode per step). Robust to the machine's noise, unlike throughput.
        "callback_overhead_percent": 100.0 * (callback_ms["on"] - callback_ms["off"]) / step_ms,
        "steps_per_s": {k: statistics.median(v) for k, v in rates.items()},
        "overhead_percent": 100.0 * (statistics.median(ratios) - 1.0),
        "overhead_percent_per_round": [100.0 * (r - 1.0) for r in ratios],
    }


def main() -> None:
    from mmrlhf.config import TrainingConfig

    default_envs = TrainingConfig().num_envs_per_env_runner
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--task", default="vqa")
    parser.add_argument("--envs", type=int, nargs="+", default=[1, 8, 16, 32])
    parser.add_argument("--steps", type=int, default=2048, help="env steps per sample() call")
    parser.add_argument("--rounds", type=int, default=10, help="breakdown sample() calls")
    parser.add_argument("--overhead-rounds", type=int, default=30, help="paired on/off rounds")
    parser.add_argument("--out", default=None)
    args = parser.parse_args()

    import torch

    torch.set_num_threads(1)
    rows = [breakdown(args.task, n, args.steps, args.rounds) for n in args.envs]
    print(f"{args.task}: ms per env step (one EnvRunner, feedback on, 1 torch thread)")
    print(f"{'envs':>5} {'steps/s':>8} {'total':>7} {'env':>7} {'model':>7} {'framework':>9}")
    for r in rows:
        print(
            f"{r['envs']:>5} {r['steps_per_s']:>8,.0f} {r['total_ms']:>7.3f} {r['env_ms']:>7.3f} "
            f"{r['inference_ms']:>7.3f} {r['framework_ms']:>9.3f}"
        )
    fb = feedback_overhead(args.task, default_envs, args.steps, args.overhead_rounds)
    print(
        f"feedback at {default_envs} envs: off {fb['steps_per_s']['off']:,.0f} env steps/s, "
        f"on {fb['steps_per_s']['on']:,.0f} (medians), overhead {fb['overhead_percent']:+.1f}% "
        f"(median of {args.overhead_rounds} paired rounds)"
    )
    cb = fb["callback_ms_per_episode"]
    print(
        f"feedback callback: {cb['on']:.4f} ms per episode on, {cb['off']:.4f} off: "
        f"{fb['callback_overhead_percent']:.1f}% of an env step"
    )
    if args.out:
        out = {
            "task": args.task,
            "steps_per_call": args.steps,
            "rounds": args.rounds,
            "overhead_rounds": args.overhead_rounds,
            "breakdown": rows,
            "feedback": fb,
        }
        Path(args.out).write_text(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
