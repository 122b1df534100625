"""Count-based exploration: judgement counts, the bonus EnvRunners add, and challenger queries."""

from __future__ import annotations

import numpy as np
import pytest

from mmrlhf.feedback.config import FeedbackConfig
from mmrlhf.feedback.novelty import JudgedCounts, judgement_key, novelty_bonus
from mmrlhf.feedback.preferences import BinaryLabel, PreferenceLabel
from mmrlhf.feedback.queries import novel_queries, select_queries
from mmrlhf.feedback.reward_model import PublishedRewardModel, RewardEnsemble, RewardModelSpec
from mmrlhf.feedback.rlhf import RLHFState
from mmrlhf.feedback.samples import EpisodeSample
from mmrlhf.feedback.scoring import RewardScorer
from tests.rlhf.conftest import TINY_RM, make_sample


def test_counts_are_kept_per_response() -> None:
    a, b = make_sample("a", response=3), make_sample("b", seed=1, prompt=2, response=3)
    other = make_sample("c", response=4)
    counts = JudgedCounts()
    counts.add([PreferenceLabel("a", "c", 1.0), BinaryLabel("b", True)],
               {"a": a, "b": b, "c": other})  # fmt: skip
    # a and b: the same answer (to different prompts, on different images) share one count
    assert counts.snapshot() == {judgement_key(a): 2, judgement_key(other): 1}
    with pytest.raises(KeyError, match="zz"):
        counts.add([BinaryLabel("zz", True)], {})
    assert novelty_bonus(2.0, 0) == 2.0
    assert novelty_bonus(2.0, 3) == pytest.approx(1.0)
    with pytest.raises(ValueError, match=">= 0"):
        novelty_bonus(1.0, -1)


def test_the_scorer_adds_the_published_bonus(tiny_spec: RewardModelSpec) -> None:
    ens = RewardEnsemble(tiny_spec, seed=0)
    tried, new = make_sample("x", response=3), make_sample("y", response=4)
    plain = RewardScorer(clip=5.0, prior_count=10)
    plain.load(PublishedRewardModel(1, tiny_spec.to_dict(), ens.weights()))
    bonus = RewardScorer(clip=5.0, prior_count=10)
    bonus.load(PublishedRewardModel(1, tiny_spec.to_dict(), ens.weights(), novelty_scale=0.5,
                                    judged={judgement_key(tried): 3}))  # fmt: skip
    for sample, extra in ((tried, 0.5 / 2), (new, 0.5)):
        # same model, same running statistics: the bonus is the only difference
        assert bonus.score(sample)[0] == pytest.approx(plain.score(sample)[0] + extra, abs=1e-6)
    assert plain.bonus(new) == 0.0


def test_the_hub_publishes_counts_and_stops_the_bonus_when_the_budget_is_spent(
    tiny_spec: RewardModelSpec,
) -> None:
    cfg = FeedbackConfig(enabled=True, source="reward_model", label_budget=12, queries_per_iter=8,
                         rm_min_steps=2, rm_max_steps=2, rm_novelty_bonus=0.7,
                         **TINY_RM)  # fmt: skip
    state = RLHFState(cfg)
    state.add_episodes([make_sample(f"1-{i}", score=i % 2, seed=i, response=3 + i % 5)
                        for i in range(30)], tiny_spec)  # fmt: skip
    state.step(1)
    first = state.latest()
    assert first is not None and first.novelty_scale == 0.7 and first.labels == 8
    assert sum(first.judged.values()) == 16  # 8 pairs
    state.add_episodes([make_sample(f"2-{i}", score=i % 2, seed=i, response=3 + i % 5)
                        for i in range(30)], tiny_spec)  # fmt: skip
    state.step(2)
    spent = state.latest()
    assert spent is not None and spent.labels == 12 and spent.novelty_scale == 0.0
    assert sum(spent.judged.values()) == 24


