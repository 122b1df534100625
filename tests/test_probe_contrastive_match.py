"""scripts/probe_contrastive_match.py: the ROC area and the prompts that name each word."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from mmrlhf.feedback.samples import EpisodeSample
from tests.rlhf.conftest import make_sample
from tests.script_loader import load_script

probe = load_script("probe_contrastive_match")


def test_auc_is_the_share_of_positive_negative_pairs_in_order() -> None:
    score = np.array([0.1, 0.4, 0.35, 0.8])
    positive = np.array([False, False, True, True])
    assert probe.auc(score, positive) == pytest.approx(0.75)  # 3 of 4 pairs in order
    assert probe.auc(score, ~positive) == pytest.approx(0.25)
    assert probe.auc(np.arange(4.0), np.array([False, False, True, True])) == 1.0


def test_each_word_gets_a_prompt_that_names_it_or_the_missing_ones_are_named() -> None:
    red = replace(make_sample("a", prompt=5), prompt="what shape is the red object ?")
    square = replace(make_sample("b", prompt=6), prompt="what color is the square?")
    found = probe.naming_every_word([red, square], ("red", "square"))
    assert found["red"] is red.prompt_ids and found["square"] is square.prompt_ids
    with pytest.raises(ValueError, match=r"names \['blue'\]"):
        probe.naming_every_word([red, square], ("red", "blue"))


def _answer(
    episode_id: str, prompt: str, response: str, *, score: float, drawn: bool
) -> EpisodeSample:
    tokens = {"red": 3, "yes": 4}
    sample = make_sample(episode_id, score, prompt=1 if "color" in prompt else 2,
                         response=tokens[response], seed=len(episode_id))  # fmt: skip
    return replace(sample, prompt=prompt, response=response, floor_share=1.0 if drawn else 0.0)


def test_challenger_trials_count_right_answers_and_questions_of_the_other_kind() -> None:
    color_q, shape_q = "what color is the circle ?", "what shape is the blue object ?"
    pool = [_answer("right", color_q, "red", score=1.0, drawn=True),
            _answer("wrong", color_q, "red", score=0.0, drawn=True),
            _answer("other-kind", shape_q, "red", score=0.0, drawn=True),
            _answer("p1", color_q, "yes", score=0.0, drawn=False),
            _answer("p2", shape_q, "yes", score=0.0, drawn=False)]  # fmt: skip
    best = {"right": 1.0, "wrong": 0.0, "other-kind": 0.5}
    by_match = probe.challenger_trials(
        pool, lambda b: np.array([best[s.episode_id] for s in b]), 1, range(3)
    )
    assert by_match == {"challengers": 3, "right": 3, "other_kind": 0}
    best["other-kind"] = 2.0
    by_match = probe.challenger_trials(
        pool, lambda b: np.array([best[s.episode_id] for s in b]), 1, range(3)
    )
    assert by_match == {"challengers": 3, "right": 0, "other_kind": 3}
    at_random = probe.challenger_trials(pool, None, 1, range(20))
    assert at_random["challengers"] == 20 and 0 < at_random["right"] < 20
