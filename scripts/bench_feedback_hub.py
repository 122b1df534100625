"""Per-episode cost of FeedbackCallback.on_episode_end, with and without the FeedbackHub.

Runs the callback on pre-built one-step episodes in this process (as a local EnvRunner would)
and prints microseconds per episode for:

- ``metrics``: feedback off, only accuracy/score logged;
- ``local``: oracle feedback, private budget, no hub;
- ``hub_log``: hub with unlimited budget (labels logged fire-and-forget, one call per block);
- ``hub_budget``: hub with a budget, labels reserved ``--block`` at a time;
- ``hub_block1``: the naive design, one blocking ``ray.get`` per episode (block = 1).

Run:  .venv/bin/python scripts/bench_feedback_hub.py [--episodes 5000] [--out bench.json]
Expect (2-core CPU): tens of µs for every mode but ``hub_block1``, which costs a Ray round
trip (hundreds of µs) per episode.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import time
from types import SimpleNamespace
from typing import Any

import numpy as np

os.environ.setdefault("OMP_NUM_THREADS", "1")
logger = logging.getLogger("bench_feedback_hub")


def make_episodes(n: int) -> list[Any]:
    """`n` finished one-step episodes with image + text observations and contract infos."""
    from ray.rllib.env.single_agent_episode import SingleAgentEpisode

    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)
    text = np.zeros(32, np.int64)
    episodes = []
    for i in range(n):
        score = float(i % 2)
        ep = SingleAgentEpisode()
        ep.add_env_reset({"image": image, "text": text}, {"task": "vqa", "score": 0.0})
        final = {
            "task": "vqa",
            "score": score,
            "oracle_action": 1,
            "prompt": "what shape is the red object ?",
            "response": "circle",
            "ground_truth": "circle",
            "success": score == 1.0,
        }
        ep.add_env_step({"image": image, "text": text}, 1, 0.0, final, terminated=True)
        episodes.append(ep)
    return episodes


def bench(name: str, feedback: Any, episodes: list[Any], sample_size: int) -> dict[str, Any]:
    """Time on_episode_end over all episodes; on_sample_end every `sample_size` episodes."""
    import ray
    from ray.rllib.utils.metrics.metrics_logger import MetricsLogger

    from mmrlhf.callbacks import FeedbackCallback

    callback = FeedbackCallback(feedback)
    runner = SimpleNamespace(
        worker_index=1,
        tune_trial_id=name,  # a fresh hub per mode
        config=SimpleNamespace(in_evaluation=False, metrics_num_episodes_for_smoothing=100),
    )
    metrics = MetricsLogger()
    # Warm up: builds the engine, creates the hub, first reservation.
    callback.on_episode_end(episode=episodes[0], env_runner=runner, metrics_logger=metrics)
    start = time.perf_counter()
    for i, ep in enumerate(episodes):
        callback.on_episode_end(episode=ep, env_runner=runner, metrics_logger=metrics)
        if (i + 1) % sample_size == 0:
            callback.on_sample_end(env_runner=runner, metrics_logger=metrics, samples=[])
    callback.on_sample_end(env_runner=runner, metrics_logger=metrics, samples=[])
    elapsed = time.perf_counter() - start
    out: dict[str, Any] = {"us_per_episode": 1e6 * elapsed / len(episodes)}
    if feedback.enabled and feedback.use_hub:
        # How long the hub needs to absorb the fire-and-forget log (not on the sampling path).
        from mmrlhf.feedback.hub import get_or_create_hub

        hub = get_or_create_hub(feedback.hub_actor_name(name))
        t0 = time.perf_counter()
        while ray.get(hub.stats.remote())["logged"] < len(episodes) + 1 and (
            time.perf_counter() - t0 < 60
        ):
            time.sleep(0.01)
        out["hub_drain_s"] = time.perf_counter() - t0
        out["hub_stats"] = {
            k: v for k, v in ray.get(hub.stats.remote()).items() if k != "per_runner"
        }
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--episodes", type=int, default=5000)
    parser.add_argument("--block", type=int, default=32, help="labels per hub reservation")
    parser.add_argument("--sample-size", type=int, default=64, help="episodes per sample()")
    parser.add_argument("--out", help="write the results as JSON here")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")

    import ray

    from mmrlhf.feedback.config import FeedbackConfig

    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    episodes = make_episodes(args.episodes)
    on = {"enabled": True, "hub_block": args.block}
    budget = 10 * args.episodes  # never binding: we measure reservation cost, not refusal
    modes = {
        "metrics": FeedbackConfig(),
        "local": FeedbackConfig(**on),
        "hub_log": FeedbackConfig(**on, use_hub=True),
        "hub_budget": FeedbackConfig(**on, use_hub=True, label_budget=budget),
        "hub_block1": FeedbackConfig(enabled=True, use_hub=True, label_budget=budget, hub_block=1),
    }
    results = {}
    for name, cfg in modes.items():
        eps = episodes if name != "hub_block1" else episodes[: max(1, len(episodes) // 5)]
        results[name] = bench(name, cfg, eps, args.sample_size)
        logger.info("%-11s %8.1f us/episode", name, results[name]["us_per_episode"])
    ray.shutdown()
    if args.out:
        with open(args.out, "w") as f:
            json.dump({"episodes": args.episodes, "block": args.block, **results}, f, indent=2)


if __name__ == "__main__":
    main()
