"""Floor challengers at unexplained scenes (`query_challenger_scenes="unexplained"`): the
least-judged answer, at the floor draw whose scene the answers shown right fit least."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import numpy as np
import pytest
import torch
from pydantic import ValidationError

from mmrlhf.feedback.config import FeedbackConfig
from mmrlhf.feedback.contrast import known_answer_fit
from mmrlhf.feedback.novelty import JudgedCounts, judgement_key, prompt_answer_key
from mmrlhf.feedback.preferences import PreferenceLabel
from mmrlhf.feedback.queries import SceneFitFn, novel_queries, select_queries
from mmrlhf.feedback.reward_model import RewardEnsemble, RewardModelSpec
from mmrlhf.feedback.rlhf import RLHFState
from mmrlhf.feedback.samples import EpisodeSample, stack_samples
from tests.rlhf.conftest import TINY_RM, answer_head_spec, make_sample


def _floor(sample: EpisodeSample) -> EpisodeSample:
    return replace(sample, floor_share=1.0)


def _pool() -> list[EpisodeSample]:
    """Two prompts. Floor draws: answer 5 on four scenes (two per prompt), answer 6 on one
    (prompt 1); the policy's own answers (the partners): 3, 4 and 7 to prompt 1, 3 and 4 to
    prompt 2."""
    out = []
    for prompt, own in ((1, (3, 4, 7)), (2, (3, 4))):
        out += [make_sample(f"own{prompt}-{r}", prompt=prompt, response=r, seed=10 * prompt + r)
                for r in own]  # fmt: skip
        out += [_floor(make_sample(f"five{prompt}-{j}", prompt=prompt, response=5,
                                   seed=100 * prompt + j)) for j in range(2)]  # fmt: skip
    out.append(_floor(make_sample("six", prompt=1, response=6, seed=7)))
    return out


def _fit_table(table: dict[str, float]) -> tuple[SceneFitFn, list[list[str]]]:
    """A scene fit read from `table` (0 elsewhere), and the batches it was asked about."""
    asked: list[list[str]] = []

    def fit(batch: list[EpisodeSample]) -> np.ndarray:
        asked.append([s.episode_id for s in batch])
        return np.array([table.get(s.episode_id, 0.0) for s in batch])

    return fit, asked


def test_the_challenger_is_the_least_judged_answer_where_the_known_answers_fit_least() -> None:
    pool = _pool()
    keys = {int(s.response_ids[0]): judgement_key(s) for s in pool}
    bets = {"own2-4": 3.0, "own1-3": 2.0}

    def score(batch: list[EpisodeSample]) -> np.ndarray:
        return np.array([[bets.get(s.episode_id, 0.0) for s in batch]] * 2)

    fit, asked = _fit_table({"five1-0": 0.5, "five1-1": 0.2, "five2-0": -1.0, "five2-1": 0.9,
                             "six": -5.0})  # fmt: skip
    judged = {keys[5]: 1, keys[6]: 4}

    def ask(n: int, scene_fit: SceneFitFn = fit, **kw: Any) -> list[list[str]]:
        queries = novel_queries(pool, n, k=2, rng=np.random.default_rng(0), score_fn=score,
                                judged=judged, challengers="floor", give_up=10,
                                scene_fit=scene_fit, **kw)  # fmt: skip
        return [[s.episode_id for s in q] for q in queries]

    # Answer 6 fits worst of all, but answer 5 is judged less: 5, at its least explained
    # scene (prompt 2), against that prompt's best bet.
    assert ask(1) == [["five2-0", "own2-4"]]
    assert sorted(asked[0]) == sorted(s.episode_id for s in pool if s.floor_drawn)  # one call
    # Each challenger counts as judged once more within the round: 5 at its next least
    # explained scenes until it ties with 6 (judged 4); then the least explained of both
    # answers' scenes goes first.
    assert [q[0] for q in ask(5)] == ["five2-0", "five1-1", "five1-0", "six", "five2-1"]
    # An answer shown right leaves the rotation: only 6 is left
    assert [q[0] for q in ask(3, shown_right={keys[5]: 1})] == ["six"]
    # select_queries passes it on
    picked = select_queries(pool, 1, mode="novel", rng=np.random.default_rng(0), score_fn=score,
                            judged=judged, challengers="floor", give_up=10, scene_fit=fit)
    assert [s.episode_id for s in picked[0]] == ["five2-0", "own2-4"]
    with pytest.raises(ValueError, match=r"scene_fit must return one value per sample"):
        ask(1, scene_fit=lambda batch: np.zeros(len(batch) + 1))


def test_spread_questions_discount_scenes_of_questions_where_the_answer_failed() -> None:
    """Answer 5 has failed three times at prompt 1: its scenes there count a quarter of their
    chance of an unknown answer, so prompt 2's better explained scene goes first."""
    pool = _pool()
    by_id = {s.episode_id: s for s in pool}
    keys = {int(s.response_ids[0]): judgement_key(s) for s in pool}
    fit, _ = _fit_table({"five1-0": 0.1, "five1-1": 0.3, "five2-0": 0.6, "five2-1": 0.8,
                         "six": 0.0})  # fmt: skip
    zero = lambda b: np.zeros((1, len(b)))  # noqa: E731

    def ask(n: int, spread: bool, scene_fit: SceneFitFn = fit) -> list[str]:
        queries = novel_queries(pool, n, k=2, rng=np.random.default_rng(0), score_fn=zero,
                                judged={keys[5]: 0, keys[6]: 4}, challengers="floor",
                                give_up=10, scene_fit=scene_fit, spread_questions=spread,
                                judged_by_prompt={prompt_answer_key(by_id["five1-0"]): 3})
        return [q[0].episode_id for q in queries]  # fmt: skip

    assert ask(1, spread=False) == ["five1-0"]  # the least explained scene
    # 0.9 / 4 and 0.7 / 4 at prompt 1 against 0.4 and 0.2 at prompt 2; each pick counts as a
    # try at its prompt (prompt 2's other scene: 0.2 / 2), and once 5 is judged as often as 6,
    # 6's scene (nothing known fits it: 1 / 1) goes first.
    assert ask(5, spread=True) == ["five2-0", "five1-0", "five1-1", "five2-1", "six"]
    with pytest.raises(ValueError, match=r"probabilities in \[0, 1\]"):
        ask(1, spread=True, scene_fit=lambda batch: np.full(len(batch), 1.5))


