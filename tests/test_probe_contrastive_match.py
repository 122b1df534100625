"""scripts/probe_contrastive_match.py: the ROC area and the prompts that name each word."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

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
    found = probe.naming_prompts([red, square], ("red", "square"))
    assert found["red"] is red.prompt_ids and found["square"] is square.prompt_ids
    with pytest.raises(ValueError, match=r"names \['blue'\]"):
        probe.naming_prompts([red, square], ("red", "blue"))