def test_the_hub_asks_challenger_queries_about_answers_no_label_has_judged(
    tiny_spec: RewardModelSpec,
) -> None:
    cfg = FeedbackConfig(enabled=True, source="reward_model", queries_per_iter=4,
                         query_mode="novel", rm_min_steps=2, rm_max_steps=2,
                         **TINY_RM)  # fmt: skip
    state = RLHFState(cfg)
    state.add_episodes([make_sample(f"1-{i}", seed=i, response=3 + i % 2) for i in range(20)],
                       tiny_spec)  # fmt: skip
    state.step(1)  # the first round is random: answers 3 and 4 are judged
    assert set(state.judged.counts) == {
        judgement_key(make_sample("x", response=r)) for r in (3, 4)
    }
    assert state.counts["challenger_wins"] == 0  # the first round has no challengers
    # the new answer 9 is right (score 1), every other answer wrong
    new = [make_sample(f"2-{i}", 1.0, seed=40 + i, response=9) for i in range(2)]
    state.add_episodes(new, tiny_spec)
    state.step(2)
    # both episodes of the new answer 9 were asked about, one per challenger query
    later = state.training_labels()[4:]
    asked = {e for label in later for e in label.episode_ids}
    assert {s.episode_id for s in new} <= asked
    assert state.judged.counts[judgement_key(new[0])] == 2
    # ... and each won: counted as challenger wins
    challengers_won = sum(label.a in {s.episode_id for s in new} and label.p_a == 1.0
                          for label in later)  # fmt: skip
    assert challengers_won == 2 and state.counts["challenger_wins"] == 2


def _group(prompt: int, responses: list[int], first: int = 0) -> list[EpisodeSample]:
    return [make_sample(f"p{prompt}-{first + i}", seed=first + i, prompt=prompt, response=r)
            for i, r in enumerate(responses)]  # fmt: skip


def test_a_challenger_is_the_least_judged_answer_against_the_best_bet() -> None:
    samples = _group(1, [3, 3, 4, 4, 5, 6])
    judged = {judgement_key(s): 9 for s in samples if s.response_ids[0] != 6}
    bet = {"p1-2": 2.0}  # the model's favourite: answer 4 on image 2

    def score(batch: list[EpisodeSample]) -> np.ndarray:
        return np.array([[bet.get(s.episode_id, 0.0) for s in batch]] * 2)

    rng = np.random.default_rng(0)
    (query,) = novel_queries(samples, 1, k=2, rng=rng, score_fn=score, judged=judged)
    assert [s.episode_id for s in query] == ["p1-5", "p1-2"]
    # through select_queries, and with the counts of a round carried over: the next
    # challenger is not answer 6 again (nor an episode already used)
    queries = select_queries(samples, 3, mode="novel", rng=rng, score_fn=score, judged=judged)
    assert [q[0].response_ids[0] for q in queries][:1] == [6]
    used = [s.episode_id for q in queries for s in q]
    assert len(used) == len(set(used))
    assert all(q[0].response_key != q[1].response_key for q in queries)


def test_a_challenger_the_model_rules_out_gives_way() -> None:
    """Never judged, but rated far below every other answer (an answer of the wrong kind):
    with novelty weight 1 an answer judged a few times goes first; with weight 10 novelty
    wins anyway."""
    samples = _group(1, [3, 4, 5, 5, 5, 5, 5, 5])
    # answer 3 judged 3 times, answer 4 never, answer 5 fifty times
    judged = {judgement_key(samples[0]): 3, judgement_key(samples[2]): 50}
    low = {"p1-1": -10.0}  # but the model is sure answer 4 is worse than the rest

    def score(batch: list[EpisodeSample]) -> np.ndarray:
        return np.array([[low.get(s.episode_id, 0.0) for s in batch]] * 2)

    rng = np.random.default_rng(0)
    (q,) = novel_queries(samples, 1, k=2, rng=rng, score_fn=score, judged=judged)
    assert q[0].response_ids[0] == 3  # plausible and rarely judged: beats the ruled-out one
    (q,) = novel_queries(samples, 1, k=2, rng=rng, score_fn=score, judged=judged, novelty=10.0)
    assert q[0].response_ids[0] == 4
    with pytest.raises(ValueError, match="k >= 2"):
        novel_queries(samples, 1, k=1, rng=rng, score_fn=score, judged={})


def test_prompts_with_one_answer_give_no_query() -> None:
    samples = _group(1, [3, 3, 3]) + _group(2, [4, 5], first=10)
    rng = np.random.default_rng(0)
    queries = novel_queries(samples, 5, k=2, rng=rng,
                            score_fn=lambda b: np.zeros((1, len(b))), judged={})  # fmt: skip
    assert len(queries) == 1 and {s.prompt_key for s in queries[0]} == {samples[3].prompt_key}