def test_an_answer_stays_in_the_rotation_until_shown_right_often_enough() -> None:
    """Answer 5 is shown right once and judged past the give-up; 6 is judged past it
    without being shown right. With two confirmations wanted, 5 is still asked about."""
    pool = _pool()
    keys = {int(s.response_ids[0]): judgement_key(s) for s in pool}
    judged, right = {keys[5]: 30, keys[6]: 30}, {keys[5]: 1}
    zero = lambda b: np.zeros((1, len(b)))  # noqa: E731

    def challengers(confirmations: int) -> list[str]:
        queries = novel_queries(pool, 3, k=2, rng=np.random.default_rng(0), score_fn=zero,
                                judged=judged, challengers="floor", shown_right=right,
                                give_up=10, confirmations=confirmations)  # fmt: skip
        return [q[0].episode_id for q in queries]

    assert all(c.startswith("five") for c in challengers(2)) and len(challengers(2)) == 3
    # Confirmed enough (or one confirmation wanted): the rotation is over, and the model's
    # challengers prefer the answers judged least (the policy's own, never judged).
    assert not any(c.startswith("five") for c in challengers(1))
    right[keys[5]] = 2
    assert not any(c.startswith("five") for c in challengers(2))
    with pytest.raises(ValueError, match="confirmations must be >= 1"):
        challengers(0)


def test_without_a_give_up_the_scenes_stay_at_random() -> None:
    """`scene_fit` only orders rotating floor challengers; without a give-up it is not asked."""
    fit, asked = _fit_table({})
    zero = lambda b: np.zeros((1, len(b)))  # noqa: E731
    queries = novel_queries(_pool(), 2, k=2, rng=np.random.default_rng(0), score_fn=zero,
                            judged={}, challengers="floor", scene_fit=fit)  # fmt: skip
    assert len(queries) == 2 and asked == []


def test_the_counts_keep_a_response_per_answer_shown_right() -> None:
    a, b, c = (make_sample(x, response=r) for x, r in zip("abc", (3, 4, 5), strict=True))
    counts = JudgedCounts()
    counts.add([PreferenceLabel("a", "b", 1.0), PreferenceLabel("b", "c", 0.5, tie="both_bad")],
               {s.episode_id: s for s in (a, b, c)})  # fmt: skip
    assert list(counts.right_responses) == [judgement_key(a)]
    np.testing.assert_array_equal(counts.right_responses[judgement_key(a)], a.response_ids)


