"""Supervised ceiling of a model on a one-step task (see `mmrlhf.trainers.probe`).

    python scripts/probe_supervised.py --env num_objects=3 \
        --model fusion=cross_attention cnn_streams=form_color --samples 200000 --out probe.json

Trains the policy logits with cross-entropy on the oracle's answers over fresh episodes and
prints greedy accuracy on fresh train-split and test-split (held-out colour-shape pairs)
episodes, per question kind. If a model cannot reach a goal here, no RL setting will get it there.

What a fixed number of labels can teach (the reward-model question of issue 6), after
contrastive pretraining on unlabelled episodes:

    python scripts/probe_supervised.py --config configs/rlhf_vqa.yaml --labelled 2000 \
        --samples 153600 --batch 64 --weight-decay 0.05 --eval-every 153600 --eval-size 1000 \
        --pretrain tokens --pretrain-steps 1000
"""

from __future__ import annotations

import argparse
import dataclasses
import json
from typing import get_args

import torch

from mmrlhf.config import load_config, parse_overrides
from mmrlhf.envs import EnvConfig
from mmrlhf.models import ModelConfig
from mmrlhf.trainers.probe import ContrastiveMatch, ContrastivePretrain, ProbePoint, probe


def show(point: ProbePoint) -> None:
    def fmt(acc: dict[str, float]) -> str:
        return " ".join(f"{k}={v:.3f}" for k, v in acc.items())

    print(f"{point.samples:>8} {point.seconds:>7}s loss {point.loss:.3f} | "
          f"train {fmt(point.train)} | test {fmt(point.test)}", flush=True)  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--config", default=None,
                        help="experiment YAML whose env and model to start from")  # fmt: skip
    parser.add_argument("--env", nargs="*", default=[], help="EnvConfig fields, key=value")
    parser.add_argument("--model", nargs="*", default=[], help="ModelConfig fields, key=value")
    parser.add_argument("--samples", type=int, default=200_000)
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--weight-decay", type=float, default=0.0, help="> 0: AdamW")
    parser.add_argument("--eval-every", type=int, default=50_000)
    parser.add_argument("--eval-size", type=int, default=2000)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--labelled", type=int, default=None,
                        help="train on one fixed set of N labelled episodes (default: fresh)")
    parser.add_argument("--pretrain", choices=["none", *get_args(ContrastiveMatch)], default="none",
                        help="contrastive pretraining on unlabelled episodes first")
    parser.add_argument("--pretrain-steps", type=int, default=1000)
    parser.add_argument("--pretrain-pool", type=int, default=20_000)
    parser.add_argument("--out", default=None)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    if args.config:
        base = load_config(args.config)
        # Rebuilt from their fields so the overrides are validated like the YAML's.
        env_cfg = EnvConfig(**{**base.env.model_dump(), **parse_overrides(args.env)})
        model_cfg = ModelConfig(**{**base.model.model_dump(), **parse_overrides(args.model)})
    else:
        env_cfg = EnvConfig(**{"task": "vqa", **parse_overrides(args.env)})
        model_cfg = ModelConfig(**parse_overrides(args.model))
    pretrain = None
    if args.pretrain != "none":
        pretrain = ContrastivePretrain(
            steps=args.pretrain_steps, match=args.pretrain, pool=args.pretrain_pool
        )
    points = probe(
        env_cfg, model_cfg, samples=args.samples, batch_size=args.batch, lr=args.lr,
        weight_decay=args.weight_decay, eval_every=args.eval_every, eval_size=args.eval_size,
        seed=args.seed, labelled=args.labelled, pretrain=pretrain, on_point=show,
    )  # fmt: skip
    if args.out:
        result = {
            "env": env_cfg.model_dump(mode="json"),
            "model": model_cfg.to_rllib(),
            "lr": args.lr,
            "weight_decay": args.weight_decay,
            "batch": args.batch,
            "seed": args.seed,
            "labelled": args.labelled,
            "pretrain": None if pretrain is None else dataclasses.asdict(pretrain),
            "curve": [dataclasses.asdict(p) for p in points],
        }
        with open(args.out, "w") as f:
            json.dump(result, f, indent=2)


if __name__ == "__main__":
    main()
