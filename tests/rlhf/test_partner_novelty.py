"""Challenger queries whose partners spread over the answers the labels have judged least for
each question (`feedback.query_partner_novelty`)."""

from __future__ import annotations

import numpy as np
import pytest

from mmrlhf.feedback.config import FeedbackConfig
from mmrlhf.feedback.novelty import JudgedCounts, prompt_answer_key
from mmrlhf.feedback.preferences import BinaryLabel, PreferenceLabel
from mmrlhf.feedback.queries import novel_queries, select_queries
from mmrlhf.feedback.samples import EpisodeSample
from tests.rlhf.conftest import make_sample

# One prompt. Answer 6 is the only unjudged one (the challenger); the model bets on answer 3
# (bound 2), then 4 (1.5), then 5 (-1).
BOUNDS = {3: 2.0, 4: 1.5, 5: -1.0, 6: 1.0}


def _pool(copies: int = 1) -> list[EpisodeSample]:
    return [
        make_sample(f"e{r}-{c}", seed=10 * r + c, response=r)
        for r in BOUNDS for c in range(copies)
    ]  # fmt: skip


def _score(batch: list[EpisodeSample]) -> np.ndarray:
    return np.array([[BOUNDS[int(s.response_ids[0])] for s in batch]] * 2)


def _judged(pool: list[EpisodeSample]) -> dict[str, int]:
    return {s.response_key: 0 if s.response_ids[0] == 6 else 100 for s in pool}


def _responses(queries: list[list[EpisodeSample]]) -> list[list[int]]:
    return [[int(s.response_ids[0]) for s in q] for q in queries]


def test_partners_go_to_the_answers_judged_least_for_the_question() -> None:
    pool = _pool()
    judged = {prompt_answer_key(pool[0]): 40}  # answer 3 labelled 40 times for this prompt

    def first(weight: float, k: int = 2) -> list[int]:
        (query,) = novel_queries(pool, 1, k=k, rng=np.random.default_rng(0), score_fn=_score,
                                 judged=_judged(pool), partner_novelty=weight,
                                 judged_by_prompt=judged)  # fmt: skip
        return _responses([query])[0]

    assert first(0.0) == [6, 3]  # the model's best bet
    assert first(2.0) == [6, 4]  # a good bet the labels have not confirmed yet
    assert first(2.0, k=3) == [6, 4, 3]
    # a bet the model rules out is not made a partner by novelty alone
    assert first(2.0, k=3)[1:] != [5]
    # select_queries passes the weight on
    queries = select_queries(pool, 1, mode="novel", rng=np.random.default_rng(0),
                             score_fn=_score, judged=_judged(pool), partner_novelty=2.0,
                             judged_by_prompt=judged)  # fmt: skip
    assert _responses(queries) == [[6, 4]]


def test_within_a_round_each_partnering_counts_against_its_answer() -> None:
    """Three queries in one round, no labels yet: with novelty the partners take turns
    between the two good bets instead of always the best one."""
    pool = _pool(copies=3)

    def partners(weight: float) -> list[int]:
        queries = novel_queries(pool, 3, k=2, rng=np.random.default_rng(0), score_fn=_score,
                                judged=_judged(pool), partner_novelty=weight)  # fmt: skip
        return [q[1] for q in _responses(queries)]

    assert partners(0.0) == [3, 3, 3]
    assert partners(2.0) == [3, 4, 3]


def test_counts_say_which_answers_were_judged_for_which_question() -> None:
    a = make_sample("a", prompt=1, response=3)
    b = make_sample("b", prompt=1, response=4)
    c = make_sample("c", prompt=2, response=3)
    counts = JudgedCounts()
    counts.add([PreferenceLabel("a", "b", 1.0), BinaryLabel("c", True), BinaryLabel("b", False)],
               {s.episode_id: s for s in (a, b, c)})  # fmt: skip
    assert counts.by_prompt == {prompt_answer_key(a): 1, prompt_answer_key(b): 2,
                                prompt_answer_key(c): 1}  # fmt: skip
    assert prompt_answer_key(a) != prompt_answer_key(c)


def test_partner_novelty_needs_challenger_queries() -> None:
    with pytest.raises(ValueError, match="needs query_mode=novel"):
        FeedbackConfig(source="reward_model", query_partner_novelty=1.0, query_mode="active")
    cfg = FeedbackConfig(source="reward_model", query_partner_novelty=1.0, query_mode="novel")
    assert cfg.query_partner_novelty == 1.0
