"""Reward hacking audit: how a reward model scores a policy's own answers against the right one.

Preference accuracy on generated pairs (`feedback.pairs`) measures a reward model on answers
someone chose for it. A policy trained on the model looks for the answers it overrates, and
those can be of a kind no pair showed it: on `rlhf_vqa.yaml`'s task, a reward model at 0.91
`swap` accuracy, frozen, let the policy answer colour words to shape questions, rated as high
as the right answer on 47% of its wrong episodes (docs/architecture.md). This audit plays the
policy on fresh episodes and, on every wrong one, compares the model's reward for the
policy's answer with its reward for the ground truth on the same image and prompt.

`greedy_answers` needs no policy: on a one-step task it scores every answer the env allows
for each fresh scene and asks whether the ground truth comes out on top. That is the accuracy
of the policy PPO is pushed toward when it maximises the model's reward (what KL and entropy
leave aside), so it bounds what RLHF can reach on those scenes; pairwise accuracy does not,
since a model that ranks 0.9 of random pairs right can still rate a few wrong answers above
the right one on most scenes.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import torch

from mmrlhf.envs import MyMultimodalEnv
from mmrlhf.feedback.contrast import PromptBaseline
from mmrlhf.feedback.reward_model import RewardEnsemble
from mmrlhf.feedback.samples import EpisodeSample, encode_response, stack_samples

logger = logging.getLogger(__name__)

Policy = Callable[[Mapping[str, np.ndarray]], int]
SCORE_BATCH = 256  # samples per reward-model call (an even number: answer pairs stay together)


@dataclass
class AuditReport:
    """What `audit_answers` found.

    Attributes:
        episodes: Episodes played.
        accuracy: Fraction the policy got right (`info["success"]`).
        wrong: Episodes it got wrong.
        overrated: Of those, how many the ensemble mean scored at least as high as the ground
            truth answer (a reward the policy can climb without learning the task).
        top_wrong: The most common wrong answers, as (prompt's first two words, answer, count).
    """

    episodes: int
    accuracy: float
    wrong: int
    overrated: int
    top_wrong: list[tuple[str, str, int]] = field(default_factory=list)

    @property
    def overrated_fraction(self) -> float:
        """`overrated / wrong` (0 when nothing was wrong)."""
        return self.overrated / self.wrong if self.wrong else 0.0

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly summary (the fields plus `overrated_fraction`)."""
        return {**asdict(self), "overrated_fraction": self.overrated_fraction}


def audit_answers(
    env: MyMultimodalEnv,
    policy: Policy,
    ensemble: RewardEnsemble,
    *,
    episodes: int = 300,
    seed: int = 50_000,
    top: int = 10,
) -> AuditReport:
    """Play `policy` for `episodes` episodes of `env` (reset seeds `seed`, `seed + 1`, ...) and
    compare the ensemble's reward for each wrong answer with the ground truth's.

    Args:
        env: The env (its task must report `response`, `ground_truth` and `success`).
        policy: Observation -> action (greedy, for a checkpoint).
        ensemble: The reward model, scored in eval mode.
        episodes: Episodes to play (>= 1).
        seed: First reset seed.
        top: Wrong answers to list.

    Raises:
        ValueError: For `episodes < 1`, or a task whose info lacks those keys.
    """
    if episodes < 1:
        raise ValueError(f"episodes must be >= 1, got {episodes}")
    response_len = int(ensemble.spec.response_len)
    wrong_answers: Counter[tuple[str, str]] = Counter()
    # (policy's answer, ground truth) per wrong episode, scored in batches after the loop.
    compared: list[EpisodeSample] = []
    right = 0
    for ep in range(episodes):
        obs, _ = env.reset(seed=seed + ep)
        image, prompt_ids = obs["image"].copy(), obs["text"].copy()
        done = False
        info: dict[str, Any] = {}
        while not done:
            obs, _, terminated, truncated, info = env.step(int(policy(obs)))
            done = terminated or truncated
        missing = [k for k in ("response", "ground_truth", "success") if k not in info]
        if missing:
            raise ValueError(
                f"the audit needs the final info's response, ground_truth and success; "
                f"task {env.cfg.task!r} lacks {missing}"
            )
        if info["success"]:
            right += 1
            continue
        answers = [str(info["response"]), str(info["ground_truth"])]
        compared += [
            EpisodeSample(f"audit-{ep}-{k}", image, prompt_ids,
                          encode_response(env.tokenizer, text, response_len), 0.0)
            for k, text in enumerate(answers)
        ]  # fmt: skip
        question = " ".join(str(info.get("prompt", "")).split()[:2])
        wrong_answers[(question, answers[0])] += 1
    overrated = 0
    for start in range(0, len(compared), SCORE_BATCH):
        mean, _ = ensemble.predict(stack_samples(compared[start : start + SCORE_BATCH]))
        overrated += int((mean[0::2] >= mean[1::2]).sum())
    wrong = episodes - right
    report = AuditReport(
        episodes=episodes,
        accuracy=right / episodes,
        wrong=wrong,
        overrated=overrated,
        top_wrong=[(q, a, n) for (q, a), n in wrong_answers.most_common(top)],
    )
    logger.info("audit: accuracy %.3f, %d of %d wrong answers rated >= the right one",
                report.accuracy, overrated, wrong)  # fmt: skip
    return report



@dataclass
class GreedyReport:
    """What `greedy_answers` found.

    Attributes:
        episodes: Scenes scored.
        accuracy: Fraction whose ground truth outscored every other answer (ensemble mean).
        mean_rank: Mean number of other answers scored at least as high as the ground truth
            (0 = always on top).
        by_kind: Accuracy per question type (vqa) or per task, for the kinds seen.
        by_truth: Accuracy per right answer: which answers the model has learnt, and which
            it never puts on top (an answer no label showed right).
        optimistic_accuracy: The same with each answer scored by its upper bound (ensemble
            mean + std): how often a query that asks about the most hopeful answer would ask
            about the right one.
        optimistic_by_truth: `optimistic_accuracy` per right answer.
    """

    episodes: int
    accuracy: float
    mean_rank: float
    by_kind: dict[str, float] = field(default_factory=dict)
    by_truth: dict[str, float] = field(default_factory=dict)
    optimistic_accuracy: float = 0.0
    optimistic_by_truth: dict[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly summary."""
        return asdict(self)


def greedy_answers(
    env: MyMultimodalEnv,
    ensemble: RewardEnsemble,
    *,
    episodes: int = 300,
    seed: int = 60_000,
    baseline: PromptBaseline | None = None,
) -> GreedyReport:
    """Score every allowed answer of `episodes` fresh scenes (reset seeds `seed`, `seed + 1`,
    ...) and count the scenes whose ground truth the ensemble rates strictly best.

    Each action is played from the same seeded reset, so every answer is scored on the same
    image and prompt, as the response text the env reports for it. With an active
    `baseline` the scores are the image-contrasted rewards a policy is paid
    (`feedback.contrast`).

    Raises:
        ValueError: For `episodes < 1`, or a task whose episodes last more than one step.
    """
    if episodes < 1:
        raise ValueError(f"episodes must be >= 1, got {episodes}")
    response_len = int(ensemble.spec.response_len)
    n_actions = int(env.action_space.n)
    ranks: list[int] = []
    # Per scene: question type, right answer, and whether the right answer is strictly on
    # top by the upper bound (mean + std).
    kinds: list[str] = []
    truths: list[str] = []
    hopeful: list[bool] = []
    for ep in range(episodes):
        answers: dict[str, EpisodeSample] = {}  # response text -> sample (actions may share one)
        truth, kind = "", env.cfg.task
        for action in range(n_actions):
            obs, _ = env.reset(seed=seed + ep)
            image, prompt_ids = obs["image"].copy(), obs["text"].copy()
            _, _, terminated, truncated, info = env.step(action)
            if not (terminated or truncated):
                raise ValueError(
                    f"greedy_answers scores one-step tasks (vqa, retrieval, dataset); "
                    f"task {env.cfg.task!r} went on after its first step"
                )
            truth, kind = str(info["ground_truth"]), str(info.get("question_type", kind))
            text = str(info["response"])
            answers.setdefault(text, EpisodeSample(
                f"greedy-{ep}-{action}", image, prompt_ids,
                encode_response(env.tokenizer, text, response_len), float(info["score"]),
            ))  # fmt: skip
        samples = list(answers.values())
        minus = None if baseline is None else baseline.amounts(samples)
        batch = stack_samples(samples)
        mean, std = ensemble.predict(batch) if minus is None else ensemble.predict(batch, minus)
        # The ground truth is the answer that scores 1; other answers may score in between.
        right = int(np.argmax([s.score for s in samples]))
        if samples[right].score < 1.0:
            raise ValueError(f"no answer to scene {seed + ep} scores 1 (ground truth {truth!r})")
        ranks.append(_others_at_least(mean, right))
        kinds.append(kind)
        truths.append(list(answers)[right])
        hopeful.append(_others_at_least(mean + std, right) == 0)
    on_top = [r == 0 for r in ranks]
    report = GreedyReport(
        episodes=episodes,
        accuracy=float(np.mean(on_top)),
        mean_rank=float(np.mean(ranks)),
        by_kind=_rate_by(kinds, on_top),
        by_truth=_rate_by(truths, on_top),
        optimistic_accuracy=float(np.mean(hopeful)),
        optimistic_by_truth=_rate_by(truths, hopeful),
    )
    logger.info("greedy answers: the right one on top in %.3f of %d scenes (mean rank %.2f)",
                report.accuracy, episodes, report.mean_rank)  # fmt: skip
    return report


def _others_at_least(scores: torch.Tensor, right: int) -> int:
    """How many answers other than `right` score at least as high as it (0 = strictly on top)."""
    return int((scores >= scores[right]).sum()) - 1


def _rate_by(keys: Sequence[str], hits: Sequence[bool]) -> dict[str, float]:
    """The fraction of hits per key, keys sorted."""
    groups: dict[str, list[bool]] = {}
    for key, hit in zip(keys, hits, strict=True):
        groups.setdefault(key, []).append(hit)
    return {k: float(np.mean(v)) for k, v in sorted(groups.items())}
