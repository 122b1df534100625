"""One PPO update by SB3 and by RLlib (mmrlhf) from the same weights on the same batch.

    python scripts/probe_sb3_update.py --out benchmarks/probe_sb3_update.json
    python scripts/probe_sb3_update.py --set training.advantage_norm=minibatch

Builds `bench_vs_sb3.py`'s two sides for the config (default `configs/bench_vs_sb3.yaml`),
copies the RLlib module's weights into SB3's policy (trunk, each head's layer norm, MLP and
output layer), samples one batch of complete one-step episodes with RLlib's EnvRunner, and
puts the same observations, actions, rewards, values and log-probabilities into SB3's
rollout buffer. Both then run one PPO update (`num_epochs` x the minibatches), the
minibatches in the same order (no shuffling on either side). Reports, per parameter
tensor, how far the two updated weights are apart relative to how far RLlib's moved: near
zero where the two PPOs compute the same update, and the tensors where they do not. The
`vs_sb3` gap in learning per env step is not speed; this finds which part of the update
differs, without the seeds' noise. Needs `pip install -e ".[bench]"`.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import sys
from pathlib import Path
from typing import Any

os.environ.setdefault("OMP_NUM_THREADS", "1")

ROOT = Path(__file__).resolve().parents[1]


def load_bench() -> Any:
    """`scripts/bench_vs_sb3.py` as a module (its SB3 side is the one compared)."""
    spec = importlib.util.spec_from_file_location("bench_vs_sb3", ROOT / "scripts/bench_vs_sb3.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["bench_vs_sb3"] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def rllib_name(sb3_name: str, policy_len: int, value_len: int) -> str | None:
    """The RLlib module's name for an SB3 policy parameter (None: SB3's aliases of the
    shared trunk)."""
    head, _, rest = sb3_name.partition(".")
    if head in ("pi_features_extractor", "vf_features_extractor"):
        return None
    if head == "features_extractor":
        return rest
    if head == "mlp_extractor":
        net, _, rest = rest.partition(".")
        return ("output.policy." if net == "policy_net" else "output.value.") + rest
    if head == "action_net":
        return f"output.policy.{policy_len}.{rest}"
    if head == "value_net":
        return f"output.value.{value_len}.{rest}"
    raise KeyError(sb3_name)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--config", default=str(ROOT / "configs/bench_vs_sb3.yaml"))
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    p.add_argument("--top", type=int, default=8, help="tensors to list, largest gap first")
    p.add_argument("--out")
    args = p.parse_args()

    import numpy as np
    import ray
    import torch
    from ray.rllib.core.columns import Columns

    from mmrlhf.config import load_config, parse_overrides
    from mmrlhf.trainers.ppo import build_ppo_config

    torch.set_num_threads(1)
    bench = load_bench()
    overrides = ["training.num_env_runners=0", "training.gc_freeze=false", *args.overrides]
    cfg = load_config(args.config, parse_overrides(overrides))
    t = cfg.training
    ray.init(num_cpus=2, include_dashboard=False, logging_level="WARNING")
    algo = build_ppo_config(cfg).training(shuffle_batch_per_epoch=False).build_algo()
    module = algo.learner_group._learner.module["default_policy"]
    sb3_args = argparse.Namespace(
        sb3_compile="off", eval_every_s=20.0, eval_episodes=10, eval_seed=10_000,
        eval_batch=10, target=0.95, max_minutes=1.0, thresholds=[0.5],
    )  # fmt: skip
    sb3 = bench.SB3Trainer(cfg, sb3_args, t.seed or 0)
    policy = sb3.model.policy
    lens = (len(policy.mlp_extractor.policy_net), len(policy.mlp_extractor.value_net))
    names = {k: rllib_name(k, *lens) for k in policy.state_dict()}
    start = {k: v.detach().clone() for k, v in module.state_dict().items()}
    policy.load_state_dict({k: start[names[k] or k.partition(".")[2]] for k in names})

    runner = algo.env_runner_group.local_env_runner  # synced with the Learner at build
    episodes = runner.sample()
    if any(len(e) != 1 for e in episodes):
        raise SystemExit("the probe fills SB3's buffer with one-step episodes only")
    n_envs = sb3.settings["n_envs"]
    n_steps = len(episodes) // n_envs
    episodes = episodes[: n_envs * n_steps]
    buffer = sb3.model.rollout_buffer
    buffer.reset()
    for step in range(n_steps):
        rows = [episodes[env * n_steps + step] for env in range(n_envs)]  # SB3: env-major
        first = [e.get_observations(0) for e in rows]
        obs = {k: np.stack([o[k] for o in first]) for k in first[0]}
        buffer.add(
            obs,
            np.array([[int(e.get_actions(0))] for e in rows]),
            np.array([float(e.get_rewards(0)) for e in rows], np.float32),
            np.ones(n_envs, np.float32),
            torch.tensor([float(e.get_extra_model_outputs(Columns.VF_PREDS, 0)) for e in rows]),
            torch.tensor([float(e.get_extra_model_outputs(Columns.ACTION_LOGP, 0)) for e in rows]),
        )
    buffer.compute_returns_and_advantage(last_values=torch.zeros(n_envs), dones=np.ones(n_envs))

    algo.learner_group.update(
        episodes=episodes, timesteps={}, num_epochs=t.num_epochs,
        minibatch_size=t.minibatch_size, shuffle_batch_per_epoch=False,
    )  # fmt: skip
    permutation = np.random.permutation
    np.random.permutation = lambda n: np.arange(n)  # SB3's minibatches in order too
    try:
        sb3.model._current_progress_remaining = 1.0
        sb3.model.train()
    finally:
        np.random.permutation = permutation
    after_rllib = module.state_dict()
    after_sb3 = policy.state_dict()
    rows_out = []
    total_gap = total_move = 0.0
    for k, name in names.items():
        if name is None:
            continue
        gap = float((after_sb3[k] - after_rllib[name]).norm())
        moved = float((after_rllib[name] - start[name]).norm())
        total_gap += gap**2
        total_move += moved**2
        rows_out.append({"sb3": k, "rllib": name, "gap": gap, "rllib_move": moved,
                         "sb3_move": float((after_sb3[k] - start[name]).norm())})  # fmt: skip
    rows_out.sort(key=lambda r: r["gap"] / max(r["rllib_move"], 1e-12), reverse=True)
    result = {
        "config": args.config,
        "overrides": args.overrides,
        "episodes": len(episodes),
        "gap_over_move_all_parameters": (total_gap / total_move) ** 0.5,
        "largest": rows_out[: args.top],
    }
    print(json.dumps(result, indent=1))
    if args.out:
        Path(args.out).write_text(json.dumps(result, indent=1) + "\n")
    algo.stop()
    ray.shutdown()


if __name__ == "__main__":
    main()
