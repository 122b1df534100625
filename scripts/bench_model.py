"""MultimodalModel speed: forward + backward samples/s at batch 256 for each fusion.

    python scripts/bench_model.py --out bench_model.json [--batch 256] [--threads 1]

Builds the default model (cnn image encoder + transformer text encoder) on vqa's observation
space for each fusion, times `forward_train` plus a backward pass of a PPO-like loss over
random observations, and reports samples/s and parameter counts per part. Timings on a shared
machine drift by 10-20% from run to run, so the fusions take turns for `--rounds` rounds and
each reports its median round.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from typing import Any

import torch
from ray.rllib.core.columns import Columns

from mmrlhf.envs import MyMultimodalEnv
from mmrlhf.models import ModelConfig, MultimodalModel
from mmrlhf.models.base import count_parameters

FUSIONS = ("concat", "sum", "weighted", "cross_attention", "joint", "factored_attention")


def random_batch(env: MyMultimodalEnv, batch: int) -> dict[str, Any]:
    space = env.observation_space
    image = torch.randint(0, 256, (batch, *space["image"].shape), dtype=torch.uint8)
    text = torch.randint(1, int(space["text"].high.max()) + 1, (batch, space["text"].shape[0]))
    text[:, 12:] = 0  # realistic padding: questions are short
    return {Columns.OBS: {"image": image, "text": text}}


def time_model(model: MultimodalModel, batch: dict[str, Any], seconds: float) -> float:
    opt = torch.optim.Adam(model.parameters(), lr=1e-4)
    n = batch[Columns.OBS]["text"].shape[0]

    def step() -> None:
        out = model.forward_train(batch)
        values = model.compute_values(batch, embeddings=out.get(Columns.EMBEDDINGS))
        loss = out[Columns.ACTION_DIST_INPUTS].logsumexp(-1).mean() + values.pow(2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()

    step()  # warm-up
    reps, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        step()
        reps += 1
    return reps * n / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--seconds", type=float, default=3.0, help="per fusion and round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--out", default=None)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    env = MyMultimodalEnv(task="vqa")
    batch = random_batch(env, args.batch)
    models: dict[str, MultimodalModel] = {}
    rows: dict[str, dict[str, Any]] = {}
    for fusion in FUSIONS:
        model = MultimodalModel(
            observation_space=env.observation_space,
            action_space=env.action_space,
            model_config=ModelConfig(fusion=fusion).to_rllib(),
        )
        parts = {
            name: sum(count_parameters(getattr(model, name)))
            for name in ("text_encoder", "image_encoder", "fusion", "output")
        }
        models[fusion] = model
        rows[fusion] = {"rounds": [], "params": sum(parts.values()), "params_by_part": parts}
    for _ in range(args.rounds):
        for fusion, model in models.items():
            rows[fusion]["rounds"].append(time_model(model, batch, args.seconds))
    for row in rows.values():
        row["samples_per_s"] = statistics.median(row["rounds"])
    print(f"{'fusion':16s} {'fwd+bwd samples/s':>18s} {'params':>9s}")
    for fusion, r in rows.items():
        print(f"{fusion:16s} {r['samples_per_s']:18,.0f} {r['params']:9,d}")
    if args.out:
        meta = {
            "batch": args.batch,
            "threads": args.threads,
            "rounds": args.rounds,
            "seconds": args.seconds,
            "torch": torch.__version__,
        }
        with open(args.out, "w") as fh:
            json.dump({"meta": meta, "results": rows}, fh, indent=2)


if __name__ == "__main__":
    main()
