"""Supervised probe: can a model represent a one-step task at all?

Trains `MultimodalModel`'s policy logits with cross-entropy on the env's `oracle_action` over
fresh episodes and measures greedy accuracy on fresh train-split and test-split episodes. PPO
gets far less signal per sample than a labelled answer gives, so a model that cannot reach a goal
here will not reach it with RL either; a model that can tells you the rest is up to the RL
settings. `scripts/probe_supervised.py` is the command-line front end.
"""

from __future__ import annotations

import logging
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from ray.rllib.core.columns import Columns

from mmrlhf.envs import EnvConfig, MyMultimodalEnv
from mmrlhf.envs.grammar import RETRIEVAL_I2T, VQA_TEMPLATES
from mmrlhf.models import ModelConfig, MultimodalModel

logger = logging.getLogger(__name__)

ONE_STEP_TASKS = ("vqa", "retrieval", "dataset")
# Each vqa template's words before its first slot tell the question types apart.
VQA_OPENINGS = {kind: template.split("{")[0] for kind, template in VQA_TEMPLATES.items()}


@dataclass
class OracleBatch:
    """Observations of fresh one-step episodes, their oracle actions and question kinds."""

    obs: dict[str, torch.Tensor]
    actions: torch.Tensor
    kinds: list[str]


def question_kind(task: str, prompt: str) -> str:
    """A short label for an episode's prompt, for per-kind accuracy.

    vqa: the question type; retrieval: the direction (``text_to_image``/``image_to_text``).
    """
    if task == "retrieval":
        return "image_to_text" if prompt.startswith(RETRIEVAL_I2T) else "text_to_image"
    if task != "vqa":
        return task
    for kind, opening in VQA_OPENINGS.items():
        if prompt.startswith(opening):
            return kind
    return "other"


def oracle_batch(env: MyMultimodalEnv, n: int) -> OracleBatch:
    """Draw `n` fresh episodes from `env` (a one-step task) with their oracle actions."""
    if env.cfg.task not in ONE_STEP_TASKS:
        raise ValueError(
            f"the supervised probe needs a one-step task ({', '.join(ONE_STEP_TASKS)}), "
            f"got {env.cfg.task!r}"
        )
    images, texts, actions, kinds = [], [], [], []
    for _ in range(n):
        obs, info = env.reset()
        images.append(obs["image"])
        texts.append(obs["text"])
        actions.append(info["oracle_action"])
        kinds.append(question_kind(env.cfg.task, env.task.prompt()))
    obs_t = {"image": torch.from_numpy(np.stack(images)), "text": torch.from_numpy(np.stack(texts))}
    return OracleBatch(obs_t, torch.tensor(actions), kinds)


def accuracy(model: MultimodalModel, data: OracleBatch) -> dict[str, float]:
    """Greedy accuracy on `data`: overall (`all`) and per question kind."""
    with torch.no_grad():
        logits = model.forward_inference({Columns.OBS: data.obs})[Columns.ACTION_DIST_INPUTS]
    right = (logits.argmax(-1) == data.actions).numpy()
    per: dict[str, list[bool]] = defaultdict(list)
    for ok, kind in zip(right, data.kinds, strict=True):
        per[kind].append(bool(ok))
    return {"all": float(right.mean()), **{k: float(np.mean(v)) for k, v in sorted(per.items())}}


@dataclass
class ProbePoint:
    """One evaluation during the probe."""

    samples: int
    seconds: float
    loss: float
    train: dict[str, float]
    test: dict[str, float]


def build_model(env: MyMultimodalEnv, model_cfg: ModelConfig) -> MultimodalModel:
    """A fresh `MultimodalModel` for `env`'s spaces."""
    return MultimodalModel(
        observation_space=env.observation_space,
        action_space=env.action_space,
        model_config=model_cfg.to_rllib(),
    )


def probe(
    env_cfg: EnvConfig,
    model_cfg: ModelConfig,
    *,
    samples: int,
    batch_size: int = 128,
    lr: float = 1e-3,
    weight_decay: float = 0.0,
    eval_every: int = 10_000,
    eval_size: int = 2000,
    seed: int = 0,
    on_point: Callable[[ProbePoint], None] | None = None,
) -> list[ProbePoint]:
    """Train a fresh model on `samples` oracle-labelled episodes; evaluate every `eval_every`.

    Each training batch is drawn fresh from the train split (no sample is seen twice); the
    evaluation sets are fixed draws from each split. `weight_decay` > 0 trains with AdamW, as
    `training.weight_decay` does for PPO.
    """
    torch.manual_seed(seed)
    train_env = MyMultimodalEnv(env_cfg.model_copy(update={"split": "train"}))
    train_env.reset(seed=seed)
    eval_sets = {}
    for i, split in enumerate(("train", "test")):
        env = MyMultimodalEnv(env_cfg.model_copy(update={"split": split}))
        env.reset(seed=seed + 1 + i)
        eval_sets[split] = oracle_batch(env, eval_size)
    model = build_model(train_env, model_cfg)
    opt = (
        torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay)
        if weight_decay > 0
        else torch.optim.Adam(model.parameters(), lr=lr)
    )
    points: list[ProbePoint] = []
    seen, next_eval, start = 0, eval_every, time.perf_counter()
    while seen < samples:
        data = oracle_batch(train_env, batch_size)
        model.train()
        logits = model.forward_train({Columns.OBS: data.obs})[Columns.ACTION_DIST_INPUTS]
        loss = torch.nn.functional.cross_entropy(logits, data.actions)
        opt.zero_grad()
        loss.backward()
        opt.step()
        seen += batch_size
        if seen >= next_eval or seen >= samples:
            next_eval += eval_every
            model.eval()
            point = ProbePoint(
                samples=seen,
                seconds=round(time.perf_counter() - start, 1),
                loss=round(float(loss.detach()), 4),
                train=accuracy(model, eval_sets["train"]),
                test=accuracy(model, eval_sets["test"]),
            )
            points.append(point)
            if on_point is not None:
                on_point(point)
    return points
