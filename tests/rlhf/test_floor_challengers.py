"""Challengers drawn from the policy floor: the share an episode's response owes to the floor's
uniform part, the fixed per-episode draw, and challenger queries restricted to those draws."""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import pytest
import torch
from ray.rllib.algorithms.ppo import PPOConfig
from ray.rllib.core.columns import Columns

import mmrlhf.envs  # noqa: F401  (registers "MyMultimodalEnv" with RLlib)
from mmrlhf.callbacks import apply_feedback
from mmrlhf.callbacks.env_runner import CompleteEpisodesEnvRunner
from mmrlhf.callbacks.episodes import floor_share
from mmrlhf.config import ExperimentConfig
from mmrlhf.feedback.config import FeedbackConfig
from mmrlhf.feedback.novelty import JudgedCounts, judgement_key
from mmrlhf.feedback.preferences import BinaryLabel, PreferenceLabel
from mmrlhf.feedback.queries import novel_queries, rotation_give_up, select_queries
from mmrlhf.feedback.reward_model import RewardModelSpec
from mmrlhf.feedback.rlhf import RLHFState
from mmrlhf.feedback.samples import EpisodeSample
from mmrlhf.models import ModelConfig, model_spec
from tests.rlhf.conftest import TINY_RM, make_sample

FLOOR = 0.5


@pytest.mark.ray
def test_floor_share_is_the_posterior_of_the_uniform_part(ray_session: None) -> None:
    """On a sharpened policy the share differs per answer, yet its mean is the floor itself:
    the posterior that the uniform part drew an action averages to that part's weight."""
    model = ModelConfig(text_encoder="bag", embed_dim=16, hidden_sizes=(16,), policy_floor=FLOOR)
    config = (
        PPOConfig()
        .environment("MyMultimodalEnv", env_config={"task": "vqa", "image_size": 16})
        .rl_module(rl_module_spec=model_spec(model))
        .env_runners(num_envs_per_env_runner=4)
        .debugging(seed=0)
    )
    runner = CompleteEpisodesEnvRunner(config=apply_feedback(config, FeedbackConfig()))
    module = runner.module
    n = module.action_space.n
    assert module.floor_logp == pytest.approx(np.log(FLOOR / n))
    with torch.no_grad():  # a sure policy: the share is small on its favourites only
        module.output.policy[-1].weight.mul_(2000.0)
    episodes = [ep for _ in range(60) for ep in runner.sample(num_episodes=20)]
    shares = np.array([floor_share([ep], module.floor_logp) for ep in episodes])
    logps = np.array([float(ep.get_extra_model_outputs(Columns.ACTION_LOGP)[0]) for ep in episodes])
    np.testing.assert_allclose(shares, np.minimum(1.0, FLOOR / n / np.exp(logps)), rtol=1e-5)
    assert shares.min() < 0.2 and shares.max() > 0.9  # favourites vs answers only the floor gives
    assert abs(shares.mean() - FLOOR) < 0.06  # 1,200 episodes: sd about 0.015
    assert floor_share(episodes[:1], None) is None  # no floor, nothing to say


def test_the_floor_draw_is_fixed_per_episode_and_as_likely_as_the_share() -> None:
    samples = [replace(make_sample(f"e{i}"), floor_share=0.3) for i in range(4000)]
    drawn = [s.floor_drawn for s in samples]
    assert drawn == [replace(s).floor_drawn for s in samples]  # asked again: the same answer
    assert abs(np.mean(drawn) - 0.3) < 0.03
    assert not any(replace(s, floor_share=share).floor_drawn
                   for s in samples[:50] for share in (None, 0.0))  # fmt: skip
    assert all(replace(s, floor_share=1.0).floor_drawn for s in samples[:50])


def _with_share(samples: list[EpisodeSample], drawn: set[str]) -> list[EpisodeSample]:
    return [replace(s, floor_share=1.0 if s.episode_id in drawn else 0.0) for s in samples]


def test_floor_challengers_come_only_from_the_floors_draws() -> None:
    """Answer 6 has never been judged, but its only episode is the policy's own choice: with
    floor challengers the challenger is the floor's draw of answer 5 (judged once) instead,
    not its draw of answer 3 (judged 9 times); the partner is still the model's best bet,
    from any episode."""
    plain = [make_sample(f"p-{i}", seed=i, response=r) for i, r in enumerate([3, 3, 4, 4, 5, 6])]
    samples = _with_share(plain, {"p-0", "p-4"})
    judged = {judgement_key(s): 9 for s in samples if s.response_ids[0] in (3, 4)}
    judged[judgement_key(samples[4])] = 1  # answer 5: judged once
    bet = {"p-2": 2.0}

    def score(batch: list[EpisodeSample]) -> np.ndarray:
        return np.array([[bet.get(s.episode_id, 0.0) for s in batch]] * 2)

    def first(challengers: str) -> list[str]:
        (query,) = novel_queries(samples, 1, k=2, rng=np.random.default_rng(0), score_fn=score,
                                 judged=judged, challengers=challengers)  # fmt: skip
        return [s.episode_id for s in query]

    assert first("any") == ["p-5", "p-2"]
    assert first("floor") == ["p-4", "p-2"]
    # only two floor draws: at most two queries however many are asked for
    queries = select_queries(samples, 5, mode="novel", rng=np.random.default_rng(0),
                             score_fn=score, judged=judged, challengers="floor")  # fmt: skip
    assert sorted(q[0].episode_id for q in queries) == ["p-0", "p-4"]
    # no sample says where its answer came from: no floor challengers at all
    assert select_queries(plain, 5, mode="novel", rng=np.random.default_rng(0), score_fn=score,
                          judged=judged, challengers="floor") == []  # fmt: skip
    with pytest.raises(ValueError, match="challengers must be one of"):
        first("uniform")


