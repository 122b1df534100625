"""Floor challengers picked by the label-free image-answer match: naming prompts, the
matcher's scores, the query choice, and the hub's use of the contrastive (anchor) weights."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch

from mmrlhf.config import ExperimentConfig
from mmrlhf.feedback.config import FeedbackConfig
from mmrlhf.feedback.matching import AnswerMatcher, naming_prompts, prompt_words
from mmrlhf.feedback.novelty import judgement_key
from mmrlhf.feedback.queries import novel_queries
from mmrlhf.feedback.reward_model import RewardEnsemble, RewardModelSpec
from mmrlhf.feedback.rlhf import RLHFState
from mmrlhf.feedback.samples import EpisodeSample
from tests.rlhf.conftest import TINY_RM, make_sample


def _vqa_like(episode_id: str, prompt: str, response: str, *, seed: int) -> EpisodeSample:
    """A tiny sample whose decoded prompt and response read like vqa's."""
    ids = {"red": 4, "blue": 5, "circle": 6, "square": 7}  # the prompt's token: its object
    named = next(w for w in prompt.split() if w in ids)
    sample = make_sample(episode_id, seed=seed, prompt=ids[named], response=ids.get(response, 9))
    return replace(sample, prompt=prompt, response=response)


RED_Q = "what shape is the red object ?"
CIRCLE_Q = "what color is the circle ?"


def test_each_word_gets_the_first_prompt_that_names_it() -> None:
    red = _vqa_like("a", RED_Q, "circle", seed=0)
    circle = _vqa_like("b", CIRCLE_Q, "red", seed=1)
    again = _vqa_like("c", RED_Q, "square", seed=2)
    assert prompt_words(RED_Q) == {"what", "shape", "is", "the", "red", "object"}
    found = naming_prompts([red, circle, again], ("red", "circle", "blue"))
    assert set(found) == {"red", "circle"}  # nothing names blue: left out, not guessed
    assert found["red"] is red.prompt_ids and found["circle"] is circle.prompt_ids
    assert {"what", "object", "red", "circle"} <= set(naming_prompts([red, circle]))


def test_a_response_is_matched_through_the_prompts_naming_its_words(
    tiny_spec: RewardModelSpec,
) -> None:
    samples = [_vqa_like("a", RED_Q, "circle", seed=0), _vqa_like("b", CIRCLE_Q, "red", seed=1),
               _vqa_like("c", CIRCLE_Q, "yes", seed=2),
               _vqa_like("d", RED_Q, "red", seed=3)]  # fmt: skip
    matcher = AnswerMatcher(RewardEnsemble(tiny_spec, seed=0))
    naming = naming_prompts(samples)
    match = matcher.response_match(samples, naming)
    images = torch.from_numpy(np.stack([s.image for s in samples]))
    # "circle" is matched with the circle question, "red" with the red one
    assert match[0] == pytest.approx(matcher.similarity(images[:1], naming["circle"])[0])
    assert match[1] == pytest.approx(matcher.similarity(images[1:2], naming["red"])[0])
    assert np.isnan(match[2])  # no prompt names "yes": the matcher has nothing to say
    # "red" to the question about the red object: its scene holds red whatever the answer
    assert np.isnan(match[3])
    assert np.all(np.abs(match[:2]) <= 1.0)  # cosines
    assert matcher.response_match([], naming).shape == (0,)


def _floor(samples: list[EpisodeSample], drawn: set[str]) -> list[EpisodeSample]:
    return [replace(s, floor_share=1.0 if s.episode_id in drawn else 0.0) for s in samples]


def _pool() -> list[EpisodeSample]:
    """Two prompts: the floor drew answer 5 on each (a-2; b-1 and b-3) and answer 3 (a-0),
    which the labels have judged more often."""
    a = [make_sample(f"a-{i}", seed=i, prompt=1, response=r) for i, r in enumerate([3, 4, 5, 6])]
    b = [make_sample(f"b-{i}", seed=9 + i, prompt=2, response=r)
         for i, r in enumerate([4, 5, 6, 5, 7])]  # fmt: skip
    return _floor(a + b, {"a-0", "a-2", "b-1", "b-3"})


