"""`evaluate`: a trained policy on fresh episodes, with each task's own metrics.

Loads only the RLModule from a checkpoint (no Ray, no algorithm), acts greedily (argmax of the
logits) and reports:

- vqa, dataset: accuracy;
- retrieval: recall@1 and recall@k from the policy's ranking of the candidates (its logits);
- caption: attribute F1 and exact match;
- dialogue: success and mean turns;
- every task: mean score.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml

from mmrlhf.config import ExperimentConfig, validate_config
from mmrlhf.envs import MyMultimodalEnv

logger = logging.getLogger(__name__)

MODULE_SUBPATH = Path("learner_group") / "learner" / "rl_module" / "default_policy"


def load_module(checkpoint: str | Path) -> Any:
    """The policy RLModule from an algorithm checkpoint (or a module checkpoint directory)."""
    from ray.rllib.core.rl_module.rl_module import RLModule

    path = Path(checkpoint).resolve()
    module_dir = path / MODULE_SUBPATH if (path / MODULE_SUBPATH).is_dir() else path
    if not module_dir.is_dir():
        raise FileNotFoundError(f"checkpoint {str(path)!r} not found")
    module = RLModule.from_checkpoint(str(module_dir))
    module.eval()
    return module


def config_for_checkpoint(checkpoint: str | Path) -> ExperimentConfig:
    """The experiment config saved beside a `train` checkpoint (run_dir/config.yaml)."""
    path = Path(checkpoint).resolve()
    for parent in [path, *path.parents][:4]:
        candidate = parent / "config.yaml"
        if candidate.is_file():
            return validate_config(yaml.safe_load(candidate.read_text()))
    raise FileNotFoundError(
        f"no config.yaml in or above {str(path)!r}; pass the experiment config explicitly"
    )


def policy_logits(module: Any, obs: Mapping[str, np.ndarray]) -> np.ndarray:
    """The module's greedy-path action logits for one env observation."""
    batch = {"obs": {k: torch.as_tensor(v[None]) for k, v in obs.items()}}
    with torch.no_grad():
        out = module.forward_inference(batch)
    return out["action_dist_inputs"][0].numpy()


def evaluate(
    checkpoint: str | Path,
    *,
    cfg: ExperimentConfig | None = None,
    split: str = "test",
    episodes: int = 200,
    seed: int = 10_000,
    ks: tuple[int, ...] = (1, 2, 3),
) -> dict[str, Any]:
    """Run `episodes` greedy episodes of the checkpoint's task on `split`; return metrics.

    vqa adds `accuracy/<question type>` and `episodes/<question type>` for each type asked.
    """
    cfg = cfg or config_for_checkpoint(checkpoint)
    module = load_module(checkpoint)
    env = MyMultimodalEnv(cfg.env.model_copy(update={"split": split}))
    task = env.cfg.task
    scores, successes, f1s, exact, turns = [], [], [], [], []
    by_type: dict[str, list[bool]] = {}
    hits = {k: 0 for k in ks}
    for ep in range(episodes):
        obs, info = env.reset(seed=seed + ep)
        done = False
        first_logits = None
        while not done:
            logits = policy_logits(module, obs)
            first_logits = logits if first_logits is None else first_logits
            obs, _, terminated, truncated, info = env.step(int(np.argmax(logits)))
            done = terminated or truncated
        scores.append(info["score"])
        successes.append(bool(info["success"]))
        if "question_type" in info:
            by_type.setdefault(info["question_type"], []).append(bool(info["success"]))
        if task == "caption":
            f1s.append(info["f1"])
            exact.append(bool(info["exact_match"]))
        if task == "dialogue":
            turns.append(info["turns"])
        if task == "retrieval" and first_logits is not None:
            order = np.argsort(-first_logits)
            rank = int(np.flatnonzero(order == info["target_index"])[0])
            for k in ks:
                hits[k] += rank < k
    metrics: dict[str, Any] = {
        "task": task,
        "split": split,
        "episodes": episodes,
        "score": float(np.mean(scores)),
        "success": float(np.mean(successes)),
    }
    if task in ("vqa", "dataset"):
        metrics["accuracy"] = metrics["success"]
        # Which question kinds fail where is what the held-out split's gap is made of.
        for qtype, ok in sorted(by_type.items()):
            metrics[f"accuracy/{qtype}"] = float(np.mean(ok))
            metrics[f"episodes/{qtype}"] = len(ok)
    elif task == "retrieval":
        metrics.update({f"recall@{k}": hits[k] / episodes for k in ks})
    elif task == "caption":
        metrics["attribute_f1"] = float(np.mean(f1s))
        metrics["exact_match"] = float(np.mean(exact))
    elif task == "dialogue":
        metrics["mean_turns"] = float(np.mean(turns))
    return metrics


def markdown_table(metrics: Mapping[str, Any]) -> str:
    """Two-column Markdown table of a metrics dict."""
    rows = ["| metric | value |", "| --- | ---: |"]
    for k, v in metrics.items():
        rows.append(f"| {k} | {v:.4f} |" if isinstance(v, float) else f"| {k} | {v} |")
    return "\n".join(rows)
