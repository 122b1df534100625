"""Supervised probe: can a model represent a one-step task at all?

Trains `MultimodalModel`'s policy logits with cross-entropy on the env's `oracle_action` over
fresh episodes and measures greedy accuracy on fresh train-split and test-split episodes. PPO
gets far less signal per sample than a labelled answer gives, so a model that cannot reach a goal
here will not reach it with RL either; a model that can tells you the rest is up to the RL
settings. `scripts/probe_supervised.py` is the command-line front end.

Two options turn it into a label-efficiency probe: `labelled=N` trains on one fixed set of N
labelled episodes for as many passes as `samples` allows (what N labels can teach, rather
than what a stream of fresh ones can), and `pretrain` first runs contrastive steps on
unlabelled episodes (`ContrastivePretrain`), the prior a reward model gets before its labels.
"""

from __future__ import annotations

import logging
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal, get_args

import numpy as np
import torch
from ray.rllib.core.columns import Columns

from mmrlhf.envs import EnvConfig, MyMultimodalEnv
from mmrlhf.envs.grammar import RETRIEVAL_I2T, VQA_TEMPLATES
from mmrlhf.models import ModelConfig, MultimodalModel
from mmrlhf.models.contrastive import (
    content_ids,
    info_nce,
    info_nce_from_scores,
    token_match_scores,
)

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


ContrastiveMatch = Literal["pooled", "tokens"]


@dataclass(frozen=True)
class ContrastivePretrain:
    """Contrastive steps on unlabelled episodes before the labels (their answers unused).

    Attributes:
        steps: Optimizer steps (AdamW, the probe's lr and weight decay).
        match: `pooled`: InfoNCE between pooled image and prompt embeddings (what
            `rm_pretrain_steps` does for the reward model); `tokens`: InfoNCE on
            `token_match_scores`, every prompt token matched to its best patch.
        pool: Unlabelled train-split episodes drawn once; batches are drawn from them.
        batch_size: Episodes per step.
        temperature: Softmax temperature.
    """

    steps: int
    match: ContrastiveMatch = "pooled"
    pool: int = 20_000
    batch_size: int = 128
    temperature: float = 0.1

    def __post_init__(self) -> None:
        if self.match not in get_args(ContrastiveMatch):
            raise ValueError(
                f"match must be one of {get_args(ContrastiveMatch)}, got {self.match!r}"
            )
        if self.steps < 0 or self.pool < 2 or self.batch_size < 2 or self.temperature <= 0:
            raise ValueError(
                f"need steps >= 0, pool >= 2, batch_size >= 2 and temperature > 0, got "
                f"{self.steps}, {self.pool}, {self.batch_size} and {self.temperature}"
            )


def pretrain_contrastive(
    model: MultimodalModel,
    env: MyMultimodalEnv,
    settings: ContrastivePretrain,
    optimizer: torch.optim.Optimizer,
) -> list[float]:
    """Align `model`'s image and prompt encoders on unlabelled episodes of `env`.

    Returns:
        The loss of every step.
    """
    pool = oracle_batch(env, settings.pool).obs
    images, texts = pool["image"], pool["text"].long()
    gen = torch.Generator().manual_seed(0)
    size = min(settings.batch_size, settings.pool)
    losses: list[float] = []
    model.train()
    for _ in range(settings.steps):
        idx = torch.randperm(settings.pool, generator=gen)[:size]
        image, text = images[idx], texts[idx]
        text_out, image_out = model.text_encoder(text), model.image_encoder(image)
        ids = {"image_ids": content_ids(image), "text_ids": content_ids(text)}
        if settings.match == "pooled":
            loss = info_nce(image_out.pooled, text_out.pooled, settings.temperature, **ids)
        else:
            scores = token_match_scores(text_out.tokens, text_out.mask, image_out.tokens)
            loss = info_nce_from_scores(scores / settings.temperature, **ids)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(float(loss.detach()))
    return losses


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
    labelled: int | None = None,
    pretrain: ContrastivePretrain | None = None,
    on_point: Callable[[ProbePoint], None] | None = None,
) -> list[ProbePoint]:
    """Train a fresh model on `samples` oracle-labelled episodes; evaluate every `eval_every`.

    By default each training batch is drawn fresh from the train split (no sample is seen
    twice); with `labelled` the batches cycle through one fixed set of that many episodes,
    reshuffled every pass. `pretrain` runs its contrastive steps first, on other unlabelled
    train-split episodes. The evaluation sets are fixed draws from each split. `weight_decay`
    > 0 trains with AdamW, as `training.weight_decay` does for PPO.

    Raises:
        ValueError: For `labelled` < 1.
    """
    if labelled is not None and labelled < 1:
        raise ValueError(f"labelled must be >= 1 (or None for fresh batches), got {labelled}")
    torch.manual_seed(seed)
    train_env = MyMultimodalEnv(env_cfg.model_copy(update={"split": "train"}))
    train_env.reset(seed=seed)
    eval_sets = {}
    for i, split in enumerate(("train", "test")):
        env = MyMultimodalEnv(env_cfg.model_copy(update={"split": split}))
        env.reset(seed=seed + 1 + i)
        eval_sets[split] = oracle_batch(env, eval_size)
    model = build_model(train_env, model_cfg)

    def optimizer() -> torch.optim.Optimizer:
        if weight_decay > 0:
            return torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay)
        return torch.optim.Adam(model.parameters(), lr=lr)

    start = time.perf_counter()
    if pretrain is not None and pretrain.steps > 0:
        pool_env = MyMultimodalEnv(env_cfg.model_copy(update={"split": "train"}))
        pool_env.reset(seed=seed + 1000)
        losses = pretrain_contrastive(model, pool_env, pretrain, optimizer())
        logger.info("contrastive pretraining (%s): loss %.3f -> %.3f over %d steps",
                    pretrain.match, losses[0], losses[-1], len(losses))  # fmt: skip
    fixed = oracle_batch(train_env, labelled) if labelled is not None else None
    order = torch.empty(0, dtype=torch.long)
    opt = optimizer()
    points: list[ProbePoint] = []
    seen, next_eval = 0, eval_every
    while seen < samples:
        if fixed is None:
            data = oracle_batch(train_env, batch_size)
            obs, actions = data.obs, data.actions
        else:
            if len(order) == 0:
                order = torch.randperm(len(fixed.actions))
            idx, order = order[:batch_size], order[batch_size:]
            obs, actions = {k: v[idx] for k, v in fixed.obs.items()}, fixed.actions[idx]
        model.train()
        logits = model.forward_train({Columns.OBS: obs})[Columns.ACTION_DIST_INPUTS]
        loss = torch.nn.functional.cross_entropy(logits, actions)
        opt.zero_grad()
        loss.backward()
        opt.step()
        seen += len(actions)
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
