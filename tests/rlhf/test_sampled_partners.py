"""Challenger queries whose partners are not the reward model's best bets over all answers:
the policy's own answers to random scenes (`feedback.query_partners: sampled`), or the best
bet of an answer drawn among those the labels have shown right (`per_answer`)."""

from __future__ import annotations

from collections import Counter
from dataclasses import replace

import numpy as np
import pytest

from mmrlhf.feedback.config import FeedbackConfig
from mmrlhf.feedback.queries import novel_queries, select_queries
from mmrlhf.feedback.samples import EpisodeSample
from tests.rlhf.conftest import make_sample

# One prompt. Answer 6 is unjudged (the challenger); the model bets on 3, then 4, then 5.
BOUNDS = {3: 2.0, 4: 1.5, 5: -1.0, 6: 1.0}


def _pool(floor_drawn: set[int] = frozenset()) -> list[EpisodeSample]:
    """Ten episodes per answer; those of the answers in `floor_drawn` the floor drew."""
    return [
        replace(make_sample(f"e{r}-{c}", seed=10 * r + c, response=r),
                floor_share=1.0 if r in floor_drawn else 0.0)
        for r in BOUNDS for c in range(10)
    ]  # fmt: skip


def _score(batch: list[EpisodeSample]) -> np.ndarray:
    return np.array([[BOUNDS[int(s.response_ids[0])] for s in batch]] * 2)


def _judged(pool: list[EpisodeSample]) -> dict[str, int]:
    return {s.response_key: 0 if s.response_ids[0] == 6 else 100 for s in pool}


def _partners(pool: list[EpisodeSample], partners: str, n: int = 8, seed: int = 0,
              shown_right: dict[str, int] | None = None) -> Counter:
    queries = novel_queries(pool, n, k=2, rng=np.random.default_rng(seed), score_fn=_score,
                            judged=_judged(pool), partners=partners,
                            shown_right=shown_right)  # fmt: skip
    assert len(queries) == n
    assert all(int(q[0].response_ids[0]) == 6 for q in queries)  # the challenger is unchanged
    return Counter(int(q[1].response_ids[0]) for q in queries)


def test_bet_partners_are_the_models_favourite_and_sampled_ones_are_not() -> None:
    pool = _pool()
    assert _partners(pool, "bet") == Counter({3: 8})
    sampled = Counter()
    for seed in range(10):
        sampled += _partners(pool, "sampled", seed=seed)
    # 80 partners drawn at random over the other answers' 30 episodes: each answer about a
    # third, the one the model rules out (5) included
    assert set(sampled) == {3, 4, 5}
    assert all(15 <= sampled[r] <= 40 for r in (3, 4, 5))


def test_sampled_partners_are_the_policys_answers_not_the_floors_draws() -> None:
    pool = _pool(floor_drawn={4})
    sampled = Counter()
    for seed in range(10):
        sampled += _partners(pool, "sampled", seed=seed)
    assert set(sampled) == {3, 5}
    # with only floor draws to compare against, they are used rather than asking nothing
    pool = _pool(floor_drawn={3, 4, 5})
    assert sum(_partners(pool, "sampled").values()) == 8


def test_select_queries_passes_partners_on_and_bad_values_are_named() -> None:
    pool = _pool()
    queries = select_queries(pool, 30, mode="novel", rng=np.random.default_rng(0),
                             score_fn=_score, judged=_judged(pool), partners="sampled")  # fmt: skip
    assert {int(q[1].response_ids[0]) for q in queries} == {3, 4, 5}
    with pytest.raises(ValueError, match="partners must be one of"):
        novel_queries(pool, 1, k=2, rng=np.random.default_rng(0), score_fn=_score,
                      judged=_judged(pool), partners="best")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="sampled partners ignore them"):
        novel_queries(pool, 1, k=2, rng=np.random.default_rng(0), score_fn=_score,
                      judged=_judged(pool), partners="sampled", partner_novelty=1.0)


def test_config_needs_novel_mode_and_no_partner_novelty() -> None:
    base = {"enabled": True, "source": "reward_model"}
    assert FeedbackConfig(**base, query_mode="novel", query_partners="sampled")
    with pytest.raises(ValueError, match="needs query_mode=novel"):
        FeedbackConfig(**base, query_mode="active", query_partners="sampled")
    with pytest.raises(ValueError, match="set one of them"):
        FeedbackConfig(**base, query_mode="novel", query_partners="sampled",
                       query_partner_novelty=2.0)
    with pytest.raises(ValueError, match="set one of them"):
        FeedbackConfig(**base, query_mode="novel", query_partners="per_answer",
                       query_partner_novelty=2.0)
    with pytest.raises(ValueError, match="query_partners"):
        FeedbackConfig(**base, query_mode="novel", query_partners="best")


def test_per_answer_partners_spread_over_confirmed_answers_on_the_models_best_scenes() -> None:
    # every episode of an answer has its own bound: the model's best bet within each answer
    # is its copy 9
    pool = _pool()
    bounds = {s.episode_id: BOUNDS[int(s.response_ids[0])] + 0.01 * int(s.episode_id[-1])
              for s in pool}  # fmt: skip

    def score(batch: list[EpisodeSample]) -> np.ndarray:
        return np.array([[bounds[s.episode_id] for s in batch]] * 2)

    key = {int(s.response_ids[0]): s.response_key for s in pool}

    def partners(shown_right: dict[str, int], seed: int) -> list[str]:
        queries = novel_queries(pool, 2, k=2, rng=np.random.default_rng(seed), score_fn=score,
                                judged=_judged(pool), partners="per_answer",
                                shown_right=shown_right)  # fmt: skip
        return [q[1].episode_id for q in queries]

    # nothing shown right yet: the model's best bets (answer 3's best scenes)
    assert partners({}, seed=0) == ["e3-9", "e3-8"]
    # answers 4 and 5 shown right (and the challenger's answer 6, which is not its own
    # partner): each query draws one of them, then takes that answer's best scene
    right = {key[4]: 1, key[5]: 2, key[6]: 1}
    drawn = Counter(p for seed in range(20) for p in partners(right, seed))
    assert {p.split("-")[0] for p in drawn} == {"e4", "e5"}
    assert drawn["e4-9"] + drawn["e5-9"] >= 20  # a query's first partner of its answer: the best
    # an answer only the floor gave is not drawn
    floor4 = [replace(s, floor_share=1.0 if s.response_ids[0] == 4 else 0.0) for s in pool]
    queries = novel_queries(floor4, 4, k=2, rng=np.random.default_rng(0), score_fn=score,
                            judged=_judged(floor4), partners="per_answer",
                            shown_right=right)  # fmt: skip
    assert {q[1].episode_id.split("-")[0] for q in queries} == {"e5"}