@pytest.mark.parametrize("head", ["answer_logits", "answer_sigmoid"])
def test_known_answer_fit_is_the_best_known_answers_ensemble_reward(head: str) -> None:
    ens = RewardEnsemble(answer_head_spec(head), seed=0).eval()
    scenes = [make_sample(f"s{i}", response=9, seed=i) for i in range(5)]
    known = [np.array([3, 0]), np.array([4, 7])]  # a one-word and a two-word answer
    fit = known_answer_fit(ens, scenes, known)
    with torch.no_grad():
        direct = torch.stack([
            ens(stack_samples([replace(s, response_ids=r) for s in scenes])).mean(dim=0)
            for r in known
        ]).max(dim=0).values  # fmt: skip
    np.testing.assert_allclose(fit, direct.numpy(), rtol=1e-5, atol=1e-5)
    # A sample's own answer does not explain its scene: the other known answer does, and
    # with no other one the fit is 0.
    own = [replace(s, response_ids=known[0]) for s in scenes]
    with torch.no_grad():
        other = ens(stack_samples([replace(s, response_ids=known[1]) for s in scenes]))
    np.testing.assert_allclose(known_answer_fit(ens, own, known), other.mean(dim=0).numpy(),
                               rtol=1e-5, atol=1e-5)  # fmt: skip
    np.testing.assert_array_equal(known_answer_fit(ens, own, known[:1]), np.zeros(5))
    assert known_answer_fit(ens, [], known).shape == (0,)
    with pytest.raises(ValueError, match="at least one response"):
        known_answer_fit(ens, scenes, [])


def _hub_config(**overrides: object) -> FeedbackConfig:
    settings: dict[str, object] = {
        "rm_head": "answer_sigmoid", "rm_min_steps": 1, "rm_max_steps": 1, "query_mode": "novel",
        "query_challengers": "floor", "query_give_up": 5,
        "query_challenger_scenes": "unexplained", **TINY_RM,
    }  # fmt: skip
    return FeedbackConfig(enabled=True, source="reward_model", **{**settings, **overrides})


@pytest.mark.parametrize("scenes", ["unexplained", "unexplained_spread", "unexplained_kinds"])
def test_the_hub_scores_scenes_by_the_answers_its_labels_showed_right(
    sigmoid_spec: RewardModelSpec, scenes: str
) -> None:
    state = RLHFState(_hub_config(queries_per_iter=2, initial_queries=2,
                                  query_challenger_scenes=scenes))  # fmt: skip
    state.add_episodes(_pool(), sigmoid_spec)
    samples = state.pool.samples()
    np.testing.assert_array_equal(state._scene_fit(samples), np.zeros(len(samples)))
    state.step(1)  # the first round is random; its labels may show answers right
    state.add_episodes([make_sample(f"x{i}", response=3, seed=300 + i) for i in range(4)])
    state.judged.add([PreferenceLabel("own1-3", "own1-4", 1.0)],
                     {s.episode_id: s for s in samples})  # fmt: skip
    assert state.trainer is not None
    known = list(state.judged.right_responses.values())
    # the sigmoid head's fit as a probability: P(right) = sigmoid(log-odds)
    fit = known_answer_fit(state.trainer.ensemble, samples, known)
    np.testing.assert_allclose(state._scene_fit(samples), 1 / (1 + np.exp(-fit)), rtol=1e-6)
    assert state.label_round(2) > 0  # novel, floor challengers at unexplained scenes


def test_the_hub_places_challengers_by_kind_without_scoring_scenes(
    sigmoid_spec: RewardModelSpec,
) -> None:
    state = RLHFState(_hub_config(queries_per_iter=2, initial_queries=2,
                                  query_challenger_scenes="kinds"))  # fmt: skip
    state.add_episodes(_pool(), sigmoid_spec)
    state.step(1)

    def no_scene_model(batch: list[EpisodeSample]) -> np.ndarray:
        raise AssertionError("kinds must not score scenes")

    state._scene_fit = no_scene_model  # type: ignore[method-assign]
    assert state.label_round(2) > 0


def test_unexplained_scenes_need_rotating_floor_challengers_and_an_answer_head() -> None:
    with pytest.raises(ValidationError, match="needs query_mode='novel'.*query_give_up > 0"):
        _hub_config(query_give_up=0)
    with pytest.raises(ValidationError, match="only an answer head has"):
        _hub_config(rm_head="compare")
    with pytest.raises(ValidationError, match="'unexplained_spread' acts on the floor"):
        _hub_config(query_challenger_scenes="unexplained_spread", query_give_up=0)
    with pytest.raises(ValidationError, match="query_challenger_scenes"):
        _hub_config(query_challenger_scenes="worst")
    with pytest.raises(ValidationError, match="query_confirmations=3 acts on the floor"):
        FeedbackConfig(enabled=True, source="reward_model", query_confirmations=3)
    assert _hub_config(query_confirmations=3).query_confirmations == 3
