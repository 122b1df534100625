"""Query schedule, same-prompt candidates, active selection by ensemble disagreement."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pytest

from mmrlhf.feedback.queries import (
    QuerySchedule,
    best_per_drawn_group,
    candidate_queries,
    disagreement,
    select_queries,
    upper_bound,
)
from mmrlhf.feedback.samples import EpisodeSample
from tests.rlhf.conftest import make_sample


def test_schedule_constant_decay_initial_and_owed() -> None:
    s = QuerySchedule(10, initial=5)
    assert [s.at(t) for t in (0, 1, 2, 3)] == [0, 15, 10, 10]
    assert s.planned(3) == 35 and s.owed(3, 30) == 5 and s.owed(3, 40) == 0
    d = QuerySchedule(12, decay=1.0)
    assert [d.at(t) for t in (1, 2, 3, 4)] == [12, 6, 4, 3]
    with pytest.raises(ValueError):
        QuerySchedule(-1)


def test_candidates_share_a_prompt_and_skip_excluded() -> None:
    samples = [make_sample(f"p{i % 3}-{i}", prompt=1 + i % 3) for i in range(12)]
    samples.append(make_sample("lonely", prompt=9))
    rng = np.random.default_rng(0)
    # 9 same-prompt triples exist: 1 among p0's 3 eligible episodes, 4 each for p1 and p2
    queries = candidate_queries(samples, 6, k=3, rng=rng, exclude={"p0-0"})
    assert len(queries) == 6 and len({tuple(sorted(q)) for q in queries}) == 6
    for q in queries:
        assert len(set(q)) == 3
        assert len({samples[i].prompt_key for i in q}) == 1  # one prompt per query
        assert all(samples[i].episode_id not in ("p0-0", "lonely") for i in q)
    # no prompt has two episodes: fall back to mixing prompts
    mixed = [make_sample(f"m{i}", prompt=1 + i) for i in range(4)]
    assert len(candidate_queries(mixed, 3, k=2, rng=rng)) == 3
    assert candidate_queries(mixed, 3, k=2, rng=rng, exclude={"m0", "m1", "m2"}) == []


def test_scene_queries_compare_different_answers_to_one_scene() -> None:
    # Scene A (image seed 1, prompt 1) was answered 3, 3 and 4; scene B twice the same way.
    samples = [
        make_sample("a0", seed=1, response=3),
        make_sample("a1", seed=1, response=3),
        make_sample("a2", seed=1, response=4),
        make_sample("b0", seed=2, response=5),
        make_sample("b1", seed=2, response=5),
        make_sample("c0", seed=3, prompt=2),
    ]
    assert samples[0].scene_key == samples[2].scene_key != samples[3].scene_key
    assert samples[0].prompt_key == samples[3].prompt_key
    rng = np.random.default_rng(0)
    for _ in range(5):
        queries = candidate_queries(samples, 2, k=2, rng=rng, group="scene")
        assert {tuple(sorted(samples[i].episode_id for i in q)) for q in queries} == {
            ("a0", "a2"), ("a1", "a2")
        }
    # Once the scene's pairs are used up, same-prompt pairs top the queries up.
    queries = candidate_queries(samples, 5, k=2, rng=rng, group="scene")
    assert len(queries) == 5
    assert all(len({samples[i].prompt_key for i in q}) == 1 for q in queries)
    # A ranking of 3 needs 3 different answers to one scene: none here, so prompt groups.
    assert all(
        len({samples[i].prompt_key for i in q}) == 1
        for q in candidate_queries(samples, 3, k=3, rng=rng, group="scene")
    )
    with pytest.raises(ValueError, match="query group must be one of"):
        candidate_queries(samples, 1, k=2, rng=rng, group="image")  # type: ignore[arg-type]


def test_disagreement_is_zero_when_members_agree() -> None:
    assert disagreement(np.array([[1.0, 0.0], [1.0, 0.0]])) == 0.0
    split = disagreement(np.array([[5.0, 0.0], [0.0, 5.0]]))
    assert split == pytest.approx(0.5 * (1 / (1 + np.exp(-5)) - 1 / (1 + np.exp(5))))


def test_active_mode_picks_the_most_disputed_queries() -> None:
    samples = [make_sample(f"e{i}", prompt=1) for i in range(10)]
    disputed = {"e3", "e7"}

    def score_fn(batch: Sequence[EpisodeSample]) -> np.ndarray:
        # Members agree on everything except e3 and e7, which they rank oppositely.
        a = np.array([3.0 if s.episode_id == "e3" else 0.0 for s in batch])
        b = np.array([3.0 if s.episode_id == "e7" else 0.0 for s in batch])
        return np.stack([a, b])

    rng = np.random.default_rng(0)
    chosen = select_queries(samples, 1, k=2, mode="active", rng=rng, score_fn=score_fn,
                            candidates=100)  # fmt: skip
    assert {s.episode_id for s in chosen[0]} == disputed
    random_pick = select_queries(samples, 5, k=2, mode="random", rng=rng)
    assert len(random_pick) == 5


def test_upper_bound_is_the_best_mean_plus_std() -> None:
    scores = np.array([[1.0, 0.0, 2.0], [3.0, 0.0, 2.0]])  # means 2, 0, 2; stds 1, 0, 0
    assert upper_bound(scores) == pytest.approx(3.0)


def test_optimistic_mode_asks_about_the_likeliest_good_episodes() -> None:
    samples = [make_sample(f"e{i}", prompt=1) for i in range(12)]
    liked = {"e2": 4.0, "e5": 3.0, "e9": 2.5}  # the ensemble's favourites, best first

    def score_fn(batch: Sequence[EpisodeSample]) -> np.ndarray:
        mean = np.array([liked.get(s.episode_id, 0.0) for s in batch])
        return np.stack([mean - 0.1, mean + 0.1])  # std 0.1 everywhere

    rng = np.random.default_rng(1)
    chosen = select_queries(samples, 3, k=2, mode="optimistic", rng=rng, score_fn=score_fn,
                            candidates=50)  # fmt: skip
    # Each query holds one favourite, the best one in the first query.
    best = [max(liked.get(s.episode_id, 0.0) for s in q) for q in chosen]
    assert best[0] == 4.0 and all(b > 0 for b in best)
    with pytest.raises(ValueError, match="query mode must be one of"):
        select_queries(samples, 1, mode="greedy", rng=rng)  # type: ignore[arg-type]


def test_optimistic_queries_rank_within_their_prompt_unless_asked_to_rank_the_pool() -> None:
    # Prompt 1's answers score high by nature, prompt 2's low; each has one favourite.
    samples = [make_sample(f"a{i}", prompt=1) for i in range(10)]
    samples += [make_sample(f"b{i}", prompt=2) for i in range(10)]
    level = {1: 10.0, 2: 0.0}

    def score_fn(batch: Sequence[EpisodeSample]) -> np.ndarray:
        mean = np.array([level[int(s.prompt_ids[0])] + (s.episode_id in ("a3", "b6"))
                         for s in batch])  # fmt: skip
        return np.stack([mean, mean])

    def prompts(rank: str) -> list[int]:
        chosen = select_queries(samples, 6, k=2, mode="optimistic", rng=np.random.default_rng(2),
                                score_fn=score_fn, candidates=5, rank=rank)  # type: ignore[arg-type]
        assert all(len({int(s.prompt_ids[0]) for s in q}) == 1 for q in chosen)
        return [int(q[0].prompt_ids[0]) for q in chosen]

    assert prompts("pool") == [1] * 6  # prompt 1 outscores every query of prompt 2
    grouped = prompts("group")
    assert grouped.count(1) >= 1 and grouped.count(2) >= 1
    # Within a prompt the best still comes first: each prompt's first query holds its favourite.
    chosen = select_queries(samples, 6, k=2, mode="optimistic", rng=np.random.default_rng(2),
                            score_fn=score_fn, candidates=5)  # fmt: skip
    firsts = {}
    for q in chosen:
        firsts.setdefault(int(q[0].prompt_ids[0]), {s.episode_id for s in q})
    assert "a3" in firsts[1] and "b6" in firsts[2]
    with pytest.raises(ValueError, match="query rank must be one of"):
        select_queries(samples, 1, mode="optimistic", rng=np.random.default_rng(0),
                       score_fn=score_fn, rank="best")  # type: ignore[arg-type]


def test_drawn_groups_follow_their_share_of_candidates() -> None:
    groups = ["x"] * 30 + ["y"] * 10
    values = np.arange(40, dtype=float)
    picks = [groups[j] for seed in range(50)
             for j in best_per_drawn_group(groups, values, groups, 4, np.random.default_rng(seed))]
    share = picks.count("x") / len(picks)
    assert 0.65 < share < 0.85  # 3 of 4 candidates are x's
    # Within a group, highest value first.
    assert best_per_drawn_group(["x"] * 3, np.array([1.0, 3.0, 2.0]), ["x"] * 3, 3,
                                np.random.default_rng(0)) == [1, 2, 0]  # fmt: skip
