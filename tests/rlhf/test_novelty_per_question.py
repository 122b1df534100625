"""The exploration bonus counted per question for answers the labels have shown right
(`feedback.rm_novelty_count: per_question`)."""

from __future__ import annotations

import pytest

from mmrlhf.feedback.config import FeedbackConfig
from mmrlhf.feedback.novelty import JudgedCounts, bonus_key, novelty_bonus
from mmrlhf.feedback.preferences import BinaryLabel, PreferenceLabel
from mmrlhf.feedback.reward_model import PublishedRewardModel, RewardEnsemble, RewardModelSpec
from mmrlhf.feedback.rlhf import RLHFState
from mmrlhf.feedback.scoring import RewardScorer
from tests.rlhf.conftest import TINY_RM, make_sample

# Prompt 1 asked three times: answer 3 right twice (a strict win and a thumbs up), answer 4
# wrong. Prompt 2 never asked.
RIGHT_A, RIGHT_B = make_sample("a", prompt=1, response=3), make_sample("b", seed=1, response=3)
WRONG = make_sample("w", seed=2, prompt=1, response=4)
SAMPLES = {"a": RIGHT_A, "b": RIGHT_B, "w": WRONG}
LABELS = [PreferenceLabel("a", "w", 1.0), BinaryLabel("b", True)]


def _counts() -> JudgedCounts:
    counts = JudgedCounts()
    counts.add(LABELS, SAMPLES)
    return counts


def test_a_confirmed_answer_is_new_again_on_other_questions() -> None:
    counts = _counts()
    assert counts.confirmed() == {RIGHT_A.response_key}
    table = counts.snapshot(counts.confirmed())
    confirmed = counts.confirmed()

    def n(sample: object) -> int:
        return table.get(bonus_key(sample, confirmed), 0)  # type: ignore[arg-type]

    same_question = make_sample("s", seed=3, prompt=1, response=3)
    other_question = make_sample("o", seed=4, prompt=2, response=3)
    wrong_elsewhere = make_sample("x", seed=5, prompt=2, response=4)
    assert n(same_question) == 2  # judged twice for prompt 1
    assert n(other_question) == 0  # never judged for prompt 2: the whole bonus
    assert n(wrong_elsewhere) == 1  # never shown right: counted per response, as before
    # counted per response (the default), the right answer is used up everywhere
    assert counts.snapshot()[bonus_key(other_question)] == 2


def test_the_scorer_and_the_hub_use_the_per_question_counts(tiny_spec: RewardModelSpec) -> None:
    ens = RewardEnsemble(tiny_spec, seed=0)
    counts = _counts()
    scorer = RewardScorer(clip=5.0, prior_count=10)
    scorer.load(PublishedRewardModel(1, tiny_spec.to_dict(), ens.weights(), novelty_scale=1.0,
                                     judged=counts.snapshot(counts.confirmed()),
                                     per_prompt=counts.confirmed()))  # fmt: skip
    assert scorer.bonus(make_sample("s", prompt=1, response=3)) == pytest.approx(
        novelty_bonus(1.0, 2)
    )
    assert scorer.bonus(make_sample("o", prompt=2, response=3)) == 1.0

    cfg = FeedbackConfig(enabled=True, source="reward_model", label_budget=40,
                         queries_per_iter=8, rm_min_steps=2, rm_max_steps=2,
                         rm_novelty_bonus=0.7, rm_novelty_count="per_question",
                         **TINY_RM)  # fmt: skip
    state = RLHFState(cfg)
    state.add_episodes([make_sample(f"1-{i}", score=i % 2, seed=i, response=3 + i % 5)
                        for i in range(30)], tiny_spec)  # fmt: skip
    state.step(1)
    published = state.latest()
    assert published is not None
    assert published.per_prompt == state.judged.confirmed() and published.per_prompt
    assert dict(published.judged) == state.judged.snapshot(published.per_prompt)


def test_config_needs_the_bonus() -> None:
    base = {"enabled": True, "source": "reward_model"}
    with pytest.raises(ValueError, match="rm_novelty_bonus > 0"):
        FeedbackConfig(**base, rm_novelty_count="per_question")
    with pytest.raises(ValueError, match="rm_novelty_count"):
        FeedbackConfig(**base, rm_novelty_bonus=1.0, rm_novelty_count="prompt")
