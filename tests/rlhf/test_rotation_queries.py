"""How the floor challengers' rotation spends labels: two open floor draws per query
(`feedback.query_floor_pairs`), and once every answer has settled, the model's bets on
different answers the labels have shown right (`feedback.query_settled: per_answer`)."""

from __future__ import annotations

from collections import Counter
from dataclasses import replace

import numpy as np
import pytest

from mmrlhf.feedback.config import FeedbackConfig
from mmrlhf.feedback.novelty import judgement_key
from mmrlhf.feedback.queries import novel_queries, select_queries
from mmrlhf.feedback.samples import EpisodeSample
from tests.rlhf.conftest import make_sample


def _pool() -> list[EpisodeSample]:
    """One prompt: the policy's own answers 3, 4 and 5 (five episodes each) and floor draws
    of answers 6, 7 and 8 (two each)."""
    own = [
        replace(make_sample(f"o{r}-{c}", seed=10 * r + c, response=r), floor_share=0.0)
        for r in (3, 4, 5) for c in range(5)
    ]  # fmt: skip
    drawn = [
        replace(make_sample(f"f{r}-{c}", seed=10 * r + c, response=r), floor_share=1.0)
        for r in (6, 7, 8) for c in range(2)
    ]  # fmt: skip
    return own + drawn


POOL = _pool()
KEY = {int(s.response_ids[0]): judgement_key(s) for s in POOL}
# The model's bound: answer 3 best, then 4, then 5; within an answer copy 0 is best.
BOUND = {s.episode_id: {3: 3.0, 4: 2.0, 5: 1.0}.get(int(s.response_ids[0]), 0.0)
         - 0.1 * int(s.episode_id[-1]) for s in POOL}  # fmt: skip


def _score(batch: list[EpisodeSample]) -> np.ndarray:
    return np.array([[BOUND[s.episode_id] for s in batch]] * 2)


def _queries(n: int, *, judged: dict[str, int], shown_right: dict[str, int], seed: int = 0,
             **kwargs: object) -> list[list[str]]:
    queries = novel_queries(POOL, n, k=2, rng=np.random.default_rng(seed), score_fn=_score,
                            judged=judged, challengers="floor", shown_right=shown_right,
                            give_up=3, **kwargs)  # type: ignore[arg-type]  # fmt: skip
    return [[s.episode_id for s in q] for q in queries]


def test_floor_pairs_put_two_open_answers_in_one_query_and_count_both() -> None:
    # answer 6 judged twice, 7 once, 8 never: 8 is the challenger, 7 the next least judged
    judged = {KEY[6]: 2, KEY[7]: 1}
    (plain,) = _queries(1, judged=judged, shown_right={})
    assert plain[0].startswith("f8") and plain[1] == "o3-0"  # partner: the model's best bet
    (paired,) = _queries(1, judged=judged, shown_right={}, floor_pairs=True)
    assert [p[:2] for p in paired] == ["f8", "f7"]
    # each label counts for both answers: with a give-up of 3, answer 6 (judged twice) goes
    # after one more, 7 after two; the six floor draws make three pairs, then partners
    rounds = _queries(6, judged=judged, shown_right={}, floor_pairs=True)
    drawn_per_query = [sum(e.startswith("f") for e in q) for q in rounds]
    assert drawn_per_query[:2] == [2, 2]
    assert sum(drawn_per_query) <= 6
    # an answer already shown right is not in the rotation, as a challenger or a second draw
    (query,) = _queries(1, judged=judged, shown_right={KEY[7]: 1}, floor_pairs=True)
    assert [p[:2] for p in query] == ["f8", "f6"]


def test_once_settled_each_query_bets_on_different_confirmed_answers() -> None:
    # every floor answer given up (judged 3 times): the rotation is over
    judged = {KEY[r]: 3 for r in (6, 7, 8)}
    right = {KEY[3]: 1, KEY[4]: 1, KEY[5]: 1}
    plain = _queries(1, judged=judged, shown_right=right)
    per_answer = Counter()
    for seed in range(12):
        (query,) = _queries(1, judged=judged, shown_right=right, settled="per_answer", seed=seed)
        assert len({e[:2] for e in query}) == 2  # two different answers
        assert all(e.endswith("-0") for e in query)  # each the model's best bet of its answer
        per_answer.update(e[:2] for e in query)
    assert set(per_answer) == {"o3", "o4", "o5"}  # not always the favourite two
    # without it the model's challenger (z and novelty) and its best bet
    assert plain == [["o3-0", "o4-0"]]
    # only answer 3 confirmed: a pair cannot be made from one answer, nothing is asked
    assert _queries(1, judged=judged, shown_right={KEY[3]: 1}, settled="per_answer") == []
    # while the rotation runs, settled changes nothing
    assert _queries(2, judged={}, shown_right=right, settled="per_answer") == _queries(
        2, judged={}, shown_right=right
    )


def test_select_queries_passes_them_on_and_the_config_checks_them() -> None:
    judged = {KEY[r]: 3 for r in (6, 7, 8)}
    right = {KEY[3]: 1, KEY[4]: 1}
    queries = select_queries(POOL, 1, mode="novel", rng=np.random.default_rng(0),
                             score_fn=_score, judged=judged, challengers="floor",
                             shown_right=right, give_up=3, settled="per_answer")  # fmt: skip
    assert sorted(s.episode_id for s in queries[0]) == ["o3-0", "o4-0"]
    with pytest.raises(ValueError, match="settled must be one of"):
        _queries(1, judged={}, shown_right={}, settled="bets")
    base = {"enabled": True, "source": "reward_model", "query_mode": "novel",
            "query_challengers": "floor"}  # fmt: skip
    with pytest.raises(ValueError, match="query_give_up > 0"):
        FeedbackConfig(**base, query_floor_pairs=True)
    with pytest.raises(ValueError, match="query_give_up > 0"):
        FeedbackConfig(**{**base, "query_challengers": "any"}, query_give_up=24,
                       query_settled="per_answer")
    cfg = FeedbackConfig(**base, query_give_up=24, query_floor_pairs=True,
                         query_settled="per_answer")
    assert cfg.query_floor_pairs and cfg.query_settled == "per_answer"