def _first(samples: list[EpisodeSample], match: dict[str, float] | None,
           seed: int = 0) -> list[EpisodeSample]:  # fmt: skip
    judged = {judgement_key(samples[0]): 3}  # answer 3 judged thrice, 5 never
    partner_scores = {"b-4": 2.0, "b-2": 1.0, "a-3": 2.0}

    def score(batch: list[EpisodeSample]) -> np.ndarray:
        return np.array([[partner_scores.get(s.episode_id, 0.0) for s in batch]] * 2)

    match_fn = None
    if match is not None:
        match_fn = lambda b: np.array([match.get(s.episode_id, np.nan) for s in b])  # noqa: E731
    (query,) = novel_queries(samples, 1, k=2, rng=np.random.default_rng(seed), score_fn=score,
                             judged=judged, challengers="floor", match_fn=match_fn)  # fmt: skip
    return query


def test_the_matched_challenger_is_the_best_fitting_draw_of_the_least_judged_answer() -> None:
    """Answer 5 (never judged) beats answer 3 whichever prompt is drawn; of its three draws,
    on two prompts, the matcher's favourite is the challenger, and its own prompt's best
    bet the partner."""
    samples = _pool()
    for seed in range(10):
        query = _first(samples, {"a-2": 0.1, "b-1": -0.4, "b-3": 0.7}, seed=seed)
        assert [s.episode_id for s in query] == ["b-3", "b-4"]
        query = _first(samples, {"a-2": 0.9, "b-1": -0.4, "b-3": 0.7}, seed=seed)
        assert [s.episode_id for s in query] == ["a-2", "a-3"]


def test_without_an_opinion_the_matched_challenger_is_any_draw_of_the_answer() -> None:
    samples = _pool()
    firsts = {_first(samples, {}, seed=seed)[0].episode_id for seed in range(30)}
    assert firsts == {"a-2", "b-1", "b-3"}  # all NaN: at random among answer 5's draws
    # unmatched, a prompt is drawn first and its least-judged floor draw taken: never a-0
    plain = {_first(samples, None, seed=seed)[0].episode_id for seed in range(30)}
    assert "a-0" not in plain and plain <= {"a-2", "b-1", "b-3"}


def test_a_match_needs_floor_challengers() -> None:
    with pytest.raises(ValueError, match="needs challengers='floor', got 'any'"):
        novel_queries(_pool(), 1, k=2, rng=np.random.default_rng(0),
                      score_fn=lambda b: np.zeros((1, len(b))), judged={},
                      match_fn=lambda b: np.zeros(len(b)))  # fmt: skip


def test_the_match_setting_is_checked() -> None:
    base = {"enabled": True, "source": "reward_model", "query_mode": "novel",
            "query_challengers": "floor", "query_challenger_match": True}  # fmt: skip
    with pytest.raises(ValueError, match=r"rm_pretrain_steps > 0 \(got 0\)"):
        FeedbackConfig(**base)
    with pytest.raises(ValueError, match="query_challengers=floor \\(got 'any'\\)"):
        FeedbackConfig(**{**base, "query_challengers": "any", "rm_pretrain_steps": 10})
    cfg = ExperimentConfig.model_validate(
        {"feedback": {**base, "rm_pretrain_steps": 10}, "model": {"policy_floor": 0.3}}
    )
    assert cfg.feedback.query_challenger_match


def test_the_hub_matches_with_the_contrastive_weights_once_they_are_done(
    tiny_spec: RewardModelSpec,
) -> None:
    """No match before the contrastive steps end; after, the matcher holds the weights they
    left (the anchor), and label training does not move its scores."""
    config = FeedbackConfig(
        enabled=True, source="reward_model", query_mode="novel", query_challengers="floor",
        query_challenger_match=True, rm_pretrain_steps=4, rm_pretrain_per_iter=2,
        rm_pretrain_min_pool=4, rm_contrastive_batch=4, **TINY_RM,
    )  # fmt: skip
    state = RLHFState(config)
    pool = [_vqa_like(f"e{i}", (RED_Q, CIRCLE_Q)[i % 2], ("red", "circle")[i // 2 % 2], seed=i)
            for i in range(12)]  # fmt: skip
    state.add_episodes(pool, tiny_spec)
    assert state.pretrain_round() == 2
    assert state._match_fn(pool) is None  # two of four contrastive steps: no anchor yet
    assert state.pretrain_round() == 2
    trainer = state.trainer
    assert trainer is not None and trainer.anchor is not None
    match_fn = state._match_fn(pool)
    assert match_fn is not None
    expected = AnswerMatcher.from_weights(tiny_spec, trainer.anchor).response_match(
        pool, naming_prompts(pool)
    )
    np.testing.assert_allclose(match_fn(pool), expected, rtol=1e-6)
    with torch.no_grad():  # label training moves the reward model, not the matcher
        for p in trainer.ensemble.parameters():
            p.add_(0.5)
    np.testing.assert_allclose(match_fn(pool), expected, rtol=1e-6)
