"""The reward model learns to rank oracle-ordered vqa pairs (plain torch, no Ray; ~10-30 s).

Pairs are two answers to the same scene and question, one right and one random; the held-out
pairs come from other seeds. A few hundred pairs must give >= 90% held-out pair accuracy,
with either reward head, and the trainer's before-training accuracy on new labels must rise
from chance.
"""

from __future__ import annotations

import pytest
import torch

from mmrlhf.envs import MyMultimodalEnv
from mmrlhf.feedback.config import FeedbackConfig
from mmrlhf.feedback.pairs import oracle_pairs
from mmrlhf.feedback.reward_model import RewardEnsemble
from mmrlhf.feedback.rlhf import make_spec, trainer_settings
from mmrlhf.feedback.rm_trainer import RewardModelTrainer

ENV = {"task": "vqa", "image_size": 32, "num_objects": 2, "question_types": ("color", "shape")}


# Head settings and training rounds: the sigmoid head, which does not push every other answer
# down with each winner, needs a round more to separate right from wrong answers.
HEADS = {
    "compare": ({}, 2),
    "answer_logits": ({"rm_head": "answer_logits", "rm_winner_weight": 1.0}, 2),
    "answer_sigmoid": ({"rm_head": "answer_sigmoid", "rm_winner_weight": 1.0}, 3),
}


@pytest.mark.parametrize("head", list(HEADS))
def test_reward_model_ranks_held_out_vqa_pairs(head: str) -> None:
    torch.set_num_threads(1)
    settings, rounds = HEADS[head]
    cfg = FeedbackConfig(
        source="reward_model", rm_ensemble=2, rm_epochs=5, rm_min_steps=1, **settings
    )
    train_samples, train_labels = oracle_pairs(ENV, 300, seed=1)
    test_samples, test_labels = oracle_pairs(ENV, 300, seed=2)
    spec = make_spec(
        cfg, image_size=32, prompt_len=32, vocab_size=MyMultimodalEnv(ENV).tokenizer.vocab_size
    )
    trainer = RewardModelTrainer(RewardEnsemble(spec, seed=0), trainer_settings(cfg))
    before = trainer.add_labels(train_labels, {s.episode_id: s for s in train_samples})
    assert before["added"] == 300 and 0.3 < before["accuracy"] < 0.7  # untrained: chance
    for _ in range(rounds):
        trainer.train()
    held_out = RewardModelTrainer(trainer.ensemble)
    held_out.samples = {s.episode_id: s for s in test_samples}
    result = held_out.evaluate(test_labels)
    assert result["pairs"] == 300
    assert result["accuracy"] >= 0.90, result
