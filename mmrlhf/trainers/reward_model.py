"""Reward-model tasks outside a PPO run (what `mmrlhf reward-model ...` calls).

- `make_pairs`: write held-out oracle-ordered pairs of an env to a `.npz` file;
- `train_reward_model`: fit a reward model to oracle pairs offline and save a checkpoint
  (usable as `feedback.rm_checkpoint` to start RLHF from it);
- `evaluate_reward_model`: preference accuracy of a saved reward model on labelled pairs
  (from a pairs file, or generated from an env / experiment config);
- `audit_reward_model`: how a saved reward model scores a trained policy's wrong answers
  against the right ones (`feedback.audit`).
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Collection, Mapping
from pathlib import Path
from typing import Any

from mmrlhf.envs.config import EnvConfig
from mmrlhf.feedback.config import FeedbackConfig
from mmrlhf.feedback.label_log import load_label_log
from mmrlhf.feedback.pairs import (
    Distractor,
    load_pairs,
    oracle_pairs,
    random_episodes,
    save_pairs,
)
from mmrlhf.feedback.preferences import PreferenceLabel, strict_winners
from mmrlhf.feedback.reward_model import RewardEnsemble, load_reward_model, save_reward_model
from mmrlhf.feedback.rlhf import spec_for_sample, trainer_settings
from mmrlhf.feedback.rm_trainer import RewardModelTrainer
from mmrlhf.feedback.samples import EpisodeSample

logger = logging.getLogger(__name__)

PairsSource = str | Path | EnvConfig | Mapping[str, Any]
# Seed offset of generated evaluation pairs, far from the training pairs' seeds.
EVAL_SEED = 10_000


def env_config_from(source: str | Path | EnvConfig | Mapping[str, Any]) -> EnvConfig:
    """An `EnvConfig` from itself, a mapping of its fields, or an experiment YAML (its `env`)."""
    if isinstance(source, EnvConfig):
        return source
    if isinstance(source, Mapping):
        return EnvConfig.from_mapping(source)
    from mmrlhf.config import load_config

    return load_config(source).env


def _pairs(
    source: PairsSource, n_pairs: int, *, seed: int, response_len: int, distractor: Distractor
) -> tuple[list[EpisodeSample], list[PreferenceLabel]]:
    if isinstance(source, str | Path) and Path(source).suffix == ".npz":
        samples, labels = load_pairs(source)
        if n_pairs < len(labels):
            labels = labels[:n_pairs]
            keep = {i for lab in labels for i in lab.episode_ids}
            samples = [s for s in samples if s.episode_id in keep]
        return samples, labels
    return oracle_pairs(
        env_config_from(source), n_pairs, seed=seed, response_len=response_len,
        distractor=distractor,
    )  # fmt: skip


def make_pairs(
    env: str | Path | EnvConfig | Mapping[str, Any],
    out: str | Path,
    *,
    n_pairs: int = 500,
    seed: int = EVAL_SEED,
    response_len: int = 8,
    distractor: Distractor = "random",
) -> dict[str, Any]:
    """Write `n_pairs` oracle-ordered pairs of `env` to `out` (.npz); return a summary
    (`distractor`: see `feedback.pairs`)."""
    samples, labels = oracle_pairs(
        env_config_from(env), n_pairs, seed=seed, response_len=response_len,
        distractor=distractor,
    )  # fmt: skip
    path = save_pairs(out, samples, labels)
    return {"pairs": len(labels), "path": str(path)}


def evaluate_reward_model(
    checkpoint: str | Path,
    pairs: PairsSource,
    n_pairs: int = 500,
    *,
    seed: int = EVAL_SEED,
    distractor: Distractor = "random",
    split: str | None = None,
    greedy_episodes: int = 0,
) -> dict[str, Any]:
    """Preference accuracy of a saved reward model on held-out labelled pairs.

    Args:
        checkpoint: A directory written by `save_reward_model` (e.g. `feedback.rm_save_dir`).
        pairs: A `.npz` pairs file (`make_pairs`), or an env to generate pairs from: an
            `EnvConfig`, a mapping of its fields, or an experiment YAML path.
        n_pairs: Pairs to use (generated, or the first of the file).
        seed: Seed of generated pairs (default far from training seeds).
        distractor: The generated pairs' worse answer: `random` (easy) or `swap` (the right
            answer for another image with the same prompt; see `feedback.pairs`).
        split: The env split to draw from (default: the env's own); not for a pairs file.
        greedy_episodes: If > 0, also score every answer of that many fresh scenes of the env
            (`feedback.audit.greedy_answers`, one-step tasks): `greedy` holds how often the
            right answer comes out on top, what a policy maximising this model would score
            (under the image-contrasted reward when the checkpoint has a prompt baseline,
            `feedback.contrast`; then `greedy_plain` holds the plain model's).

    Returns:
        `preference_accuracy` (fraction of pairs whose preferred episode gets the higher
        ensemble-mean reward; equal rewards count half), `pairs`, `mean_uncertainty`
        (ensemble std), the checkpoint's `version` and `labels`, and `greedy` if asked for.

    Raises:
        ValueError: For `split` or `greedy_episodes` with a pairs file (they need an env).
    """
    is_file = isinstance(pairs, str | Path) and Path(pairs).suffix == ".npz"
    if is_file and (split is not None or greedy_episodes > 0):
        raise ValueError(
            f"split and greedy_episodes draw fresh scenes from an env; {pairs} is a pairs "
            "file: pass an experiment YAML or an EnvConfig instead"
        )
    if split is not None:
        pairs = env_config_from(pairs).model_copy(update={"split": split})
    ensemble, meta = load_reward_model(checkpoint)
    samples, labels = _pairs(
        pairs, n_pairs, seed=seed, response_len=int(meta["spec"]["response_len"]),
        distractor=distractor,
    )  # fmt: skip
    trainer = RewardModelTrainer(ensemble)
    trainer.samples = {s.episode_id: s for s in samples}
    result = trainer.evaluate(labels)
    std = trainer.rewards(samples).std(dim=0, unbiased=False)
    metrics: dict[str, Any] = {
        "preference_accuracy": result["accuracy"],
        "pairs": result["pairs"],
        "mean_uncertainty": float(std.mean()) if len(samples) else math.nan,
        "distractor": distractor,
        "version": meta.get("version"),
        "labels": meta.get("labels"),
        "checkpoint": str(checkpoint),
    }
    if split is not None:
        metrics["split"] = split
    if greedy_episodes > 0:
        from mmrlhf.envs import MyMultimodalEnv
        from mmrlhf.feedback.audit import greedy_answers
        from mmrlhf.feedback.contrast import load_prompt_baseline

        env = MyMultimodalEnv(env_config_from(pairs))  # type: ignore[arg-type]
        baseline = load_prompt_baseline(checkpoint)
        metrics["greedy"] = greedy_answers(
            env, ensemble, episodes=greedy_episodes, baseline=baseline
        ).to_dict()
        if baseline.active:
            # What the model ranks before the contrast, for comparison with plain runs.
            metrics["greedy_plain"] = greedy_answers(
                env, ensemble, episodes=greedy_episodes
            ).to_dict()
    return metrics


def train_reward_model(
    env: str | Path | EnvConfig | Mapping[str, Any],
    out: str | Path,
    *,
    feedback: FeedbackConfig | None = None,
    n_pairs: int = 500,
    rounds: int = 5,
    seed: int = 0,
    distractor: Distractor = "random",
    unlabeled: int = 0,
    label_log: str | Path | None = None,
    never_right: Collection[str] = (),
) -> dict[str, Any]:
    """Fit a reward model to `n_pairs` oracle pairs of `env` (or to a saved label log) and
    save it to `out`.

    Args:
        env: The env (see `evaluate_reward_model`).
        out: Checkpoint directory.
        feedback: Architecture and optimisation settings (the `rm_*` fields, including
            `rm_pretrain_steps` contrastive steps first); default `FeedbackConfig()`.
        n_pairs: Training pairs.
        rounds: `train()` calls (each `rm_epochs` passes over the pairs).
        seed: Seeds pairs and model.
        distractor: The pairs' worse answer (see `feedback.pairs`).
        unlabeled: Extra random-policy episodes for the contrastive pretraining steps
            (`rm_pretrain_steps`), which also use the pairs' own episodes.
        label_log: Fit the labels of this `feedback.rm_label_log` directory (an online run's,
            in the order they came) instead of fresh oracle pairs; `n_pairs` and
            `distractor` are then unused.
        never_right: Responses no label may show right: labels whose strict winner gave
            one of them are left out (they still appear as losers). This is what an online
            run's labels look like when the policy stopped giving an answer before a label
            showed it right; `greedy_answers`' `by_truth` then says whether the model
            learns those answers anyway.

    Returns:
        A summary with the training accuracy and the checkpoint path.
    """
    cfg = feedback or FeedbackConfig()
    env_cfg = env_config_from(env)
    if label_log is not None:
        labels, by_id = load_label_log(label_log)
        samples = list(by_id.values())
    else:
        samples, labels = oracle_pairs(
            env_cfg, n_pairs, seed=seed, response_len=cfg.rm_response_len, distractor=distractor
        )
    dropped = 0
    if never_right:
        response = {s.episode_id: s.response for s in samples}
        hidden = set(never_right)
        kept = [lab for lab in labels if not hidden & {response[w] for w in strict_winners([lab])}]
        dropped, labels = len(labels) - len(kept), kept
        logger.info("left out %d labels that showed one of %s right", dropped, sorted(hidden))
    from mmrlhf.envs import MyMultimodalEnv

    spec = spec_for_sample(
        cfg, samples[0], vocab_size=int(MyMultimodalEnv(env_cfg).tokenizer.vocab_size)
    )
    trainer = RewardModelTrainer(RewardEnsemble(spec, seed=seed), trainer_settings(cfg))
    trainer.add_labels(labels, {s.episode_id: s for s in samples})
    started = time.monotonic()
    if cfg.rm_pretrain_steps:
        extra = random_episodes(env_cfg, unlabeled, seed=seed, response_len=cfg.rm_response_len)
        trainer.pretrain(samples + extra, cfg.rm_pretrain_steps)
    losses = [trainer.train()["loss"] for _ in range(rounds)]
    mean = trainer.rewards(samples).mean(dim=0)
    norm = (float(mean.mean()), max(float(mean.std(unbiased=False)), 1e-3))
    accuracy = trainer.evaluate(labels)["accuracy"]
    path = save_reward_model(
        out, trainer.ensemble, version=1, norm=norm,
        extra={"labels": len(labels), "train_accuracy": accuracy},
    )  # fmt: skip
    return {
        "checkpoint": str(path),
        "pairs": len(labels),
        "left_out_never_right": dropped,
        "train_accuracy": accuracy,
        "loss": losses[-1],
        "pretrain_steps": trainer.pretrain_steps,
        "passes": trainer.passes,
        "train_s": time.monotonic() - started,
    }


def audit_reward_model(
    checkpoint: str | Path,
    policy: str | Path,
    *,
    episodes: int = 300,
    split: str = "train",
    seed: int = 50_000,
) -> dict[str, Any]:
    """Play a policy checkpoint greedily and audit a saved reward model on its answers.

    Args:
        checkpoint: Reward-model directory (`save_reward_model`, e.g. `feedback.rm_save_dir`).
        policy: A training checkpoint (`mmrlhf train`'s `checkpoints/iter_*`); its experiment
            config gives the env.
        episodes: Fresh episodes to play.
        split: Env split (`train` or `test`).
        seed: First reset seed.

    Returns:
        `AuditReport.to_dict()` plus the checkpoints, split and reward-model version.
    """
    import numpy as np

    from mmrlhf.envs import MyMultimodalEnv
    from mmrlhf.feedback.audit import audit_answers
    from mmrlhf.trainers.evaluate import config_for_checkpoint, load_module, policy_logits

    ensemble, meta = load_reward_model(checkpoint)
    cfg = config_for_checkpoint(policy)
    module = load_module(policy)
    env = MyMultimodalEnv(cfg.env.model_copy(update={"split": split}))

    def act(obs: Mapping[str, Any]) -> int:
        return int(np.argmax(policy_logits(module, obs)))  # greedy, as `mmrlhf eval`

    report = audit_answers(env, act, ensemble, episodes=episodes, seed=seed)
    return {
        **report.to_dict(),
        "split": split,
        "policy": str(policy),
        "checkpoint": str(checkpoint),
        "version": meta.get("version"),
    }
