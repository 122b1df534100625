"""scripts/probe_contrastive_match.py: the ROC area, the prompts that name each word, and the
words' similarities."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch

from mmrlhf.feedback.reward_model import RewardEnsemble
from tests.rlhf.conftest import answer_head_spec, make_sample
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


def test_word_similarities_are_each_words_cosine_averaged_over_members() -> None:
    ensemble = RewardEnsemble(answer_head_spec("answer_sigmoid"), seed=0).eval()
    samples = [make_sample(f"s{i}", seed=i) for i in range(5)]
    images = torch.from_numpy(np.stack([s.image for s in samples]))
    naming = {"red": samples[0].prompt_ids, "square": make_sample("p", prompt=7).prompt_ids}
    found = probe.word_similarities(ensemble, images, naming)
    for word, ids in naming.items():
        prompt = torch.as_tensor(np.stack([ids] * len(samples)))
        with torch.no_grad():
            expected = torch.stack([
                torch.nn.functional.cosine_similarity(*m.embeddings(images, prompt), dim=-1)
                for m in ensemble.members
            ]).mean(0)  # fmt: skip
        np.testing.assert_allclose(found[word], expected.numpy(), rtol=1e-5, atol=1e-6)