def test_floor_challengers_scan_every_floor_draw_of_a_large_prompt() -> None:
    """A prompt with more episodes than a scan holds keeps its floor draws in the scan."""
    plain = [make_sample(f"q-{i}", seed=i, response=3 + i % 4) for i in range(40)]
    samples = _with_share(plain, {"q-37"})
    zero = lambda b: np.zeros((1, len(b)))  # noqa: E731
    (query,) = novel_queries(samples, 1, k=2, rng=np.random.default_rng(0), score_fn=zero,
                             judged={}, scan=8, challengers="floor")  # fmt: skip
    assert query[0].episode_id == "q-37"


def test_floor_challengers_need_a_policy_floor() -> None:
    feedback = {"enabled": True, "source": "reward_model", "query_mode": "novel",
                "query_challengers": "floor"}  # fmt: skip
    with pytest.raises(ValueError, match="model.policy_floor must be > 0"):
        ExperimentConfig.model_validate({"feedback": feedback})
    cfg = ExperimentConfig.model_validate({"feedback": feedback, "model": {"policy_floor": 0.3}})
    assert cfg.feedback.query_challengers == "floor"


def test_the_hub_reports_the_share_of_its_pool_the_floor_drew(tiny_spec: RewardModelSpec) -> None:
    state = RLHFState(FeedbackConfig(enabled=True, source="reward_model", **TINY_RM))
    assert math.isnan(state.stats()["pool_floor_drawn"])  # empty pool
    state.add_episodes([make_sample(f"a{i}", seed=i) for i in range(10)], tiny_spec)
    assert math.isnan(state.stats()["pool_floor_drawn"])  # no sample says (no floor)
    drawn = [replace(make_sample(f"b{i}", seed=i), floor_share=1.0) for i in range(30)]
    state.add_episodes(drawn, tiny_spec)
    assert state.stats()["pool_floor_drawn"] == pytest.approx(30 / 40)


def test_the_model_does_not_choose_among_the_floors_draws() -> None:
    """Two floor draws of answers judged equally often: the model rules one out. Any
    challengers never take it; floor challengers take either draw, at random."""
    plain = [make_sample(f"r-{i}", seed=i, response=r) for i, r in enumerate([3, 4, 5])]
    samples = _with_share(plain, {"r-0", "r-1"})
    low = {"r-1": -10.0}

    def score(batch: list[EpisodeSample]) -> np.ndarray:
        return np.array([[low.get(s.episode_id, 0.0) for s in batch]] * 2)

    def challengers(kind: str) -> set[str]:
        firsts = set()
        for seed in range(20):
            (query,) = novel_queries(samples, 1, k=2, rng=np.random.default_rng(seed),
                                     score_fn=score, judged={}, challengers=kind)  # fmt: skip
            firsts.add(query[0].episode_id)
        return firsts

    assert "r-1" not in challengers("any")
    assert challengers("floor") == {"r-0", "r-1"}


def test_counts_say_which_answers_the_labels_showed_right() -> None:
    a, b, c, d = (make_sample(x, response=r) for x, r in zip("abcd", (3, 4, 5, 6), strict=True))
    counts = JudgedCounts()
    counts.add([PreferenceLabel("a", "b", 1.0), PreferenceLabel("c", "d", 0.5, tie="both_good"),
                PreferenceLabel("b", "d", 0.5), BinaryLabel("d", True)],
               {s.episode_id: s for s in (a, b, c, d)})  # fmt: skip
    assert counts.shown_right == {judgement_key(a): 1, judgement_key(c): 1, judgement_key(d): 2}
    assert counts.counts[judgement_key(b)] == 2  # judged twice, never right


