"""The reward-hacking audit (`feedback.audit`): a policy's wrong answers against the right ones,
and every answer of a scene ranked by the model."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pytest
import torch

from mmrlhf.envs import MyMultimodalEnv
from mmrlhf.feedback.audit import audit_answers, greedy_answers
from mmrlhf.feedback.config import FeedbackConfig
from mmrlhf.feedback.reward_model import RewardEnsemble
from mmrlhf.feedback.rlhf import make_spec
from mmrlhf.feedback.samples import SampleTensors
from tests.rlhf.conftest import TINY_RM

ENV = {"task": "vqa", "num_objects": 1, "question_types": ["color"], "image_size": 16}


class ScoresByAnswer(RewardEnsemble):
    """A stand-in reward model: the reward is `+1` for response token `liked`, else `-1`."""

    def __init__(self, env: MyMultimodalEnv, liked: int) -> None:
        cfg = FeedbackConfig(**TINY_RM)
        obs, _ = env.reset(seed=0)
        super().__init__(make_spec(cfg, image_size=16, prompt_len=int(obs["text"].shape[0]),
                                   vocab_size=env.tokenizer.vocab_size))  # fmt: skip
        self.liked = liked

    def predict(self, batch: SampleTensors) -> tuple[torch.Tensor, torch.Tensor]:
        mean = torch.where(batch.response[:, 0] == self.liked, 1.0, -1.0)
        return mean, torch.zeros_like(mean)


def answer(env: MyMultimodalEnv, word: str) -> int:
    return next(a for a in range(env.action_space.n) if env.task.action_name(a) == word)


def test_an_oracle_policy_has_nothing_to_audit() -> None:
    env = MyMultimodalEnv(ENV)
    oracle = {"action": 0}

    def act(obs: Mapping[str, np.ndarray]) -> int:
        return oracle["action"]

    # The oracle action comes with reset's info; replay it through a wrapper of reset.
    reset = env.reset

    def reset_and_remember(**kw: object) -> tuple[dict, dict]:
        obs, info = reset(**kw)
        oracle["action"] = int(info["oracle_action"])
        return obs, info

    env.reset = reset_and_remember  # type: ignore[method-assign]
    report = audit_answers(env, act, ScoresByAnswer(env, liked=1), episodes=20)
    assert report.accuracy == 1.0 and report.wrong == 0 and report.overrated == 0
    assert report.overrated_fraction == 0.0 and report.top_wrong == []


def test_wrong_answers_are_counted_and_compared_with_the_right_one() -> None:
    env = MyMultimodalEnv(ENV)
    red = answer(env, "red")
    red_token = env.tokenizer.encode("red", 1)[0]

    def always_red(obs: Mapping[str, np.ndarray]) -> int:
        return red

    liked_red = audit_answers(env, always_red, ScoresByAnswer(env, liked=red_token),
                              episodes=60)  # fmt: skip
    assert 0 < liked_red.wrong < 60  # red is right on about 1 scene in 6
    assert liked_red.accuracy == pytest.approx(1 - liked_red.wrong / 60)
    # The model prefers "red" to every other colour: each wrong "red" is overrated.
    assert liked_red.overrated == liked_red.wrong and liked_red.overrated_fraction == 1.0
    assert liked_red.top_wrong == [("what color", "red", liked_red.wrong)]
    # A model that likes "blue" rates "red" below the right answer where that is blue, and
    # equal to it elsewhere (a tie counts as overrated: the policy loses nothing by it).
    other = env.tokenizer.encode("blue", 1)[0]
    disliked = audit_answers(env, always_red, ScoresByAnswer(env, liked=other), episodes=60)
    assert disliked.wrong == liked_red.wrong
    assert disliked.overrated < disliked.wrong


def test_the_audit_refuses_bad_arguments() -> None:
    env = MyMultimodalEnv(ENV)
    with pytest.raises(ValueError, match="episodes must be >= 1"):
        audit_answers(env, lambda obs: 0, ScoresByAnswer(env, liked=1), episodes=0)


class KnowsTheAnswers(ScoresByAnswer):
    """A stand-in reward model that looked the right answers up: +1 for the ground truth's
    first token on a scene it knows, -1 for anything else."""

    def __init__(self, env: MyMultimodalEnv, seeds: range) -> None:
        super().__init__(env, liked=-1)
        self.truth: dict[bytes, int] = {}
        for seed in seeds:
            obs, info = env.reset(seed=seed)
            info = env.step(int(info["oracle_action"]))[-1]
            key = obs["image"].tobytes() + obs["text"].tobytes()
            self.truth[key] = env.tokenizer.encode(info["ground_truth"], 1)[0]

    def predict(self, batch: SampleTensors) -> tuple[torch.Tensor, torch.Tensor]:
        keys = [i.numpy().tobytes() + p.numpy().tobytes()
                for i, p in zip(batch.image, batch.prompt, strict=True)]  # fmt: skip
        liked = torch.tensor([self.truth.get(k, -1) for k in keys])
        mean = torch.where(batch.response[:, 0] == liked, 1.0, -1.0)
        return mean, torch.zeros_like(mean)


def test_greedy_answers_of_a_model_that_knows_them_are_all_right() -> None:
    # 32 px: at 16 some small shapes render alike, and one image would need two answers.
    env = MyMultimodalEnv({**ENV, "question_types": ["color", "shape"], "image_size": 32})
    report = greedy_answers(env, KnowsTheAnswers(env, range(100, 140)), episodes=40, seed=100)
    assert report.accuracy == 1.0 and report.mean_rank == 0.0
    assert report.by_kind == {"color": 1.0, "shape": 1.0}
    assert set(report.by_truth.values()) == {1.0} and len(report.by_truth) > 4
    # Scenes it has not seen: every answer scores -1, a 28-way tie, so none is on top.
    unseen = greedy_answers(env, KnowsTheAnswers(env, range(0)), episodes=5, seed=100)
    assert unseen.accuracy == 0.0 and unseen.mean_rank == env.action_space.n - 1


def test_greedy_answers_of_a_model_that_always_likes_red() -> None:
    env = MyMultimodalEnv(ENV)
    red_token = env.tokenizer.encode("red", 1)[0]
    report = greedy_answers(env, ScoresByAnswer(env, liked=red_token), episodes=60, seed=7)
    red_scenes = 0
    for ep in range(60):
        _, info = env.reset(seed=7 + ep)
        red_scenes += env.step(int(info["oracle_action"]))[-1]["ground_truth"] == "red"
    assert 0 < red_scenes < 60
    assert report.accuracy == pytest.approx(red_scenes / 60)
    # Per right answer: red scenes always right, every other answer's scenes never.
    assert report.by_truth.pop("red") == 1.0
    assert report.by_truth and set(report.by_truth.values()) == {0.0}
    # Where red is wrong it outscores the truth, and the other answers tie with it.
    assert report.mean_rank == pytest.approx((1 - red_scenes / 60) * (env.action_space.n - 1))


def test_greedy_answers_refuse_multi_step_tasks() -> None:
    env = MyMultimodalEnv({"task": "caption", "image_size": 16})
    with pytest.raises(ValueError, match="one-step tasks"):
        greedy_answers(env, ScoresByAnswer(MyMultimodalEnv(ENV), liked=1), episodes=1)
    with pytest.raises(ValueError, match="episodes must be >= 1"):
        greedy_answers(env, ScoresByAnswer(MyMultimodalEnv(ENV), liked=1), episodes=0)