def test_floor_challengers_give_up_on_answers_and_leave_confirmed_ones() -> None:
    """Answer 3 was shown right and answer 4 has used up its tries: of the floor's draws only
    answer 5 is left, once; then the model's challengers take over."""
    plain = [make_sample(f"g-{i}", seed=i, response=r) for i, r in enumerate([3, 4, 5, 6, 6])]
    samples = _with_share(plain, {"g-0", "g-1", "g-2"})
    keys = {r: judgement_key(plain[i]) for i, r in enumerate([3, 4, 5])}
    judged, right = {keys[3]: 1, keys[4]: 2, keys[5]: 1}, {keys[3]: 1}
    zero = lambda b: np.zeros((1, len(b)))  # noqa: E731

    def first(pool: list[EpisodeSample], give_up: int) -> list[int]:
        queries = select_queries(pool, 1, mode="novel", rng=np.random.default_rng(0),
                                 score_fn=zero, judged=judged, challengers="floor",
                                 shown_right=right, give_up=give_up)  # fmt: skip
        return [int(q[0].response_ids[0]) for q in queries]

    assert first(samples, give_up=2) == [5]
    # without a give-up every floor draw stays: the least judged goes first (3 and 5 tie)
    assert first(samples, give_up=0) in ([3], [5])
    # answer 5 used up too: no floor draw left, so any episode may be the challenger, and
    # the never-judged answer 6 (no floor draw) is
    judged[keys[5]] = 2
    assert first(samples, give_up=2) == [6]
    # within one round an answer that reaches the give-up leaves at once
    judged[keys[5]] = 1
    queries = novel_queries(samples, 3, k=2, rng=np.random.default_rng(0), score_fn=zero,
                            judged=judged, challengers="floor", shown_right=right,
                            give_up=2)  # fmt: skip
    assert [int(q[0].response_ids[0]) for q in queries] == [5]


def test_given_up_answers_come_back_for_another_round() -> None:
    """Answer 3 was shown right; 4 and 5 have used up a give-up of 2 without. With two
    rounds they are floor challengers again until judged 4 times; then the rotation is over
    and the model's challengers take over (the never-judged answer 6)."""
    plain = [make_sample(f"g-{i}", seed=i, response=r) for i, r in enumerate([3, 4, 5, 6, 6])]
    samples = _with_share(plain, {"g-0", "g-1", "g-2"})
    keys = {r: judgement_key(plain[i]) for i, r in enumerate([3, 4, 5, 6])}
    judged, right = {keys[3]: 1, keys[4]: 2, keys[5]: 3}, {keys[3]: 1}
    zero = lambda b: np.zeros((1, len(b)))  # noqa: E731

    def challengers(n: int, rounds: int) -> list[int]:
        queries = novel_queries(samples, n, k=2, rng=np.random.default_rng(0), score_fn=zero,
                                judged=judged, challengers="floor", shown_right=right,
                                give_up=2, give_up_rounds=rounds)  # fmt: skip
        return [int(q[0].response_ids[0]) for q in queries]

    assert challengers(1, rounds=1) == [6]
    assert challengers(1, rounds=2) == [4]  # the least judged of the two goes first
    # Its one floor draw is used in the first query: 5 next, and then no floor draw is open.
    assert challengers(3, rounds=2) == [4, 5]
    judged[keys[4]] = judged[keys[5]] = 4  # the second round's tries used up
    assert challengers(1, rounds=2) == [6]
    assert challengers(1, rounds=3) == [4]
    with pytest.raises(ValueError, match="give_up_rounds must be >= 1"):
        challengers(1, rounds=0)


def test_the_rotation_round_is_the_first_with_an_open_answer() -> None:
    # a never shown right (judged 5), b shown right once (judged 9), c never judged
    judged, right = {"a": 5, "b": 9}, {"b": 1}
    assert rotation_give_up(["a"], judged, right, give_up=2, rounds=5) == 6  # round 3
    assert rotation_give_up(["a"], judged, right, give_up=2, rounds=2) == 4  # the last round
    assert rotation_give_up(["a", "c"], judged, right, give_up=2, rounds=5) == 2
    assert rotation_give_up(["b"], judged, right, give_up=2, rounds=5) == 10  # settled
    # with two confirmations wanted, b stays open in the first round
    assert rotation_give_up(["b"], judged, right, give_up=2, rounds=5, confirmations=2) == 2
    # after the first round only the returning answers count: a is not, c never began
    assert rotation_give_up(["a", "c"], judged, right, give_up=2, rounds=5, returning=["c"]) == 2
    assert rotation_give_up(["a", "d"], {**judged, "d": 2}, right, give_up=2, rounds=5,
                            returning=["d"]) == 4  # fmt: skip
    assert rotation_give_up(["a", "d"], {**judged, "d": 2}, right, give_up=2, rounds=5,
                            returning=[]) == 10  # fmt: skip


def test_rounds_of_the_rotation_need_rotating_floor_challengers() -> None:
    with pytest.raises(ValueError, match="query_give_up_rounds=2 acts on the floor"):
        FeedbackConfig(enabled=True, source="reward_model", query_give_up_rounds=2)
    rotating = FeedbackConfig(enabled=True, source="reward_model", query_mode="novel",
                              query_challengers="floor", query_give_up=4,
                              query_give_up_rounds=2)  # fmt: skip
    assert rotating.query_give_up_rounds == 2
